"""E environments per task and fractional updates per env step (issue 27).

The fingerprints in tests/num_envs_fingerprints.json were written by `fingerprint_runs` on the code before E > 1 and
fractional `updates_per_step` were wired through the loop (commit ab0a8ec: `KTM_WRITE_FINGERPRINTS=1 pytest
tests/test_num_envs.py`, under the tests' XLA flags), so E = 1 with an integer `updates_per_step` is checked bit for
bit against the code as it was (on another CPU, jax or XLA flags: to float32 rounding).
"""

import dataclasses
import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import checkpoint, loop, replay, resources, sweep, validate
from ktm.envs import make_suite
from ktm.methods import METHODS, OffPolicySchedule, TaskInfo, base
from ktm.methods.ktm_drl import KTMConfig
from tests.test_methods import TINY_NET, TINY_SCHEDULE, build

FINGERPRINTS = os.path.join(os.path.dirname(__file__), 'num_envs_fingerprints.json')
EPISODE = 50
_NET = TINY_NET
_SCHEDULE = dict(TINY_SCHEDULE, replay_capacity=32)
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
    out[name] = dict(learner=digest(state.learner), buffer=digest(state.buffer),
                     learner_abs_sum=abs_sum(state.learner), buffer_abs_sum=abs_sum(state.buffer))
  return out


if os.environ.get('KTM_WRITE_FINGERPRINTS') == '1':
  with open(FINGERPRINTS, 'w') as f:
    json.dump(dict(jax=jax.__version__, cpu=cpu_model(), xla_flags=os.environ.get('XLA_FLAGS', ''),
                   runs=fingerprint_runs()), f, indent=2)


# ---- E = 1 and integer updates_per_step: bit for bit the code before issue 27 ----

@pytest.fixture(scope='module')
def pendulum():
  return make_suite('pendulum_group', episode_length=EPISODE)


@pytest.mark.parametrize('name', [pytest.param(n, marks=pytest.mark.slow) if n == 'sharednet' else n
                                  for n in sorted(FINGERPRINT_RUNS)])
def test_one_env_per_task_reproduces_the_code_before_bit_for_bit(name, pendulum):
  with open(FINGERPRINTS) as f:
    saved = json.load(f)
  state = run_stages(build(name, pendulum, None, FINGERPRINT_RUNS[name]), pendulum)
  expected = saved['runs'][name]
  same_machine = (saved['jax'], saved['cpu'], saved['xla_flags']) == (jax.__version__, cpu_model(),
                                                                      os.environ.get('XLA_FLAGS', ''))
  if same_machine:
    assert (digest(state.learner), digest(state.buffer)) == (expected['learner'], expected['buffer'])
  else:   # another CPU or XLA may round differently: the same run to float32 rounding
    np.testing.assert_allclose(abs_sum(state.learner), expected['learner_abs_sum'], rtol=1e-4)
    np.testing.assert_allclose(abs_sum(state.buffer), expected['buffer_abs_sum'], rtol=1e-4)


# ---- E rows per task per epoch, in the right slots ----

def test_insert_writes_time_major_rows_into_each_task_ring_with_wrap_around():
  """K = 2, E = 3 envs, T = 2 epochs -> 6 rows per task into capacity 7 from positions 5 and 2 (by hand)."""
  buffer = replay.init(2, 7, 1, 1)
  buffer = buffer.replace(position=jnp.array([5, 2], jnp.int32), size=jnp.array([3, 0], jnp.int32))
  # row r = t * E + e of task k carries reward 100 k + 10 t + e
  reward = jnp.array([[100 * k + 10 * t + e for t in range(2) for e in range(3)] for k in range(2)], jnp.float32)
  rows = replay.Transition(obs=reward[..., None], action=reward[..., None], reward=reward, next_obs=reward[..., None],
                           terminated=jnp.zeros_like(reward))
  out = replay.insert(buffer, rows)
  # task 0: rows 0..5 -> slots 5, 6, 0, 1, 2, 3 (slot 4 untouched); task 1: rows 0..5 -> slots 2, 3, 4, 5, 6, 0
  np.testing.assert_array_equal(out.data.reward[0], [2, 10, 11, 12, 0, 0, 1])
  np.testing.assert_array_equal(out.data.reward[1], [112, 0, 100, 101, 102, 110, 111])
  np.testing.assert_array_equal(out.data.obs[1, :, 0], out.data.reward[1])
  np.testing.assert_array_equal(out.position, [4, 1])
  np.testing.assert_array_equal(out.size, [7, 6])


def test_a_chunk_of_e_envs_writes_e_rows_per_task_per_epoch_into_its_slots():
  """E = 3 envs per task, capacity 7: 3 chunks of 2 epochs = 18 rows per task wrap around the ring twice. Env e's
  step t sits at slot (3 t + e) % 7: its next_obs is the obs of slot (3 (t + 1) + e) % 7, and the last step's
  next_obs are the envs' current observations."""
  num_envs, capacity, chunk, chunks = 3, 7, 2, 3
  suite = make_suite('pendulum_group', num_envs=num_envs, episode_length=1000)
  method = build('ideal', suite, None, dict(cfg=_NET, schedule=dict(steps=chunk * chunks, start_steps=chunk * chunks,
                                                                     chunk_steps=chunk, replay_capacity=capacity)))
  state = loop.init_members(sweep.single(0), method, suite)
  for _ in range(chunks):
    state, _ = loop.offpolicy_chunk(state, None, method, suite, 0, chunk, False)
  state = loop.member_state(state, 0)
  data, total = state.buffer.data, chunk * chunks * num_envs
  np.testing.assert_array_equal(state.buffer.position, np.full(suite.num_tasks, total % capacity))
  np.testing.assert_array_equal(state.buffer.size, np.full(suite.num_tasks, capacity))
  slot = lambda t, e: (num_envs * t + e) % capacity
  last_t = total // num_envs - 1
  kept = [t for t in range(last_t + 1) if all(total - (num_envs * t + e) <= capacity for e in range(num_envs))]
  assert len(kept) == 2   # steps 4 and 5 of the 6 are still in the ring
  chained = 0
  for e in range(num_envs):
    for t in kept:
      alive = ~np.asarray(data.terminated[:, slot(t, e)], bool)   # a terminated step's env was reset after it
      following = data.obs[:, slot(t + 1, e)] if t < last_t else state.env.obs[:, e]
      np.testing.assert_array_equal(np.asarray(data.next_obs[:, slot(t, e)])[alive], np.asarray(following)[alive])
      chained += int(alive.sum())
  assert chained >= suite.num_tasks * num_envs   # most steps do not terminate
  assert len({float(data.obs[0, slot(last_t, e), 0]) for e in range(num_envs)}) == num_envs   # E distinct envs


# ---- fractional updates per step: exactly floor(epochs x p / q) updates, at the epochs the formula says ----

MAX_UPDATES = 64


@dataclasses.dataclass(frozen=True)
class CountingMethod(base.Method):
  """No networks: zero actions, and an update that records its epoch, update index and minibatch size."""
  schedule: OffPolicySchedule
  batch: int = 4

  name = 'counting'

  @property
  def batch_size(self):
    return self.batch

  def init(self, key):
    del key
    none = jnp.full((MAX_UPDATES,), -1, jnp.int32)
    return dict(updates=jnp.zeros((), jnp.int32), samples=jnp.zeros((), jnp.int32), epochs=none, indices=none)

  def act(self, learner, obs, key, explore):
    return jnp.zeros(obs.shape[:2] + (self.tasks.act_size,))

  def update(self, learner, batch, aux, stage, epoch, update_index):
    n = learner['updates']
    return dict(updates=n + 1, samples=learner['samples'] + batch.reward.size,
                epochs=learner['epochs'].at[n].set(epoch), indices=learner['indices'].at[n].set(update_index)
                ), {'loss': jnp.ones(())}


@pytest.mark.parametrize('updates_per_step', [0.25, pytest.param(1.5, marks=pytest.mark.slow)])
def test_fractional_updates_per_step_take_exactly_the_formula_s_updates_and_samples(updates_per_step):
  """E = 4 envs per task, 21 epochs of which 3 random, chunks of 3 (so at 0.25 a chunk holds 0 or 1 updates): at
  p / q updates per epoch, floor(18 p / q) updates of K x batch samples, update j at epoch 3 + ((j + 1) q - 1) // p
  (0.25: epochs 6, 10, 14, 18), E x 21 rows per task, and evaluations of 3 deterministic episodes per task."""
  num_envs, steps, start = 4, 21, 3
  suite = make_suite('pendulum_group', num_envs=num_envs, episode_length=EPISODE)
  eval_suite = make_suite('pendulum_group', num_envs=3, episode_length=EPISODE)
  method = CountingMethod(TaskInfo.from_suite(suite), OffPolicySchedule(
      steps=steps, start_steps=start, chunk_steps=3, updates_per_step=updates_per_step, replay_capacity=100))
  cfg = loop.LoopConfig(eval_every=6, eval_episodes=3, checkpoint_every=10**6, num_envs=num_envs)
  state, history, _ = loop.train(method, suite, eval_suite, None, cfg)
  learner, buffer = loop.member(state.learner, 0), loop.member(state.buffer, 0)
  p, q = validate.update_ratio(updates_per_step)
  expected = (steps - start) * p // q
  assert int(learner['updates']) == expected == {0.25: 4, 1.5: 27}[updates_per_step]
  assert int(learner['samples']) == expected * suite.num_tasks * method.batch
  np.testing.assert_array_equal(learner['indices'][:expected], np.arange(expected))
  np.testing.assert_array_equal(learner['epochs'][:expected],
                                [start + ((j + 1) * q - 1) // p for j in range(expected)])
  if updates_per_step == 0.25:
    np.testing.assert_array_equal(learner['epochs'][:expected], [6, 10, 14, 18])
  np.testing.assert_array_equal(buffer.size, np.full(suite.num_tasks, num_envs * steps))
  assert [h['epoch'] for h in history] == [6, 12, 18, 21]
  assert np.asarray(history[0]['returns']).shape == (1, suite.num_tasks, 3)



def adam_count(opt_state) -> int:
  """The optimizer's step count (the integer scalar leaves of its state agree)."""
  counts = {int(x) for x in jax.tree.leaves(opt_state) if jnp.ndim(x) == 0 and jnp.issubdtype(x.dtype, jnp.integer)}
  assert len(counts) == 1
  return counts.pop()


def test_ktm_counts_its_online_policy_delay_in_epochs_at_one_update_per_step_and_in_updates_otherwise():
  """Algorithm 1 steps the actor on odd epochs (policy_delay 2); at 0.5 updates per step every update falls on an
  odd epoch (3 + 2j with 3 random epochs), so there the delay must count updates: the actor steps on update 1, 3, ..."""
  suite = make_suite('pendulum_group')
  configs = lambda ups: dict(cfg=_NET, ktm=dict(offline_epochs=0, online_epochs=40, alpha=0.0, online_capacity=32,
                                                updates_per_step=ups))
  batch = replay.sample(replay.init(suite.num_tasks, 4, suite.obs_size, suite.act_size), jax.random.key(1), 16)
  actor_steps = {}
  for ups in (1, 0.5):
    method = build('td3_mt', suite, None, configs(ups))
    update = jax.jit(method.update, static_argnums=3)
    learner = method.init(jax.random.key(0))
    for epoch, update_index in ((4, 0), (5, 1)):   # at 1: epoch = update index + random epochs
      after, _ = update(learner, batch, None, 1, jnp.int32(epoch if ups == 1 else 2 * epoch + 3),
                        jnp.int32(update_index))
      actor_steps[ups, update_index] = adam_count(after.actor_opt_state) - adam_count(learner.actor_opt_state)
  # ups 1: epochs 4, 5 -> actor on epoch 5 only; ups 0.5: epochs 11, 13 (both odd) -> actor on update 1 only
  k = suite.num_tasks   # K sequential actor steps on a policy step
  assert actor_steps == {(1, 0): 0, (1, 1): k, (0.5, 0): 0, (0.5, 1): k}


# ---- settings ----

def test_updates_per_step_is_validated_and_stored_as_given():
  assert validate.update_ratio(0.25) == (1, 4) and validate.update_ratio(1 / 3) == (1, 3)
  assert validate.update_ratio(3) == (3, 1) and validate.update_ratio(1.5) == (3, 2)
  assert OffPolicySchedule(updates_per_step=4.0).updates_per_step == 4        # a flag's 4.0 is the preset's 4
  assert isinstance(KTMConfig(updates_per_step=2.0).updates_per_step, int)
  assert base.Stage('s', 10, updates_per_epoch=0.125).update_ratio == (1, 8)
  for bad in (0, -1, 0.0001, float('nan'), True):
    with pytest.raises(ValueError, match='updates_per_step'):
      OffPolicySchedule(updates_per_step=bad)
    with pytest.raises(ValueError, match='updates_per_step'):
      KTMConfig(updates_per_step=bad)
  for method_cls in (METHODS['sac_mt'], METHODS['td3_mt']):   # not a float to --sweep: structural
    with pytest.raises(ValueError, match='updates_per_step is structural'):
      sweep.check_fields(method_cls, ['updates_per_step'])


def test_a_chunk_of_e_envs_must_fit_the_replay():
  suite = make_suite('pendulum_group')
  method = build('td3_mt', suite, None, dict(cfg=_NET, ktm=dict(offline_epochs=0, online_epochs=40, alpha=0.0,
                                                                 chunk_steps=5, online_capacity=32)))
  resources.check_chunk_fits_replay(method, loop.LoopConfig(num_envs=6))   # 30 rows per chunk <= 32
  with pytest.raises(ValueError, match=r'one chunk of the online stage collects 35 transitions per task '
                                       r'\(--num_envs=7 x 5 epochs\) but the replay holds 32'):
    resources.check_chunk_fits_replay(method, loop.LoopConfig(num_envs=7))


def test_every_off_policy_method_has_a_fast_preset_and_the_paper_presets_keep_one_env_and_one_update():
  from ktm import presets  # pylint: disable=import-outside-toplevel
  suite = make_suite('pendulum_group')
  for name in ('ideal', 'ktm', 'td3_mt', 'sac_mt', 'sharednet', 'gsurgery'):
    paper = presets.METHODS[name]['paper']
    assert paper['loop'].get('num_envs', 1) == 1, name
    assert all('updates_per_step' not in paper.get(field, {}) for field in ('schedule', 'ktm')), name
    fast = presets.METHODS[name]['fast']
    num_envs = fast['loop']['num_envs']
    assert num_envs > 1 and fast['benchmark'] == 'pendulum_group' and fast.get('teachers', 'fast') == 'fast', name
    loop.LoopConfig(**fast['loop'])
    configs = {field: fast.get(field, {}) for field in sweep.config_fields(METHODS[name])}
    resources.check_chunk_fits_replay(build(name, suite, None, configs), loop.LoopConfig(**fast['loop']))


def test_num_envs_and_fractional_updates_per_step_are_flags():
  from absl import flags  # pylint: disable=import-outside-toplevel
  from experiments import config_flags  # pylint: disable=import-outside-toplevel
  fv = flags.FlagValues()
  for cls in (OffPolicySchedule, KTMConfig, loop.LoopConfig):
    config_flags.define_flags(cls, flag_values=fv)
  fv(['prog', '--updates_per_step=0.25', '--num_envs=8'])
  assert config_flags.build(OffPolicySchedule, {}, fv).updates_per_step == 0.25
  assert config_flags.build(KTMConfig, {}, fv).updates_per_step == 0.25
  assert config_flags.build(loop.LoopConfig, {}, fv).num_envs == 8
  assert 'p / q' in fv['updates_per_step'].help
  fv(['prog', '--updates_per_step=3'])
  built = config_flags.build(OffPolicySchedule, {}, fv)
  assert built.updates_per_step == 3 and isinstance(built.updates_per_step, int)


def test_teacher_results_count_env_steps_as_steps_times_e():
  from ktm import teachers  # pylint: disable=import-outside-toplevel
  rows = teachers.summarize(('A', 'B'), [{'returns': [[1.0, 3.0], [2.0, 2.0]]}], 100, 5.0, num_envs=4)
  assert [(r['name'], r['steps'], r['env_steps'], r['best_return']) for r in rows] == [('A', 100, 400, 2.0),
                                                                                      ('B', 100, 400, 2.0)]


# ---- where an epoch's time goes on a CPU: why E envs per task do not halve the time to a score here ----

def test_on_a_cpu_the_updates_take_an_epoch_so_e_envs_at_the_same_updates_per_env_step_are_not_2x_faster():
  """The quick teachers' size (pendulum_group, K = 4 TD3 learners, 64-64, batch 256 per task, 3 updates per env step:
  fewer did not learn in the same env steps, README time to score), timed as `benchmarks.epoch_split` does: at E = 1
  collecting (env steps into the replay) is under a quarter of an epoch, the updates the rest; so E = 4 envs per task
  at the same 3 updates per env step (12 per epoch) cost at least half as much per env step as E = 1, and many envs
  cannot make a score 2x sooner on a CPU (issue 27's target). Measured on the 2-core AMD EPYC (Zen 3, one core):
  collect share 0.134 and 0.148, E = 4 1.17x and 1.13x faster per env step (two runs). The cost model it shows: an
  epoch = collect(E) + updates x update, with update >> collect(1) on a CPU (FLOP-bound); on a GPU the update of K
  learners is ~0.3 ms and the balance differs."""
  from benchmarks.methods import make, seconds_per_epoch
  from ktm import presets
  quick = presets.TEACHERS['quick']
  per_env_step, collect_share = {}, None
  for num_envs in (1, 4):
    suite = make_suite('pendulum_group', num_envs=num_envs)
    updates = quick['schedule']['updates_per_step'] * num_envs          # the same updates per env step
    method = make('ideal', suite, dict(quick, schedule=dict(quick['schedule'], start_steps=0,
                                                             updates_per_step=updates)), 2_000, None, None)
    full = seconds_per_epoch(method, suite, None, 0, 10, 3, 3)
    per_env_step[num_envs] = full / num_envs
    if num_envs == 1:
      collect_share = seconds_per_epoch(method, suite, None, 0, 10, 3, 3, learn=False) / full
  assert collect_share < 0.25, collect_share
  assert per_env_step[1] / per_env_step[4] < 2.0, per_env_step
