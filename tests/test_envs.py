"""Suites: Benchmark A construction, batching, padding, auto-reset, API and backend agreement."""

import math
import warnings
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from ktm.envs import make_suite
from ktm.envs import models as models_lib

warnings.filterwarnings('ignore', message='.*settotalmass.*')
HC_PARTS = {'Torso': ['torso'], 'Thigh': ['bthigh', 'fthigh'], 'Leg': ['bshin', 'fshin'],
            'Foot': ['bfoot', 'ffoot']}


def _independent_variant(part, factor):
  """Edits gymnasium's half_cheetah.xml text directly, compiles, renormalises to 14 kg."""
  root = ET.parse(models_lib.asset_path('half_cheetah.xml')).getroot()
  root.find('compiler').attrib.pop('settotalmass')
  for geom in root.iter('geom'):
    if geom.get('name') in HC_PARTS[part]:
      geom.set('size', ' '.join(str(float(v) * factor) for v in geom.get('size').split()))
  model = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding='unicode'))
  return model.geom_size.copy(), model.body_mass * (14.0 / model.body_mass.sum())


def _capsule_mass(radius, half_length, density=1000.0):
  return density * (math.pi * radius**2 * 2 * half_length + 4.0 / 3.0 * math.pi * radius**3)


@pytest.mark.parametrize('size,factor', [('Small', 0.75), ('Big', 1.25)])
@pytest.mark.parametrize('part', list(HC_PARTS))
def test_halfcheetah_variant_sizes_and_masses(part, size, factor):
  model = models_lib.build_model(f'HalfCheetah{size}{part}', 'half_cheetah.xml')
  geom_size, body_mass = _independent_variant(part, factor)
  np.testing.assert_allclose(model.geom_size, geom_size, rtol=1e-12)
  np.testing.assert_allclose(model.body_mass, body_mass, rtol=1e-9)
  assert math.isclose(model.body_mass.sum(), 14.0, rel_tol=1e-12)
  original = mujoco.MjModel.from_xml_path(models_lib.asset_path('half_cheetah.xml'))
  np.testing.assert_array_equal(model.geom_pos, original.geom_pos)  # positions unchanged


def test_big_torso_mass_from_capsule_formula():
  # Unnormalised masses by hand: torso body = torso capsule (fromto length 1) + head capsule.
  torso = _capsule_mass(0.046 * 1.25, 0.5) + _capsule_mass(0.046, 0.15)
  rest = {'bthigh': (0.046, .145), 'bshin': (0.046, .15), 'bfoot': (0.046, .094),
          'fthigh': (0.046, .133), 'fshin': (0.046, .106), 'ffoot': (0.046, .07)}
  masses = [torso] + [_capsule_mass(*rest[b]) for b in
                      ('bthigh', 'bshin', 'bfoot', 'fthigh', 'fshin', 'ffoot')]
  expected = np.array([0.0] + masses) * 14.0 / sum(masses)
  big = models_lib.build_model('HalfCheetahBigTorso', 'half_cheetah.xml')
  original = mujoco.MjModel.from_xml_path(models_lib.asset_path('half_cheetah.xml'))
  np.testing.assert_allclose(big.body_mass, expected, rtol=1e-9)
  assert big.body_mass[1] > original.body_mass[1]
  assert np.all(big.body_mass[2:] < original.body_mass[2:])


def _random_actions(rng, suite):
  return jnp.asarray(rng.uniform(-1, 1, (suite.num_tasks, suite.num_envs, suite.act_size)),
                     jnp.float32)


def _rollout(suite, state, actions_seq):
  step = jax.jit(suite.step)
  outs = []
  for a in actions_seq:
    state, out = step(state, a)
    outs.append(out)
  return state, jax.tree.map(lambda *x: np.stack(x), *outs)


def test_batched_group_equals_each_variant_alone():
  group = make_suite('halfcheetah_group', num_envs=2, backend='native')
  state = group.reset(jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  actions = [_random_actions(rng, group) for _ in range(4)]
  _, outs = _rollout(group, state, actions)
  for k, name in enumerate(group.task_names):
    single = make_suite(name, num_envs=2, backend='native')
    ro = state.physics.readout[0]
    s = single.reset_to(state.key, (ro.qpos[k:k + 1],), (ro.qvel[k:k + 1],))
    _, single_outs = _rollout(single, s, [a[k:k + 1] for a in actions])
    np.testing.assert_allclose(outs.reward[:, k], single_outs.reward[:, 0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outs.next_obs[:, k], single_outs.next_obs[:, 0], rtol=1e-6,
                               atol=1e-6)


def test_mjx_and_native_agree_on_halfcheetah_group():
  # Tolerance 2e-3 (MJX runs float32 physics, native float64) over 3 steps.
  native = make_suite('halfcheetah_group', num_envs=1, backend='native')
  mjx = make_suite('halfcheetah_group', num_envs=1, backend='mjx')
  key = jax.random.PRNGKey(3)
  rng = np.random.default_rng(3)
  actions = [_random_actions(rng, native) for _ in range(3)]
  _, out_n = _rollout(native, native.reset(key), actions)
  # MJX's reset jitted: run eagerly it compiles ~1000 small programs (147 s -> 45 s for this test here)
  _, out_m = _rollout(mjx, jax.jit(mjx.reset)(key), actions)
  np.testing.assert_allclose(out_m.reward, out_n.reward, rtol=2e-3, atol=2e-3)
  np.testing.assert_allclose(out_m.next_obs, out_n.next_obs, rtol=2e-3, atol=2e-3)


def test_auto_backend_is_native_except_mjx_on_accelerators_with_many_envs():
  """'auto' follows the measured crossover (WORKSPACE.md, GPU): MJX only on an accelerator at >= 512 envs per task."""
  from ktm.envs import registry  # pylint: disable=import-outside-toplevel
  assert registry.MJX_MIN_ENVS == 512
  assert [registry._pick_backend('auto', e, 'gpu') for e in (1, 64, 511, 512, 4096)] == (  # pylint: disable=protected-access
      ['native'] * 3 + ['mjx'] * 2)
  assert {registry._pick_backend('auto', e, 'cpu') for e in (1, 4096)} == {'native'}  # pylint: disable=protected-access
  assert registry._pick_backend('mjx', 1, 'cpu') == 'mjx'  # pylint: disable=protected-access
  assert make_suite('pendulum_group', num_envs=2).backend_name == 'native'   # this CPU
  with pytest.raises(ValueError, match='backend must be'):
    make_suite('pendulum_group', backend='warp')


def test_unknown_suite_lists_registered_suites():
  with pytest.raises(ValueError) as err:
    make_suite('no_such_suite')
  for name in ('halfcheetah_group', 'benchmark_b', 'pendulum_group'):
    assert name in str(err.value)


def test_benchmark_b_padding_slicing_and_masks():
  suite = make_suite('benchmark_b', num_envs=1, backend='native')
  assert suite.obs_dims == (27, 11, 17, 17, 4, 9) and suite.act_dims == (8, 3, 6, 6, 1, 1)
  assert (suite.obs_size, suite.act_size, suite.num_tasks) == (27, 8, 6)
  expected_masks = np.array([[1] * 8, [1] * 3 + [0] * 5, [1] * 6 + [0] * 2,
                             [1] * 6 + [0] * 2, [1] + [0] * 7, [1] + [0] * 7], np.float32)
  np.testing.assert_array_equal(suite.action_masks, expected_masks)
  state = suite.reset(jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  actions = np.asarray(_random_actions(rng, suite))
  garbage = np.where(expected_masks[:, None, :] > 0, actions, 50.0).astype(np.float32)
  step = jax.jit(suite.step)
  _, out = step(state, jnp.asarray(actions * expected_masks[:, None, :]))
  _, out_garbage = step(state, jnp.asarray(garbage))  # padded entries must be ignored
  np.testing.assert_array_equal(out.reward, out_garbage.reward)
  np.testing.assert_array_equal(out.next_obs, out_garbage.next_obs)
  for k, d in enumerate(suite.obs_dims):  # observations zero-padded past each task's size
    np.testing.assert_array_equal(np.asarray(out.next_obs)[k, :, d:], 0.0)
    np.testing.assert_array_equal(np.asarray(state.obs)[k, :, d:], 0.0)


def test_truncation_and_auto_reset_at_episode_length():
  suite = make_suite('pendulum_group', num_envs=2, backend='native', episode_length=3)
  state = suite.reset(jax.random.PRNGKey(1))
  zeros = jnp.zeros((4, 2, 1))
  state, out1 = jax.jit(suite.step)(state, zeros)
  state, out2 = jax.jit(suite.step)(state, zeros)
  assert not np.any(out1.done) and not np.any(out2.done)
  np.testing.assert_array_equal(state.step_count, 2)
  state, out3 = jax.jit(suite.step)(state, zeros)
  # No pole falls in 3 steps from a 0.01-noise start: reward 1 each, truncation only.
  assert np.all(out3.truncated) and not np.any(out3.terminated) and np.all(out3.done)
  np.testing.assert_allclose(out3.episode_return, 3.0)
  np.testing.assert_allclose(out1.episode_return, 0.0)
  np.testing.assert_array_equal(state.step_count, 0)
  np.testing.assert_array_equal(state.episode_return, 0.0)
  # obs is a fresh reset state (|qpos|, |qvel| <= 0.01), next_obs the pre-reset one.
  assert np.all(np.abs(np.asarray(state.obs)) <= 0.01 + 1e-6)
  assert not np.allclose(state.obs, out3.next_obs)


def test_termination_is_not_truncation_and_resets():
  suite = make_suite('InvertedPendulum', num_envs=1, backend='native', episode_length=1000)
  state = suite.reset(jax.random.PRNGKey(2))
  step = jax.jit(suite.step)
  push = jnp.ones((1, 1, 1))
  for t in range(50):
    state, out = step(state, push)
    if bool(out.done[0, 0]):
      break
  assert bool(out.terminated[0, 0]) and not bool(out.truncated[0, 0])
  assert abs(float(out.next_obs[0, 0, 1])) > 0.2  # the pole angle that ended it
  assert float(out.reward[0, 0]) == 0.0
  np.testing.assert_allclose(out.episode_return[0, 0], t)  # reward 1 on all earlier steps
  assert abs(float(state.obs[0, 0, 1])) <= 0.01 + 1e-6 and int(state.step_count[0, 0]) == 0


def test_jit_scan_and_vmap_match_eager_step():
  suite = make_suite('pendulum_group', num_envs=2, backend='native', episode_length=4)
  rng = np.random.default_rng(5)
  actions = jnp.stack([_random_actions(rng, suite) for _ in range(6)])
  state0 = suite.reset(jax.random.PRNGKey(4))
  eager_state, eager_outs = state0, []
  for a in actions:
    eager_state, out = suite.step(eager_state, a)
    eager_outs.append(out)
  eager = jax.tree.map(lambda *x: np.stack(x), *eager_outs)
  scan_state, scanned = jax.jit(lambda s, a: jax.lax.scan(suite.step, s, a))(state0, actions)
  # Equal up to float32 rounding (XLA may fuse the jitted action scaling differently).
  for a, b in zip(jax.tree.leaves((eager_state, eager)), jax.tree.leaves((scan_state, scanned))):
    if a.dtype != jnp.uint32:  # skip the native float64 bit patterns
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  # vmap over two independent batches of states (the native callback's vmap path).
  keys = jax.random.split(jax.random.PRNGKey(6), 2)
  states = jax.vmap(suite.reset)(keys)
  vm_state, vm_out = jax.jit(jax.vmap(suite.step))(states, jnp.stack([actions[0], actions[1]]))
  for i in range(2):
    s_i, o_i = suite.step(suite.reset(keys[i]), actions[i])
    np.testing.assert_allclose(vm_out.next_obs[i], o_i.next_obs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vm_state.obs[i], s_i.obs, rtol=1e-5, atol=1e-5)
