"""E environments per task and fractional updates per env step (issue 27).

The fingerprints in tests/num_envs_fingerprints.json were written by `fingerprint_runs` on the code before E > 1 and
fractional `updates_per_step` were wired through the loop (KTM_WRITE_FINGERPRINTS=1), so E = 1 with an integer
`updates_per_step` is checked bit for bit against the code as it was.
"""

import hashlib
import json
import os

import jax
import numpy as np

from ktm import checkpoint, loop, sweep
from ktm.envs import make_suite
from tests.test_methods import build

FINGERPRINTS = os.path.join(os.path.dirname(__file__), 'num_envs_fingerprints.json')
EPISODE = 50
_NET = dict(hidden_sizes=(16, 16), batch_size=16)
_SCHEDULE = dict(steps=40, start_steps=10, chunk_steps=5, replay_capacity=32)
# Tiny runs whose final learner and replay are fingerprinted: ring wrap-around (capacity 32 < 40 steps), TD3's
# policy delay counted in updates (ideal) and in epochs (td3_mt: KTM-DRL's online stage), several updates per step
# (sharednet). Two compiled chunks each (random phase, learning).
FINGERPRINT_RUNS = {
    'ideal': dict(cfg=_NET, schedule=_SCHEDULE),
    'td3_mt': dict(cfg=_NET, ktm=dict(offline_epochs=0, online_epochs=40, alpha=0.0, chunk_steps=5,
                                      online_capacity=32, online_start_steps=10)),
    'sharednet': dict(cfg=_NET, schedule=dict(_SCHEDULE, updates_per_step=2)),
}


def run_stages(method, suite, aux=None, cfg=loop.LoopConfig(eval_every=10**6, checkpoint_every=10**6)):
  """The host loop's chunks (`loop.next_chunk`) without evaluations or checkpoints: the final one-member state."""
  state = loop.init_members(sweep.single(cfg.seed), method, suite)
  state = loop.advance_stage(state.replace(learner=loop.begin_stage(state.learner, method, 0)), method)
  stages = method.stages()
  while int(state.stage) < len(stages):
    stage, epoch = int(state.stage), int(state.epoch)
    n = loop.next_chunk(stages, stage, epoch, cfg)
    state, _ = loop.offpolicy_chunk(state, aux, method, suite, stage, n, epoch >= stages[stage].random_epochs)
    state = loop.advance_stage(state, method)
  return loop.member_state(state, 0)


def plain_leaves(tree):
  """numpy leaves of `tree` in tree order, PRNG keys as their key data."""
  return [np.asarray(jax.random.key_data(x) if checkpoint.is_key(x) else x) for x in jax.tree.leaves(tree)]


def digest(tree) -> str:
  """sha256 of every leaf's bytes, in tree order."""
  h = hashlib.sha256()
  for x in plain_leaves(tree):
    h.update(np.ascontiguousarray(x).tobytes())
  return h.hexdigest()


def abs_sum(tree) -> float:
  """sum |x| over the floating leaves (float64): a value to compare within a tolerance on another CPU."""
  return float(sum(np.abs(x.astype(np.float64)).sum() for x in plain_leaves(tree)
                   if np.issubdtype(x.dtype, np.floating)))


def cpu_model() -> str:
  with open('/proc/cpuinfo') as f:
    return next((l.split(':', 1)[1].strip() for l in f if l.startswith('model name')), '')


def fingerprint_runs():
  suite = make_suite('pendulum_group', episode_length=EPISODE)
  out = {}
  for name, configs in FINGERPRINT_RUNS.items():
    state = run_stages(build(name, suite, None, configs), suite)
    out[name] = dict(learner=digest(state.learner), buffer=digest(state.buffer), learner_abs_sum=abs_sum(state.learner),
                     buffer_abs_sum=abs_sum(state.buffer))
  return out


if os.environ.get('KTM_WRITE_FINGERPRINTS') == '1':
  with open(FINGERPRINTS, 'w') as f:
    json.dump(dict(jax=jax.__version__, cpu=cpu_model(), xla_flags=os.environ.get('XLA_FLAGS', ''), runs=fingerprint_runs()), f,
              indent=2)
