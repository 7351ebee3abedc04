"""How often a freshly initialized TD3 teacher passes the audit (ktm/trust.py) by chance: the audit score of
`td3.init_many(key(seed), K)` teachers for seeds 0-2, on the pendulum teachers' replay states (results/trust_pendulum's
teacher set, here at /tmp/q/teachers: pass its path) and on HalfCheetah-sized networks (Benchmark A: obs 17, act 6,
256-256) over N(0, 1) stand-in states (no HalfCheetah teacher set on this machine). Beside them the trained pendulum
teachers and their negated critics.  python results/trust_pendulum/audit_random_inits.py TEACHER_DIR"""
import sys

import jax
import numpy as np

from ktm import replay, td3, teachers, trust
from ktm.envs import make_suite


def scores(states, obs, sizes, cfg, act_dims):
  return np.asarray(trust.audit_teachers(states.actor_params, states.critic_params, obs, sizes, cfg, act_dims))


suite = make_suite('pendulum_group')
t = teachers.load(sys.argv[1], suite)
print('pendulum trained  ', np.round(scores(t.states, t.buffer.data.obs, t.buffer.size, t.cfg, suite.act_dims), 2))
print('pendulum negated  ', np.round(scores(trust.corrupt(t.states, ('adversarial',) * 4, t.cfg), t.buffer.data.obs,
                                            t.buffer.size, t.cfg, suite.act_dims), 2))
cheetah = make_suite('halfcheetah_group')
h_cfg = td3.TD3Config(obs_size=cheetah.obs_size, act_size=cheetah.act_size, hidden_sizes=(256, 256))
h_buffer = replay.init(8, trust.AUDIT_SAMPLES, cheetah.obs_size, cheetah.act_size)
h_obs = jax.random.normal(jax.random.key(100), h_buffer.data.obs.shape)
h_sizes = np.full(8, trust.AUDIT_SAMPLES)
every = []
for seed in range(3):
  p = scores(td3.init_many(jax.random.key(seed), 4, t.cfg), t.buffer.data.obs, t.buffer.size, t.cfg, suite.act_dims)
  h = scores(td3.init_many(jax.random.key(seed), 8, h_cfg), h_obs, h_sizes, h_cfg, cheetah.act_dims)
  print(f'random seed {seed}: pendulum', np.round(p, 2), 'halfcheetah', np.round(h, 2))
  every += list(p) + list(h)
every = np.array(every)
print(f'{int(np.sum(every >= 0.75))} of {every.size} random teachers score >= 0.75 (min {every.min():.2f}, '
      f'median {np.median(every):.2f}, max {every.max():.2f})')
