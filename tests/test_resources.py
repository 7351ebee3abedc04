"""The resource model (ktm/resources.py): every term against what a small run really allocates (the bytes of the
arrays it builds, or XLA's own count of a compiled update's buffers), the refusal line, the chunk/replay check and
the evaluation warning. The oversized command lines of issue 26 are rows of tests/test_bad_inputs.py."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from ktm import loop, presets, replay, resources, rollout, sweep as sweep_lib, teachers, td3
from ktm.envs import make_suite, metaworld_suite
from ktm.methods import METHODS
from ktm.runs import checks
from tests.test_methods import TINY, build

LOOP = loop.LoopConfig(eval_every=20, eval_episodes=3, checkpoint_every=20, num_envs=2)


@pytest.fixture(scope='module')
def suite():
  return make_suite('pendulum_group', num_envs=LOOP.num_envs)


def by_name(terms):
  return {t.name: t for t in terms}


def test_state_terms_equal_the_bytes_of_the_built_run_state(suite):
  """replay, learner, envs: exact, per member, for a 2-member sweep built by the loop itself."""
  method = build('ideal', suite, None)
  state = loop.init_members(sweep_lib.grid(0, 2, ()), method, suite)
  terms = by_name(resources.terms(method, suite, LOOP))
  assert 2 * terms['replay'].per_member == resources.tree_bytes(state.buffer)
  assert 2 * terms['learner'].per_member == resources.tree_bytes(state.learner) > 0
  assert 2 * terms['envs'].per_member == resources.tree_bytes(state.env) > 0
  assert resources.checkpoint_bytes(list(terms.values()), 2) == resources.tree_bytes(
      (state.buffer, state.learner, state.env))
  a2c = build('a2c_mt', suite, None)                 # on-policy: no replay, its own networks
  terms = by_name(resources.terms(a2c, suite, LOOP))
  assert terms['replay'].per_member == 0
  assert terms['learner'].per_member == resources.tree_bytes(jax.jit(a2c.init)(jax.random.key(0)))


def test_collected_and_evaluation_envs_equal_what_collect_and_the_eval_suite_build(suite):
  method = build('ideal', suite, None)               # chunk_steps 5: 5 epochs x 2 envs per chunk
  terms = by_name(resources.terms(method, suite, LOOP))
  act = lambda params, obs, k: method.act(params, obs, k, True)
  _, rows, _ = jax.eval_shape(lambda k: rollout.collect(act, method.init(k), suite.reset(k), k, jnp.int32(0), suite,
                                                        5, 0), jax.random.key(0))    # what the compiled call returns
  assert terms['collected'].per_member == resources.tree_bytes(rows) == 4 * 5 * 2 * 4 * (2 * suite.obs_size
                                                                                         + suite.act_size + 2)
  eval_suite = make_suite('pendulum_group', num_envs=LOOP.eval_episodes)
  eval_envs = resources.tree_bytes(eval_suite.reset(jax.random.key(0)))
  widths = resources.dense_widths(jax.eval_shape(method.init, jax.random.key(0)))
  assert terms['evaluation'].per_member - resources.activation_bytes(4 * LOOP.eval_episodes, widths) == eval_envs


def test_teacher_set_bytes_equal_a_loaded_set(suite, tmp_path):
  """A saved set whose tasks hold different numbers of replay rows: stacked to the largest, as `teachers.load`."""
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, hidden_sizes=(16, 16))
  learners = jax.jit(td3.init_many, static_argnums=(1, 2))(jax.random.key(0), suite.num_tasks, cfg)   # one compile
  buffer = replay.init(suite.num_tasks, 50, suite.obs_size, suite.act_size)
  buffer = buffer.replace(size=jnp.array([10, 50, 30, 20], jnp.int32))
  teachers.save(str(tmp_path), suite, learners, buffer, cfg, {}, [])
  loaded = teachers.load(str(tmp_path), suite)
  metas = teachers.load_metas(str(tmp_path), suite)
  assert resources.teacher_set_bytes(metas, suite, cfg) == resources.tree_bytes(loaded)
  one = checks.teacher_memory(str(tmp_path), suite, sweep_lib.grid(0, 3, ()), 0)
  assert one == (resources.tree_bytes(loaded), False)          # one set for three seeds: shared
  terms = resources.terms(build('ideal', suite, None), suite, LOOP, one[0], True)
  assert by_name(terms)['teachers'] == resources.Term('teachers', one[0], 0)


def _xla_update_bytes(method, suite):
  """XLA's count of one compiled update's temporary buffers plus its minibatch argument."""
  k, b = suite.num_tasks, method.batch_size
  batch = replay.Transition(**{f: jax.ShapeDtypeStruct((k, b) + s, jnp.float32)
                               for f, s in replay.field_shapes(suite.obs_size, suite.act_size).items()})
  learner = jax.eval_shape(method.init, jax.random.key(0))
  stage = len(method.stages()) - 1
  compiled = jax.jit(lambda l, x: method.update(l, x, None, stage, jnp.int32(0), jnp.int32(0))).lower(
      learner, batch).compile()
  return compiled.memory_analysis().temp_size_in_bytes + resources.tree_bytes(batch)


@pytest.mark.parametrize('name,hidden,batch', [('td3_mt', (64, 64), 256), ('td3_mt', (64, 64), 1024),
                                               ('sharednet', (128, 128), 256)])
def test_activations_bound_xla_s_measured_update_memory_within_5x(suite, name, hidden, batch):
  configs = {field: dict(kwargs) for field, kwargs in TINY[name].items()}
  configs['cfg'].update(hidden_sizes=hidden, batch_size=batch)
  method = build(name, suite, None, configs)
  estimate = by_name(resources.terms(method, suite, LOOP))['activations'].per_member
  measured = _xla_update_bytes(method, suite)
  assert measured <= estimate <= 5 * measured, (estimate, measured)


def test_a2c_activations_count_the_rollout_rows(suite):
  method = build('a2c_mt', suite, None)
  widths = resources.dense_widths(jax.eval_shape(method.init, jax.random.key(0)))
  row = resources.tree_bytes(replay.Transition(**{f: jax.ShapeDtypeStruct(s, jnp.float32) for f, s in
                                                  replay.field_shapes(suite.obs_size, suite.act_size).items()}))
  assert method.update_rows(LOOP.num_envs) == 5 * LOOP.num_envs
  assert by_name(resources.terms(method, suite, LOOP))['activations'].per_member == resources.activation_bytes(
      4 * 5 * LOOP.num_envs, widths, row)


def test_check_refuses_in_one_line_naming_the_largest_terms_and_the_ways_out():
  terms = [resources.Term('replay', 3 * 2**30), resources.Term('learner', 1000), resources.Term('activations', 2**30),
           resources.Term('teachers', 0, 2**30)]
  resources.check(terms, members=1, free=6 * 2**30)                  # 5 GiB fits
  with pytest.raises(MemoryError) as info:
    resources.check(terms, members=2, free=6 * 2**30, what='ktm on 4 tasks')
  line = str(info.value)
  assert '\n' not in line and line.startswith('ktm on 4 tasks needs about 9.00 GiB (4.00 GiB per member x 2 sweep '
                                              'members per device) but 6.00 GiB are free'), line
  assert 'largest: replay 6.00 GiB, activations 2.00 GiB, teachers 1.00 GiB; ways out: fewer members' in line, line
  assert 'learner' not in line and 'a smaller --batch_size' in line and '--replay_capacity' in line
  resources.check(terms, members=2, devices=2, free=6 * 2**30)      # one member per device fits
  host = resources.host_terms(terms + [resources.Term('envs', 2**30), resources.Term('evaluation', 2**30)])
  assert host == [resources.Term('checkpoint', 3 * 2**30 + 1000 + 2**30)]     # replay + learner + envs
  with pytest.raises(MemoryError, match=r'largest: checkpoint 8.00 GiB; ways out: fewer members .*a checkpoint '
                                        'passes through host memory'):
    resources.check(host, members=2, free=6 * 2**30)


def test_a_chunk_larger_than_the_replay_is_refused(suite):
  method = build('ideal', suite, None)                # replay 100, chunk 5
  resources.check_chunk_fits_replay(method, dataclasses.replace(LOOP, num_envs=20))
  with pytest.raises(ValueError, match=r'collects 105 transitions per task \(--num_envs=21 x 5 epochs\) but the '
                                       r'replay holds 100'):
    resources.check_chunk_fits_replay(method, dataclasses.replace(LOOP, num_envs=21))


def test_evaluation_warning_when_it_costs_far_more_than_training_and_never_for_a_preset(suite):
  method = build('ideal', suite, None)                # 40 epochs x 2 envs = 80 training env steps per task
  assert resources.evaluation_warning(method, suite, dataclasses.replace(LOOP, eval_every=40, eval_episodes=1)) is None
  line = resources.evaluation_warning(method, suite, dataclasses.replace(LOOP, eval_every=10, eval_episodes=10))
  assert line.startswith('warning: evaluation takes up to 40,000 env steps per task (4 evaluations x 10 episodes x '
                         "1,000 steps), 500x the training's 80: fewer --eval_episodes"), line
  for name, by_preset in presets.METHODS.items():
    for preset_name, preset in by_preset.items():
      if preset_name.startswith('tiny'):      # seconds-long test runs: they do warn
        continue
      if preset['benchmark'].startswith('mt10') and not metaworld_suite.available():
        continue                              # optional: needs the metaworld package
      cfg = loop.LoopConfig(**preset.get('loop', {}))
      tasks = make_suite(preset['benchmark'], num_envs=cfg.num_envs, backend='native')
      method = build(name, tasks, None, {f: preset.get(f, {}) for f in sweep_lib.config_fields(METHODS[name])})
      assert resources.evaluation_warning(method, tasks, cfg) is None, (name, preset_name)
