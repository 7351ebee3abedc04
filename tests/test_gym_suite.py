"""The gymnasium backend (ktm/envs/gym_suite.py) against hand-stepped gymnasium envs: same seeds, same actions give
identical transitions (padding, masks, action scaling, auto-reset, terminated vs truncated); Hopper-v5 through
gymnasium gives the built-in native backend's returns; stale envs after a resume (in this process or a new one) end
their episode as documented; a loop run resumed after a crash equals the uninterrupted run up to the checkpoint and
holds the documented transition right after it; non-Box spaces are one error line."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gymnasium
from ktm import loop
from ktm.envs import custom, gym_suite, make_suite
from tests.test_methods import LOOP, Crash, CrashAfter, build
from tests.test_td3 import tree_equal

LIMIT = 35   # the suite's episode_length
TASKS = [('PendulumShort', lambda: gymnasium.make('Pendulum-v1', max_episode_steps=20)),   # env TimeLimit: 20
         'Pendulum-v1',   # its TimeLimit is 200: the suite's LIMIT truncates it
         'Hopper-v5']     # terminates when unhealthy
SIZES = ((3, 1), (3, 1), (11, 3))   # (obs, act) per task


def factory(entry):
  return entry[1] if isinstance(entry, tuple) else lambda: gymnasium.make(entry)


def hand_stepped(seeds, actions, obs_size):
  """Each env stepped by hand: per step [T, K, E] rewards, terminated, truncated and next_obs / obs [T, K, E, obs]
  (zero-padded); actions [T, K, E, act_size] mapped onto the Box as low + (a + 1) / 2 * (high - low)."""
  steps, num_tasks, num_envs = actions.shape[:3]
  out = dict(reward=np.zeros((steps, num_tasks, num_envs), np.float32), terminated=np.zeros((steps, num_tasks,
             num_envs), bool), next_obs=np.zeros((steps, num_tasks, num_envs, obs_size), np.float32))
  out['truncated'] = out['terminated'].copy()
  out['obs'] = out['next_obs'].copy()
  pad = lambda o: np.concatenate([np.asarray(o, np.float32), np.zeros(obs_size - len(o), np.float32)])
  for k, entry in enumerate(TASKS):
    for e in range(num_envs):
      env = factory(entry)()
      env.reset(seed=int(seeds[k, e]))
      lo, hi, n_in_episode = env.action_space.low, env.action_space.high, 0
      for t in range(steps):
        a = np.clip(actions[t, k, e, :SIZES[k][1]].astype(np.float64), -1, 1)
        obs, r, term, trunc, _ = env.step(lo + (a + 1) / 2 * (hi - lo))
        n_in_episode += 1
        trunc = trunc or n_in_episode == LIMIT
        out['reward'][t, k, e], out['terminated'][t, k, e], out['truncated'][t, k, e] = r, term, trunc
        out['next_obs'][t, k, e] = pad(obs)
        if term or trunc:
          obs, n_in_episode = env.reset()[0], 0
        out['obs'][t, k, e] = pad(obs)
  return out


@pytest.fixture(scope='module')
def suite():
  return make_suite(custom.gym_suite('test_gym_three', TASKS), num_envs=2, episode_length=LIMIT)


def run(suite, state, actions):
  step = jax.jit(suite.step)
  outs = []
  for a in actions:
    state, out = step(state, jnp.asarray(a))
    outs.append(dict(jax.tree.map(np.asarray, out.__dict__), obs=np.asarray(state.obs)))
  return state, {k: np.stack([o[k] for o in outs]) for k in outs[0]}


def test_sizes_masks_and_one_line_errors():
  s = make_suite('gym:Pendulum-v1,Hopper-v5')
  assert (s.obs_dims, s.act_dims, s.obs_size, s.act_size, s.backend_name) == ((3, 11), (1, 3), 11, 3, 'gym')
  np.testing.assert_array_equal(s.action_masks, [[1, 0, 0], [1, 1, 1]])
  for bad, match in (('gym:CartPole-v1', r"'CartPole-v1': its action space is Discrete\(2\), only Box"),
                     ('gym:NoSuchEnv-v0', "gymnasium cannot make 'NoSuchEnv-v0'"),
                     ('gym:Pendulum-v1,Pendulum-v1', 'lists a task twice')):
    with pytest.raises(ValueError, match=match) as e:
      make_suite(bad)
    assert '\n' not in str(e.value)
  with pytest.raises(ValueError, match="backend 'mjx' is not available for it"):
    make_suite('gym:Pendulum-v1', backend='mjx')


def test_transitions_equal_hand_stepped_gymnasium(suite):
  seeds = np.array([[3, 4], [5, 6], [7, 8]], np.uint32)
  rng = np.random.default_rng(0)
  actions = rng.uniform(-1.2, 1.2, (90, 3, 2, suite.act_size)).astype(np.float32)   # beyond [-1, 1]: clipped
  state = suite.reset_to(jax.random.key(0), jnp.asarray(seeds))
  ref = hand_stepped(seeds, actions, suite.obs_size)
  _, got = run(suite, state, actions)
  for field in ('reward', 'terminated', 'truncated', 'next_obs', 'obs'):
    np.testing.assert_array_equal(got[field], ref[field], err_msg=field)
  np.testing.assert_array_equal(got['done'], ref['terminated'] | ref['truncated'])
  # every kind of ending happened: env time limit (task 0), suite limit (task 1), termination (task 2)
  assert ref['truncated'][:, 0].sum() >= 4 and not ref['terminated'][:, :2].any()
  assert ref['truncated'][LIMIT - 1, 1].all() and ref['truncated'][:, 1].sum() == 2 * (90 // LIMIT)
  assert ref['terminated'][:, 2].sum() >= 2
  assert not got['next_obs'][:, :2, :, 3:].any() and not got['obs'][:, :2, :, 3:].any()   # padding (3-number tasks)


def test_hopper_through_gymnasium_gives_the_native_backends_returns():
  gym = make_suite(custom.gym_suite('test_gym_hopper', [('Hopper', lambda: gymnasium.make(
      'Hopper-v5', reset_noise_scale=0.0))]), num_envs=3)
  native = make_suite('Hopper', num_envs=3, backend='native')
  qpos0 = jnp.broadcast_to(jnp.asarray(native.groups[0].qpos0, jnp.float32)[:, None], (1, 3, 6))
  states = [gym.reset(jax.random.key(0)), native.reset_to(jax.random.key(0), (qpos0,), (jnp.zeros((1, 3, 6)),))]
  np.testing.assert_array_equal(states[0].obs, states[1].obs)
  actions = np.round(np.random.default_rng(1).uniform(-1, 1, (120, 1, 3, 3)) * 64) / 64   # exact in float32
  outs = [run(s, st, actions.astype(np.float32))[1] for s, st in zip((gym, native), states)]
  first_done = [np.argmax(o['done'][:, 0], axis=0) for o in outs]
  np.testing.assert_array_equal(*first_done)
  assert (first_done[0] > 5).all() and outs[0]['terminated'][first_done[0], 0, np.arange(3)].all()
  returns = [o['episode_return'][first_done[0], 0, np.arange(3)] for o in outs]
  np.testing.assert_allclose(*returns, rtol=1e-5)


def test_stale_envs_restart_as_documented(suite):
  """A state from before the host moved on (in-process restore) and the same state in a fresh suite (a new process):
  the episode ends as truncated with (obs, action, reward 0, next_obs = obs), the env restarts from seed
  reset_seeds(split(key)[1]) and then steps normally."""
  actions = np.random.default_rng(2).uniform(-1, 1, (12, 3, 2, suite.act_size)).astype(np.float32)
  saved, _ = run(suite, suite.reset(jax.random.key(5)), actions[:6])
  run(suite, saved, actions[6:])   # the host moves on
  fresh = make_suite(custom.gym_suite('test_gym_three', TASKS), num_envs=2, episode_length=LIMIT)
  seeds = np.asarray(gym_suite.reset_seeds(jax.random.split(saved.key)[1], (3, 2)))
  for s in (suite, fresh):
    state, got = run(s, saved, actions[6:8])
    np.testing.assert_array_equal(got['next_obs'][0], saved.obs)
    assert got['truncated'][0].all() and got['done'][0].all() and not got['terminated'][0].any()
    np.testing.assert_array_equal(got['reward'][0], 0.0)
    np.testing.assert_array_equal(got['episode_return'][0], saved.episode_return)
    assert not got['done'][1].any() and (got['reward'][1] != 0).all()
    env = gymnasium.make('Hopper-v5')
    np.testing.assert_array_equal(got['obs'][0, 2, 1], env.reset(seed=int(seeds[2, 1]))[0].astype(np.float32))
    np.testing.assert_array_equal(got['next_obs'][1, 2, 1], env.step(actions[7, 2, 1])[0].astype(np.float32))


def test_loop_resume_equals_the_uninterrupted_run_up_to_the_checkpoint_then_one_stale_step(tmp_path):
  train = make_suite(custom.gym_suite('test_gym_two', TASKS[:2]), episode_length=LIMIT)
  evaluate = make_suite(custom.gym_suite('test_gym_two', TASKS[:2]), num_envs=2, episode_length=LIMIT)
  method = build('td3_mt', train, None)
  cfg = loop.LoopConfig(**LOOP)
  every = LOOP['checkpoint_every']
  full, _, _ = loop.train(method, train, evaluate, None, cfg, str(tmp_path / 'full'))
  with pytest.raises(Crash):
    loop.train(method, train, evaluate, None, cfg, str(tmp_path / 'crashed'), reporter=CrashAfter(every))
  resumed, _, _ = loop.train(method, train, evaluate, None, cfg, str(tmp_path / 'crashed'))
  rows = lambda s, a, b: jax.tree.map(lambda x: np.asarray(x)[0, :, a:b], s.buffer.data)
  assert tree_equal(rows(resumed, 0, every), rows(full, 0, every))   # E = 1: one row per epoch and task
  stale, normal = rows(resumed, every, every + 1), rows(full, every, every + 1)
  np.testing.assert_array_equal(stale.next_obs, stale.obs)
  np.testing.assert_array_equal(stale.reward, 0.0)
  assert (normal.reward != 0).all() and not tree_equal(rows(resumed, every + 1, 40), rows(full, every + 1, 40))


def test_sweeps_on_a_gym_suite_stay_on_one_device():
  """The host finds a gym suite's envs by their row in each callback, so members must not be split over devices
  (shard_map would call back once per device with rows that collide): member_mesh gives no mesh for them."""
  code = ('from ktm.runs import sweep_members; import jax; assert len(jax.devices()) == 2; '
          'assert sweep_members.member_mesh(2) is not None and sweep_members.member_mesh(2, host_envs=True) is None')
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2', JAX_PLATFORMS='cpu')
  subprocess.run([sys.executable, '-c', code], check=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
