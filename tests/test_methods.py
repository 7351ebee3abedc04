"""Every registered method on the shared loop: a short learning run on pendulum_group that beats a random policy and,
resumed from its next-to-last checkpoint, ends bit for bit as it did; crash + resume == uninterrupted at tiny sizes
(bit for bit, which also shows determinism: both runs start from the seed alone); the NaN guard, TD3-MT == KTM with
alpha = 0."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import checkpoint, loop, padding, replay, rollout, td3, teachers
from ktm import sweep as sweep_lib
from ktm.envs import make_suite
from ktm.methods import METHODS, IdealMethod, OffPolicySchedule, TaskInfo
from ktm.methods import ktm_drl
from ktm.runs import run_config
from tests.numpy_ref import train_one
from tests.test_td3 import _plain, tree_equal

EPISODE = 50
TINY_NET = dict(hidden_sizes=(16, 16), batch_size=16)
TINY_SCHEDULE = dict(steps=40, start_steps=10, chunk_steps=5, replay_capacity=100)
# Per method: {config field: kwargs} for a run of 40 epochs with a checkpoint every 20.
TINY = {
    'ideal': dict(cfg=TINY_NET, schedule=TINY_SCHEDULE),
    'ktm': dict(cfg=TINY_NET, ktm=dict(offline_epochs=20, online_epochs=20, offline_chunk=10, chunk_steps=5,
                                       online_capacity=100)),
    'td3_mt': dict(cfg=TINY_NET, ktm=dict(offline_epochs=0, online_epochs=40, alpha=0.0, chunk_steps=5,
                                          online_capacity=100, online_start_steps=10)),
    'sac_mt': dict(cfg=TINY_NET, schedule=TINY_SCHEDULE),
    'sharednet': dict(cfg=TINY_NET, schedule=TINY_SCHEDULE),
    'gsurgery': dict(cfg=TINY_NET, schedule=TINY_SCHEDULE),
    'a2c_mt': dict(cfg=dict(hidden_sizes=(16, 16), n_steps=5), schedule=dict(epochs=8, chunk=2)),
}
CHECKPOINT_EVERY = {'a2c_mt': 4}
LOOP = dict(eval_every=20, eval_episodes=2, checkpoint_every=20)


@pytest.fixture(scope='module')
def suites():
  return make_suite('pendulum_group', episode_length=EPISODE), make_suite('pendulum_group', num_envs=2,
                                                                          episode_length=EPISODE)


@pytest.fixture(scope='module')
def tiny_teachers(suites):
  suite, eval_suite = suites
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, **TINY_NET)
  method = IdealMethod(TaskInfo.from_suite(suite), cfg,
                       OffPolicySchedule(steps=100, start_steps=50, chunk_steps=50, replay_capacity=100))
  state, history, _ = train_one(method, suite, eval_suite, None, loop.LoopConfig(eval_every=100, eval_episodes=2))
  return teachers.Teachers(states=state.learner, buffer=state.buffer, cfg=cfg, meta=())


def build(name, suite, teacher_cfg, configs=None):
  configs = configs or TINY[name]
  with_sizes = {field: dict(kwargs, obs_size=suite.obs_size, act_size=suite.act_size)
                if 'obs_size' in cls.__dataclass_fields__ else kwargs
                for field, cls in sweep_lib.config_fields(METHODS[name]).items() for kwargs in [configs[field]]}
  return run_config.build_method(name, TaskInfo.from_suite(suite), with_sizes, teacher_cfg)


class Crash(Exception):
  pass


class CrashAfter(loop.Reporter):
  """Simulates a kill: raises in the first chunk after global epoch `epoch` (a checkpoint is saved at `epoch`)."""

  def __init__(self, epoch):
    self.epoch = epoch

  def chunk(self, stage_name, global_epoch, metrics, returns):
    if global_epoch > self.epoch:
      raise Crash


# Each method with a learning run below also resumes there (from its next-to-last checkpoint, on the learning run's
# compiled programs); here, at tiny sizes, KTM-DRL (a crash at its stage boundary) and, with KTM_SLOW=1, every method.
@pytest.mark.parametrize('name', [n if n == 'ktm' else pytest.param(n, marks=pytest.mark.slow) for n in sorted(METHODS)])
def test_resume_after_a_crash_equals_an_uninterrupted_run(name, suites, tiny_teachers, tmp_path):
  suite, eval_suite = suites
  method = build(name, suite, tiny_teachers.cfg)
  aux = method.make_aux(tiny_teachers)
  every = CHECKPOINT_EVERY.get(name, LOOP['checkpoint_every'])
  cfg = loop.LoopConfig(**dict(LOOP, checkpoint_every=every, eval_every=every))
  full, full_history, _ = loop.train(method, suite, eval_suite, aux, cfg, str(tmp_path / 'full'))
  crashed = str(tmp_path / 'crashed')
  with pytest.raises(Crash):
    loop.train(method, suite, eval_suite, aux, cfg, crashed, reporter=CrashAfter(every))
  resumed, resumed_history, _ = loop.train(method, suite, eval_suite, aux, cfg, crashed)
  assert int(full.stage) == len(method.stages())
  assert tree_equal(resumed, full)
  assert resumed_history == full_history
  assert not tree_equal(loop.member(full.learner, 0), method.init(jax.random.fold_in(jax.random.key(0), 0)))   # it did train


def test_an_offline_stage_that_stalls_ends_early_gives_its_epochs_to_the_online_stage_and_resumes_exactly(
    suites, tiny_teachers, tmp_path, monkeypatch):
  """KTM with offline_patience: the loop asks `plateau.stalled` after every offline evaluation with that stage's
  returns [N, S, K, E]; here the rule says 'stalled' at the 2nd (epoch 20 of 40), so the online stage trains 20 + 20
  epochs (the total stays 60), the boundary checkpoint at 20 is kept, and a run crashed right after the early end
  resumes bit for bit (the end is in the checkpoint)."""
  suite, eval_suite = suites
  asked = []

  def stalled(returns, patience):
    asked.append((np.shape(returns), patience))
    return len(returns) >= 2

  monkeypatch.setattr(loop.plateau, 'stalled', stalled)
  method = build('ktm', suite, tiny_teachers.cfg, dict(TINY['ktm'], ktm=dict(
      TINY['ktm']['ktm'], offline_epochs=40, offline_patience=3)))
  aux = method.make_aux(tiny_teachers)
  cfg = loop.LoopConfig(eval_every=10, eval_episodes=2, checkpoint_every=10)
  full, history, _ = loop.train(method, suite, eval_suite, aux, cfg, str(tmp_path / 'full'))
  assert asked == [((1, 1, 4, 2), 3), ((2, 1, 4, 2), 3)]
  assert [(h['stage'], h['epoch'], h['global_epoch']) for h in history] == [
      ('offline', 10, 10), ('offline', 20, 20), ('online', 10, 30), ('online', 20, 40), ('online', 30, 50),
      ('online', 40, 60)]
  assert int(full.stage) == len(method.stages())
  assert 20 in checkpoint.CheckpointManager(str(tmp_path / 'full' / 'checkpoints')).all_steps()
  crashed = str(tmp_path / 'crashed')
  with pytest.raises(Crash):
    loop.train(method, suite, eval_suite, aux, cfg, crashed, reporter=CrashAfter(20))
  resumed, resumed_history, _ = loop.train(method, suite, eval_suite, aux, cfg, crashed)
  assert tree_equal(resumed, full)
  assert resumed_history == history


def test_the_host_reads_a_chunk_only_after_dispatching_the_next_unless_it_ends_at_an_evaluation_or_checkpoint(
    suites, tiny_teachers, monkeypatch):
  """TD3-MT's 40 epochs in chunks of 5 (evaluations and checkpoints every 20): the metrics of the chunks ending at
  5, 10, 15, 25, 30 and 35 are read after the next chunk is dispatched, those ending at 20 (an evaluation and a
  checkpoint) before. The computation is the same (the resume test above compares a run with an uninterrupted
  one)."""
  suite, eval_suite = suites
  method = build('td3_mt', suite, tiny_teachers.cfg)
  events, chunk_of, alive = [], {}, []
  dispatch, read = loop.offpolicy_chunk, loop.to_host

  def recording_dispatch(state, *args, **kwargs):
    state, metrics = dispatch(state, *args, **kwargs)
    chunk_of[id(metrics)] = len(chunk_of)
    alive.append(metrics)     # no other dict may take its id
    events.append(('dispatch', chunk_of[id(metrics)]))
    return state, metrics

  def recording_read(tree):
    if id(tree) in chunk_of:
      events.append(('read', chunk_of[id(tree)]))
    return read(tree)

  def read_late(read_ahead):
    events.clear()
    chunk_of.clear()
    alive.clear()
    loop.train(method, suite, eval_suite, method.make_aux(tiny_teachers), loop.LoopConfig(**LOOP),
               read_ahead=read_ahead)
    assert len(chunk_of) == 8, events
    return {5 * (i + 1) for i in range(7) if events.index(('read', i)) > events.index(('dispatch', i + 1))}

  monkeypatch.setattr(loop, 'offpolicy_chunk', recording_dispatch)
  monkeypatch.setattr(loop, 'to_host', recording_read)
  assert read_late(True) == {5, 10, 15, 25, 30, 35}, events
  assert read_late(False) == set(), events       # the loop before 2026-12-04 (benchmarks/host_loop.py)


class NaNAfter(ktm_drl.TD3MTMethod):
  """TD3-MT whose task-1 critic loss becomes NaN from epoch 25 on (a forced divergence)."""

  def update(self, learner, batch, aux, stage, epoch, update_index):
    learner, metrics = super().update(learner, batch, aux, stage, epoch, update_index)
    poison = jnp.where((epoch >= 25) & (jnp.arange(self.tasks.num_tasks) == 1), jnp.nan, 0.0)
    return learner, dict(metrics, critic_loss=metrics['critic_loss'] + poison)


def test_nan_guard_names_stage_epochs_and_task_and_keeps_the_last_good_checkpoint(suites, tmp_path):
  suite, eval_suite = suites
  method = build('td3_mt', suite, None)
  method = NaNAfter(method.tasks, method.cfg, method.ktm)
  workdir = str(tmp_path / 'w')
  with pytest.raises(loop.TrainingDiverged, match=r"stage 'online' between epochs 25 and 30 \(global 30\), task "
                                                  + suite.task_names[1] + r"; the last good checkpoint \(epoch 20\) "
                                                  "is kept"):
    loop.train(method, suite, eval_suite, None, loop.LoopConfig(**LOOP), workdir)
  with pytest.raises(loop.TrainingDiverged, match='; no checkpoint had been saved yet and no results'):
    loop.train(method, suite, eval_suite, None, loop.LoopConfig(**LOOP))     # nothing saved: none is claimed
  from ktm import checkpoint
  manager = checkpoint.CheckpointManager(f'{workdir}/checkpoints')
  assert manager.latest_step() == 20
  manager.close()


def test_td3_mt_is_k_sequential_td3_updates(suites):
  """TD3-MT's epoch == td3.update on task 0's batch, then on task 1's, with the task's mask and the epoch's delay."""
  suite, _ = suites
  method = build('td3_mt', suite, None)
  masks = jnp.asarray(padding.action_masks([1, 2], 2))
  cfg = td3.TD3Config(obs_size=3, act_size=2, **TINY_NET)
  method = ktm_drl.TD3MTMethod(TaskInfo(('a', 'b'), (3, 2), (1, 2)), cfg, method.ktm)
  state = method.init(jax.random.key(0))
  keys = jax.random.split(jax.random.key(1), 4)
  batch = replay.Transition(obs=jax.random.normal(keys[0], (2, 8, 3)),
                            action=jnp.tanh(jax.random.normal(keys[1], (2, 8, 2))) * masks[:, None],
                            reward=jax.random.normal(keys[2], (2, 8)), next_obs=jax.random.normal(keys[3], (2, 8, 3)),
                            terminated=jnp.zeros((2, 8)))
  update = jax.jit(method.update, static_argnums=3)
  plain = jax.jit(td3.update, static_argnames='cfg')
  ours, expected = state, state
  for epoch in range(4):
    ours, _ = update(ours, batch, None, ktm_drl.ONLINE, jnp.int32(epoch), jnp.int32(epoch))
    for k in range(2):
      expected, _ = plain(expected, jax.tree.map(lambda x, k=k: x[k], batch), cfg=cfg, action_mask=masks[k],
                          policy_step=td3.is_policy_step(jnp.int32(epoch), cfg))
    expected = expected.replace(step=jnp.int32(epoch + 1))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x), _plain(y), rtol=1e-6, atol=1e-7), ours, expected)


# Short learning runs: pendulum_group, 64-64 networks. A uniform-random policy keeps the poles up for ~3-8 steps (the
# bar: random + 20, <= 27). Best returns per task at these lengths on this CPU (2026-12-04, test XLA flags): TD3-MT
# >= 103, SAC-MT >= 130, SharedNet >= 48, G-Surgery >= 44 after 1000 epochs, A2C-MT >= 84 after 200; the Ideal
# teachers needed 1500 (LightPole 14 after 1000). The runs were 3000 (A2C-MT 600) epochs until 2026-12-03.
LEARN = {
    'ideal': dict(cfg=dict(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3),
                  schedule=dict(steps=1500, start_steps=500, chunk_steps=10, replay_capacity=1500, updates_per_step=2)),
    'td3_mt': dict(cfg=dict(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3),
                   ktm=dict(offline_epochs=0, online_epochs=1000, alpha=0.0, chunk_steps=10, online_capacity=1500,
                            online_start_steps=500)),
    'sac_mt': dict(cfg=dict(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3),
                   schedule=dict(steps=1000, start_steps=500, chunk_steps=10, replay_capacity=1500)),
    'sharednet': dict(cfg=dict(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3),
                      schedule=dict(steps=1000, start_steps=500, chunk_steps=10, replay_capacity=1500,
                                    updates_per_step=4)),
    'gsurgery': dict(cfg=dict(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3),
                     schedule=dict(steps=1000, start_steps=500, chunk_steps=10, replay_capacity=1500)),
    # Plain multi-task A2C (no teachers: distill_coef 0), 8 envs per task.
    'a2c_mt': dict(cfg=dict(hidden_sizes=(64, 64), learning_rate=1e-3, distill_coef=0.0),
                   schedule=dict(epochs=200, chunk=100)),
}
NUM_ENVS = {'a2c_mt': 8}
MARGIN = 20.0


def as_long_as_before(configs):
  """The same configs at the runs' length before 2026-12-03: 3000 epochs and replay rows (A2C-MT 600 epochs)."""
  lengths = dict(steps=3000, replay_capacity=3000, online_epochs=3000, online_capacity=3000, epochs=600)
  return {field: {k: lengths.get(k, v) for k, v in kwargs.items()} for field, kwargs in configs.items()}


# Checkpoints of the learning runs: the run resumed from its next-to-last one (100 epochs before its end) must end
# as the uninterrupted run did.
CHECKPOINT_AT = {'ideal': 700, 'a2c_mt': 100}


def check_beats_a_random_policy(name, configs, workdir=None):
  """The run's best return per task beats a uniform-random policy's by MARGIN. With `workdir`, the run checkpoints
  (CHECKPOINT_AT, else every 900 epochs) and a copy of its directory without the last checkpoint (a kill right after
  the one before) resumes: state and history equal the uninterrupted run's, bit for bit."""
  num_envs = NUM_ENVS.get(name, 1)
  suite = make_suite('pendulum_group', num_envs=num_envs)
  eval_suite = make_suite('pendulum_group', num_envs=5)
  method = build(name, suite, None, configs)
  cfg = loop.LoopConfig(eval_every=100 if name == 'a2c_mt' else 1000, eval_episodes=5, num_envs=num_envs,
                        checkpoint_every=CHECKPOINT_AT.get(name, 900))
  full_dir = None if workdir is None else os.path.join(workdir, 'full')
  state, history, _ = loop.train(method, suite, eval_suite, None, cfg, full_dir)
  random_returns = np.asarray(rollout.evaluate(lambda p, obs, key: rollout.uniform_actions(key, eval_suite), None,
                                               jax.random.key(0), eval_suite)).mean(axis=1)
  best = loop.best_returns(loop.member_history(history, 0))
  assert np.all(best >= random_returns + MARGIN), (best, random_returns)
  if workdir is None:
    return
  crashed = os.path.join(workdir, 'crashed')
  shutil.copytree(full_dir, crashed)
  manager = checkpoint.CheckpointManager(os.path.join(crashed, 'checkpoints'))
  last, before = manager.all_steps()[:2]
  manager.close()
  shutil.rmtree(manager.step_directory(last))
  resumed, resumed_history, _ = loop.train(method, suite, eval_suite, None, cfg, crashed)
  assert last - before == 100 and int(resumed.stage) == len(method.stages())
  assert tree_equal(resumed, state)
  assert resumed_history == history


@pytest.mark.parametrize('name', sorted(n for n in LEARN if n in METHODS))
def test_short_run_beats_a_random_policy_and_resumes_exactly(name, tmp_path):
  check_beats_a_random_policy(name, LEARN[name], str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(n for n in LEARN if n in METHODS))
def test_a_run_as_long_as_before_beats_a_random_policy(name):
  check_beats_a_random_policy(name, as_long_as_before(LEARN[name]))


def test_the_loop_compiles_a_bfloat16_method_with_its_xla_options(suites, monkeypatch):
  """Without networks.xla_compiler_options XLA:CPU runs bfloat16 dots in float32 (no speed-up): the loop must ask
  for the method's dtype's options."""
  suite, eval_suite = suites
  asked = []
  real = loop.networks.xla_compiler_options
  monkeypatch.setattr(loop.networks, 'xla_compiler_options', lambda dtype: asked.append(dtype) or real(dtype))
  loop._compiled.cache_clear()   # pylint: disable=protected-access
  configs = dict(TINY['ideal'], cfg=dict(TINY_NET, compute_dtype='bfloat16'))
  method = build('ideal', suite, None, configs)
  assert loop.compute_dtype(method) == 'bfloat16' and real('bfloat16')    # CPU: a non-empty option set
  state, history, _ = train_one(method, suite, eval_suite, None, loop.LoopConfig(**LOOP))
  assert set(asked) == {'bfloat16'} and len(history) == 2
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.learner.actor_params))
  loop._compiled.cache_clear()   # pylint: disable=protected-access
