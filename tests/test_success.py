"""Success as a metric where an env reports info['success'] (the Meta-World protocol: success at any step of an
episode): per env in rollout.evaluate_episodes, per task rate in the loop's history and results.json rows; envs that
report nothing give NaN / no entry."""

import json

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from ktm import loop, metrics, rollout, sweep as sweep_lib
from ktm.envs import custom, make_suite
from ktm.runs import reporting
from tests.test_methods import LOOP, build

LENGTH = 12   # the suite's episode length: each env's first episode (5 steps) is followed by a second one


class Flag(gymnasium.Env):
  """obs [t]; episodes of 5 steps (terminated); info['success'] is True at t == 3 when the action is > 0, but only
  from the env's second episode on (a success after the first episode must not count)."""

  observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (1,), np.float32)
  action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)

  def __init__(self, first_episode_counts):
    self.first_episode_counts, self.episodes, self.t = first_episode_counts, 0, 0

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self.episodes, self.t = self.episodes + 1, 0
    return np.array([0.0], np.float32), {}

  def step(self, action):
    self.t += 1
    counts = self.first_episode_counts or self.episodes > 1
    return (np.array([self.t], np.float32), 1.0, self.t == 5, False,
            {'success': bool(counts and self.t == 3 and action[0] > 0)})


class Silent(Flag):
  def step(self, action):
    return super().step(action)[:4] + ({},)


def test_success_at_any_step_of_the_first_episode_per_env():
  suite = make_suite(custom.gym_suite('flag_three', [('FlagNow', lambda: Flag(True)), ('FlagLater', lambda: Flag(
      False)), ('Silent', lambda: Silent(True))]), num_envs=2, episode_length=LENGTH)
  policy = lambda params, obs, key: jnp.broadcast_to(jnp.array([1.0, -1.0])[None, :, None], obs.shape[:2] + (1,))
  returns, success = jax.jit(lambda k: rollout.evaluate_episodes(policy, None, k, suite))(jax.random.key(0))
  np.testing.assert_array_equal(returns, 5.0)
  np.testing.assert_array_equal(success, [[1.0, 0.0], [0.0, 0.0], [np.nan, np.nan]])
  native = make_suite('pendulum_group', num_envs=2, episode_length=3)
  _, success = rollout.evaluate_episodes(lambda p, obs, k: jnp.zeros(obs.shape[:2] + (native.act_size,)), None,
                                         jax.random.key(0), native)
  assert np.isnan(success).all()


class Counting(gymnasium.Env):
  """obs [t]; reward 1 per step; terminates after `length` steps; counts every step() call."""

  observation_space = Flag.observation_space
  action_space = Flag.action_space

  def __init__(self, length):
    self.length, self.t, self.steps = length, 0, 0

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self.t = 0
    return np.array([0.0], np.float32), {}

  def step(self, action):
    self.t, self.steps = self.t + 1, self.steps + 1
    return np.array([self.t], np.float32), 1.0, self.t == self.length, False, {}


def test_evaluation_stops_when_every_episode_has_ended_with_the_returns_of_the_full_length():
  """Episodes of 3 and 7 steps in an episode_length of 50: the envs are stepped 7 times, not 50; and on native
  pendulums under a random policy the returns equal a plain scan over all episode_length steps bit for bit."""
  envs = [Counting(3), Counting(7)]
  suite = make_suite(custom.gym_suite('counting', [('Three', lambda: envs[0]), ('Seven', lambda: envs[1])]),
                     num_envs=1, episode_length=50)
  zero = lambda params, obs, key: jnp.zeros(obs.shape[:2] + (1,))
  returns = jax.jit(lambda k: rollout.evaluate(zero, None, k, suite))(jax.random.key(0))
  np.testing.assert_array_equal(returns, [[3.0], [7.0]])
  assert [e.steps for e in envs] == [7, 7]

  native = make_suite('pendulum_group', num_envs=2)
  policy = lambda params, obs, key: jax.random.uniform(key, obs.shape[:2] + (native.act_size,), minval=-1, maxval=1)

  def full_scan(key):   # the definition: every env's return up to its first done, over episode_length steps
    def body(carry, step_key):
      env_state, total, alive = carry
      env_state, out = native.step(env_state, policy(None, env_state.obs, step_key))
      return (env_state, total + jnp.where(alive, out.reward, 0.0), alive & ~out.done), None
    reset_key, key = jax.random.split(key)
    init = (native.reset(reset_key), jnp.zeros((4, 2)), jnp.ones((4, 2), bool))
    return jax.lax.scan(body, init, jax.random.split(key, native.episode_length))[0][1]

  key = jax.random.key(3)
  np.testing.assert_array_equal(jax.jit(lambda k: rollout.evaluate(policy, None, k, native))(key), jax.jit(full_scan)(key))


def test_success_rates_in_history_and_results_rows():
  success = np.array([[[1.0, 0.0, 1.0, 1.0], [np.nan] * 4], [[0.0, 0.0, np.nan, 1.0], [1.0, 1.0, 1.0, 1.0]]])
  np.testing.assert_array_equal(loop.success_rates(success, {}), [[0.75, np.nan], [1 / 3, 1.0]])   # NaN: none
  np.testing.assert_array_equal(loop.success_rates(success, {1: 20}), [[0.75, np.nan], [np.nan, np.nan]])
  assert loop.success_rates(np.full((1, 2, 3), np.nan), {}) is None
  history = [{'returns': [[[1.0], [2.0]], [[3.0], [4.0]]], 'success': [[0.75, None], [0.5, 1.0]]}]
  assert loop.member_history(history, 1) == [{'returns': [[3.0], [4.0]], 'success': [0.5, 1.0]}]
  out = reporting.sweep_results(('A', 'B'), sweep_lib.single(0), np.array([[1.0, 2.0]]), None, {}, [[0.75, None]])
  assert [r['success_rate'] for r in out['members'][0]['tasks']] == [0.75, None]
  assert [(t['success_rate_mean'], t['success_rate_std']) for t in out['summary'][0]['tasks']] == [(0.75, 0.0),
                                                                                                  (None, None)]
  assert 'success_rate' not in reporting.sweep_results(('A',), sweep_lib.single(0), np.array([[1.0]]), None,
                                                       {})['members'][0]['tasks'][0]


def test_the_loop_records_success_rates_where_envs_report_them(tmp_path):
  flags = custom.gym_suite('flag_two', [('FlagNow', lambda: Flag(True)), ('Silent', lambda: Silent(True))])
  train, evaluate = (make_suite(flags, num_envs=e, episode_length=LENGTH) for e in (1, 3))
  method = build('td3_mt', train, None)
  seen = []

  class Capture(loop.Reporter):
    def chunk(self, stage_name, global_epoch, train_metrics, returns):
      seen.append(None if returns is None else train_metrics['eval_success'].tolist())

  state, history, _ = loop.train(method, train, evaluate, None, loop.LoopConfig(**LOOP), reporter=Capture())
  # the env's rule by hand: success iff the greedy action at obs t = 2 (the third step) is > 0; every episode alike
  obs = jnp.zeros((2, 1, train.obs_size)).at[0, 0, 0].set(2.0)
  expected = float(method.act(loop.member(state.learner, 0), obs, jax.random.key(0), False)[0, 0, 0] > 0)
  assert [h['success'] for h in history] == [[[expected, None]]] * len(history)
  np.testing.assert_equal([x for x in seen if x is not None], [[[expected, np.nan]]] * len(history))   # to metrics
  writer = metrics.MetricsWriter(str(tmp_path), tensorboard=False)
  metrics.log_evaluation(writer, metrics.Progress(1, '', disable=True), 40, train.task_names, np.zeros((2, 3)),
                         dict(eval_success=np.array([expected, np.nan])))
  writer.close()
  row = json.loads(open(tmp_path / 'metrics.jsonl').read())
  assert (row['eval_success/FlagNow'], row['eval_success/Silent']) == (expected, None)


FLAGS = custom.gym_suite('flag_two', [('FlagNow', lambda: Flag(True)), ('Silent', lambda: Silent(True))])


def test_teacher_runs_write_success_rates_to_results_json_and_evaluate_py_shows_them(tmp_path, capsys):
  from ktm.runs import restore, teacher_training   # pylint: disable=import-outside-toplevel
  rows = teacher_training.train_teachers('tests.test_success:FLAGS', dict(hidden_sizes=(16, 16), batch_size=16),
                                         dict(steps=40, start_steps=10, chunk_steps=5, replay_capacity=100),
                                         loop.LoopConfig(eval_every=20, eval_episodes=3, checkpoint_every=20),
                                         str(tmp_path), tensorboard=False, progress_bar=False)
  last = json.loads(open(tmp_path / 'metrics.jsonl').read().splitlines()[-1])
  assert last['eval_success/FlagNow'] in (0.0, 1.0) and last['eval_success/Silent'] is None
  assert [r['success_rate'] for r in rows] == [last['eval_success/FlagNow'], None]
  saved = json.load(open(tmp_path / 'results.json'))
  assert [r['success_rate'] for r in saved['members'][0]['tasks']] == [last['eval_success/FlagNow'], None]
  # evaluate.py's table (ktm.runs.restore): the same greedy policy, so the same rate; a success column printed
  [table] = restore.evaluate_checkpoint(str(tmp_path), episodes=3)
  assert [r['success_rate'] for r in table['tasks']] == [last['eval_success/FlagNow'], None]
  capsys.readouterr()
  reporting.print_table(table['tasks'])
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split()[-1] == 'success' and lines[2].split()[-1] == '—'
  assert float(lines[1].split()[-1]) == last['eval_success/FlagNow']


def test_the_report_shows_success_rates_where_runs_recorded_them(tmp_path):
  from ktm.report import build   # pylint: disable=import-outside-toplevel
  from tests.test_report import md_table, student_results, write_run   # pylint: disable=import-outside-toplevel
  for seed, (a, b) in enumerate(((0.5, None), (0.9, None))):
    results = student_results({'A': 10.0, 'B': 20.0}, 'sharednet')
    for row, rate in zip(results['tasks'], (a, b)):
      row['success_rate'] = rate
    write_run(tmp_path / f'run{seed}', dict(benchmark='toy', method='sharednet', seed=seed), results)
  write_run(tmp_path / 'plain', dict(benchmark='toy', method='td3_mt', seed=0),
            student_results({'A': 5.0, 'B': 6.0}, 'td3_mt'))
  build.write_report([str(tmp_path / n) for n in ('run0', 'run1', 'plain')], str(tmp_path / 'out'), reps=50, seed=0)
  table = md_table((tmp_path / 'out' / 'REPORT.md').read_text(), '### Success rate')
  assert list(table) == ['A']                                              # B reports no success
  assert (table['A']['SharedNet'], table['A']['TD3-MT']) == ('0.70 ± 0.28', '—')   # (0.5, 0.9): std sqrt(0.08)
