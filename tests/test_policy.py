"""ktm.policy: a trained student (and teacher) as a raw-size obs -> action function, run in gymnasium's own env."""

import dataclasses
import os

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import agreement, loop, policy, td3, teachers
from ktm.envs import make_suite
from ktm.envs import models as models_lib
from ktm.methods import ideal
from ktm.runs import restore, run_config, student_training, teacher_training

TINY_TEACHER = dict(hidden_sizes=(16, 16), batch_size=32)
TINY_SCHEDULE = dict(steps=300, start_steps=100, chunk_steps=50, replay_capacity=300)
TINY_KTM = dict(cfg=dict(hidden_sizes=(16, 16), batch_size=32),
                ktm=dict(offline_epochs=20, online_epochs=20, offline_chunk=10, chunk_steps=5, online_capacity=100))
BENCHMARK = 'pendulum_group'


def make_tiny_run(root: str, benchmark: str = BENCHMARK) -> str:
  """Tiny teachers, then a tiny KTM-DRL student on `benchmark`, in ROOT/teachers and ROOT/run; returns the run."""
  teacher_dir, run_dir = os.path.join(root, 'teachers'), os.path.join(root, 'run')
  teacher_training.train_teachers(benchmark, TINY_TEACHER, TINY_SCHEDULE,
                                  loop.LoopConfig(eval_every=300, eval_episodes=1, checkpoint_every=300), teacher_dir,
                                  tensorboard=False, progress_bar=False)
  student_training.run('ktm', benchmark, TINY_KTM, loop.LoopConfig(eval_every=20, eval_episodes=1, checkpoint_every=20),
                       run_dir, teacher_dir, tensorboard=False, progress_bar=False)
  return run_dir


def shared_tiny_run(tmp_path_factory) -> str:
  """One tiny run per test session, shared by test_policy.py and test_render.py (built by whichever runs first)."""
  root = tmp_path_factory.getbasetemp() / 'ktm_tiny_run'
  run_dir = str(root / 'run')
  if not os.path.isfile(os.path.join(run_dir, 'results.json')):
    make_tiny_run(str(root))
  return run_dir


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  return shared_tiny_run(tmp_path_factory)


def _gym_return(act, task: str, qpos, qvel, tmp_path) -> float:
  """One episode of gymnasium's InvertedPendulum-v5 on the task's MJCF from (qpos, qvel), actions from `act`."""
  xml = tmp_path / f'{task}.xml'
  xml.write_text(models_lib.variant_xml(task, 'inverted_pendulum.xml'))
  env = gymnasium.make('InvertedPendulum-v5', xml_file=str(xml))
  env.reset(seed=0)
  env.unwrapped.set_state(np.asarray(qpos, np.float64), np.asarray(qvel, np.float64))
  obs, total = env.unwrapped._get_obs(), 0.0   # pylint: disable=protected-access
  while True:
    obs, reward, terminated, truncated, _ = env.step(np.asarray(act(obs), np.float64))
    total += reward
    if terminated or truncated:
      return total


def _trainer_returns_and_initial_states(returns_fn, key, eval_suite):
  """What the trainer's evaluation returns for `key` ([K] returns of one episode) and the initial (qpos, qvel) of
  each task's episode, reproduced by the same reset the evaluation makes."""
  returns = np.asarray(returns_fn(key, eval_suite))[:, 0]
  reset_key, _ = jax.random.split(key)
  readout = eval_suite.reset(reset_key).physics.readout[0]   # pendulum_group is one group
  return returns, np.asarray(readout.qpos[:, 0]), np.asarray(readout.qvel[:, 0])


def test_loaded_student_in_gymnasium_matches_the_trainers_evaluation(tiny_run, tmp_path):
  method, learner, config = restore.restore(tiny_run)
  eval_suite = make_suite(config['benchmark'], num_envs=1)
  returns, qpos, qvel = _trainer_returns_and_initial_states(
      lambda key, suite: loop.evaluate(learner, key, method, suite), jax.random.key(7), eval_suite)
  for k, task in enumerate(eval_suite.task_names):
    act = policy.load(tiny_run, task)
    assert _gym_return(act, task, qpos[k], qvel[k], tmp_path) == pytest.approx(returns[k], abs=1e-6)
  assert returns.max() >= 2   # not all episodes end at the first step


def test_loaded_teacher_in_gymnasium_matches_the_teachers_evaluation(tiny_run, tmp_path):
  teacher_dir = run_config.load_run_config(tiny_run)['teacher_dir']
  eval_suite = make_suite(BENCHMARK, num_envs=1)
  loaded = teachers.load(teacher_dir, eval_suite)
  returns, qpos, qvel = _trainer_returns_and_initial_states(
      lambda key, suite: teachers.evaluate(loaded, key, suite), jax.random.key(3), eval_suite)
  for k, task in enumerate(eval_suite.task_names):
    act = policy.load_teacher(tiny_run, task)   # a run directory leads to its teachers
    assert _gym_return(act, task, qpos[k], qvel[k], tmp_path) == pytest.approx(returns[k], abs=1e-6)


def test_student_function_is_the_padded_policy_row_sliced_and_scaled(tiny_run):
  """obs -> action by hand: pad, the task's row of method.act, f^k, then [-1, 1] -> ctrlrange [-3, 3]."""
  method, learner, config = restore.restore(tiny_run)
  suite = make_suite(config['benchmark'])
  k = 2
  obs = np.random.default_rng(0).normal(size=(5, suite.obs_dims[k])).astype(np.float32)
  full = jnp.zeros((suite.num_tasks, 5, suite.obs_size)).at[k].set(obs)
  expected = 3.0 * np.asarray(method.act(learner, full, jax.random.key(0), False))[k, :, :suite.act_dims[k]]
  act = policy.load(tiny_run, suite.task_names[k])
  np.testing.assert_allclose(np.asarray(act(obs)), expected, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(act(obs[0])), expected[0], rtol=1e-6, atol=1e-6)   # unbatched
  raw = policy.load(tiny_run, suite.task_names[k], ctrl_units=False)
  np.testing.assert_allclose(np.asarray(raw(obs)) * 3.0, expected, rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match='no task'):
    policy.load(tiny_run, 'Hopper')


def test_agreement_matches_raw_size_policies_and_critics_on_the_same_replay_states(tiny_run):
  """ktm.agreement against the raw-size student/teacher functions of ktm.policy and raw-size teacher critics, on
  the replay rows it draws; the teachers measured as their own 'student' agree exactly."""
  teacher_dir = os.path.join(os.path.dirname(tiny_run), 'teachers')
  rows = agreement.measure(tiny_run, samples=64, seed=3)
  suite = make_suite(BENCHMARK)
  loaded = teachers.load(teacher_dir, suite)
  picked = agreement.sample_rows(np.asarray(loaded.buffer.size), 64, 3)
  raw_cfg = dataclasses.replace(loaded.cfg, obs_size=suite.obs_dims[0], act_size=suite.act_dims[0])
  teacher_fns = {j: policy.load_teacher(teacher_dir, j, ctrl_units=False) for j in suite.task_names}
  assert [r['task'] for r in rows] == list(suite.task_names)
  for k, task in enumerate(suite.task_names):
    obs = np.asarray(loaded.buffer.data.obs[k])[picked[k], :suite.obs_dims[k]]
    student = np.asarray(policy.load(tiny_run, task, ctrl_units=False)(obs), np.float64)
    rms = {j: np.sqrt(np.mean(np.square(np.asarray(fn(obs)) - student))) for j, fn in teacher_fns.items()}
    assert rows[k]['rmse_own'] == pytest.approx(rms[task], rel=1e-5, abs=1e-7)
    assert rows[k]['rmse_other'] == pytest.approx({j: v for j, v in rms.items() if j != task}, rel=1e-5, abs=1e-7)
    assert rows[k]['closest'] == min(rms, key=rms.get)
    critic = teachers.raw_critic_params(jax.tree.map(lambda x: x[k], loaded.states.critic_params),
                                        suite.obs_dims[k], suite.act_dims[k], suite.obs_size)
    q = {j: np.mean(td3.q1(critic, obs, fn(obs), raw_cfg)) for j, fn in teacher_fns.items()}
    assert rows[k]['q_gap'] == pytest.approx(float(np.mean(td3.q1(critic, obs, student, raw_cfg)) - q[task]),
                                             rel=1e-4, abs=1e-5)
    assert rows[k]['q_gap_other'] == pytest.approx({j: float(v - q[task]) for j, v in q.items() if j != task},
                                                   rel=1e-4, abs=1e-5)
  assert max(r['rmse_own'] for r in rows) > 1e-3   # a 40-epoch student is not its teachers
  for r in agreement.measure(teacher_dir, samples=64, seed=3, teacher_dir=teacher_dir):
    assert r['rmse_own'] == 0 and r['q_gap'] == 0 and r['closest'] == r['task']


def test_teacher_in_gymnasium_halfcheetah_follows_the_suite_step_by_step(tmp_path):
  """HalfCheetah-v5 (gymnasium) driven by `load_teacher` vs the suite driven by the stored padded teacher, one jitted
  step at a time from the same state: rewards agree to 1e-4 per step for 200 steps. (The trainer's compiled
  evaluation is not compared over a whole HalfCheetah episode: the closed loop is chaotic, and the 1e-7 rounding
  differences of the policy compiled inside a scan grow to return differences of tens of percent; see notes.)"""
  teacher_dir = str(tmp_path / 'hc')
  teacher_training.train_teachers('single:HalfCheetah', TINY_TEACHER,
                                  dict(steps=50, start_steps=50, chunk_steps=50, replay_capacity=50),
                                  loop.LoopConfig(eval_every=50, eval_episodes=1, checkpoint_every=50), teacher_dir,
                                  tensorboard=False, progress_bar=False)
  suite = make_suite('single:HalfCheetah', num_envs=1)
  loaded = teachers.load(teacher_dir, suite)
  masks = jnp.asarray(suite.action_masks)
  padded_policy = jax.jit(lambda obs: ideal.greedy(loaded.states.actor_params, obs, loaded.cfg, masks))
  step = jax.jit(suite.step)
  state = suite.reset(jax.random.key(0))
  env = gymnasium.make('HalfCheetah-v5').unwrapped
  env.reset(seed=0)
  env.set_state(np.asarray(state.physics.readout[0].qpos[0, 0], np.float64),
                np.asarray(state.physics.readout[0].qvel[0, 0], np.float64))
  act, obs = policy.load_teacher(teacher_dir, 'HalfCheetah'), env._get_obs()   # pylint: disable=protected-access
  suite_rewards, gym_rewards = [], []
  for _ in range(200):
    state, out = step(state, padded_policy(state.obs))
    obs, reward, _, _, _ = env.step(np.asarray(act(obs), np.float64))
    suite_rewards.append(float(out.reward[0, 0]))
    gym_rewards.append(reward)
  np.testing.assert_allclose(suite_rewards, gym_rewards, atol=1e-4)
  assert np.std(gym_rewards) > 0.01   # the cheetah moves
