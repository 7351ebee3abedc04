"""Mixed-precision networks (bfloat16 matmul inputs, float32 everywhere else), the physics' matmul precision, and the
one-command GPU benchmark's smoke run."""

import json
import math

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from ktm import networks, td3
from tests import numpy_ref
from tests import test_td3 as td3_tests

OBS, ACT, HIDDEN = 11, 3, (64, 48)
F32 = td3.TD3Config(obs_size=OBS, act_size=ACT, hidden_sizes=HIDDEN, batch_size=32)
BF16 = td3.TD3Config(obs_size=OBS, act_size=ACT, hidden_sizes=HIDDEN, batch_size=32, compute_dtype='bfloat16')


def bf16_round(x):
  """float32 -> nearest bfloat16 (round to nearest even, as XLA's convert) -> float64."""
  return np.asarray(np.asarray(x, np.float32).astype(ml_dtypes.bfloat16), np.float64)


def emulated_mlp(params, x):
  """numpy reference of the bfloat16 MLP: each layer's input and kernel rounded to bfloat16, the product and
  sum exact (float64, standing in for float32 accumulation), bias and ReLU in float32."""
  layers = sorted(params, key=lambda name: int(name.split('_')[-1]))
  x = np.asarray(x, np.float32)
  for i, name in enumerate(layers):
    y = bf16_round(x) @ bf16_round(params[name]['kernel'])
    x = (y.astype(np.float32) + np.asarray(params[name]['bias'], np.float32)).astype(np.float32)
    if i < len(layers) - 1:
      x = np.maximum(x, 0.0)
  return x.astype(np.float64)




def test_compute_dtype_is_validated():
  with pytest.raises(ValueError, match='compute_dtype'):
    td3.TD3Config(obs_size=3, act_size=2, compute_dtype='float16')


def test_parameters_do_not_depend_on_the_compute_dtype():
  init = jax.jit(td3.init, static_argnums=1)
  f32, bf16 = init(jax.random.key(0), F32), init(jax.random.key(0), BF16)
  assert jax.tree.structure(f32) == jax.tree.structure(bf16)
  as_array = lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
  for a, b in zip(jax.tree.leaves(f32), jax.tree.leaves(bf16)):
    np.testing.assert_array_equal(as_array(a), as_array(b))
  assert f32.actor_params['MLP_0']['Dense_0']['kernel'].shape == (OBS, HIDDEN[0])


def test_bf16_actor_matches_emulation_and_stays_close_to_f32():
  """Tolerances: against the bfloat16 emulation 1e-5 (float32 summation order only); against float32 2e-2 (three
  layers of 8-bit-mantissa inputs), and the two references differ by more than 1e-4, so the first check can fail."""
  params = td3.init(jax.random.key(1), BF16).actor_params
  obs = jax.random.normal(jax.random.key(2), (64, OBS))
  out_bf16 = np.asarray(td3.policy(params, obs, BF16), np.float64)
  out_f32 = np.asarray(td3.policy(params, obs, F32), np.float64)
  emulated = np.tanh(emulated_mlp(params['MLP_0'], obs))
  exact = numpy_ref.actor(params, np.asarray(obs, np.float64))
  assert out_bf16.dtype == np.float64 and td3.policy(params, obs, BF16).dtype == jnp.float32
  np.testing.assert_allclose(out_bf16, emulated, atol=1e-5)
  # Compiled, with or without XLA's bfloat16 dot kernels, the rounding stays (XLA may not fold it away).
  for options in ({}, networks.xla_compiler_options('bfloat16')):
    compiled = jax.jit(lambda p, o: td3.policy(p, o, BF16), compiler_options=options)(params, obs)
    np.testing.assert_allclose(np.asarray(compiled, np.float64), emulated, atol=1e-5)
  np.testing.assert_allclose(out_f32, exact, atol=1e-5)
  np.testing.assert_allclose(out_bf16, out_f32, atol=2e-2)
  assert np.max(np.abs(emulated - exact)) > 1e-4


def test_bf16_twin_critic_matches_emulation():
  params = td3.init(jax.random.key(3), BF16).critic_params
  batch = td3_tests.random_batch(jax.random.key(4), 64, BF16)
  q = np.asarray(td3.twin_q(params, batch.obs, batch.action, BF16), np.float64)
  inputs = np.concatenate([batch.obs, batch.action], axis=-1)
  for j in range(2):
    single = {n: {k: np.asarray(v)[j] for k, v in layer.items()} for n, layer in params['MLP_0'].items()}
    np.testing.assert_allclose(q[j], emulated_mlp(single, inputs)[:, 0], atol=1e-5)
    np.testing.assert_allclose(q[j], numpy_ref.critic(params, j, batch.obs, batch.action), atol=2e-2)


def test_bf16_matmul_gradients_are_bf16_products_accumulated_in_f32():
  """dx = g w^T and dw = x^T g with bfloat16-rounded factors and float32 results; JAX's own transpose of a mixed
  dot would round dw to bfloat16 (relative error ~4e-3), which the 2e-5 tolerance rejects."""
  x = jax.random.normal(jax.random.key(5), (3, 7, 20))     # leading dims are flattened into the batch
  w = jax.random.normal(jax.random.key(6), (20, 9))
  g = jax.random.normal(jax.random.key(7), (3, 7, 9))
  y, vjp = jax.vjp(networks.bf16_matmul, x, w)
  dx, dw = vjp(g)
  assert y.dtype == dx.dtype == dw.dtype == jnp.float32
  xr, wr, gr = bf16_round(x), bf16_round(w), bf16_round(g)
  np.testing.assert_allclose(y, xr @ wr, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(dx, gr @ wr.T, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(dw, np.einsum('abi,abo->io', xr, gr), rtol=2e-5, atol=2e-5)


def test_params_and_optimizer_state_stay_f32_after_updates():
  state = td3.init_many(jax.random.key(8), 2, BF16)
  batches = jax.vmap(lambda k: td3_tests.random_batch(k, 32, BF16))(jax.random.split(jax.random.key(9), 2))
  # Compiled as the loop compiles bfloat16 programs (on CPU: XLA's bfloat16 dot kernels, which reject some dot
  # forms at run time, so this also checks the networks only produce forms they take).
  update = jax.jit(lambda s, b: td3.update_many(s, b, BF16),
                   compiler_options=networks.xla_compiler_options('bfloat16'))
  new, metrics = update(state, batches)
  new, metrics = update(new, batches)   # the 2nd runs the actor step
  for name in ('actor_params', 'critic_params', 'target_actor_params', 'target_critic_params',
               'actor_opt_state', 'critic_opt_state'):
    floats = [x for x in jax.tree.leaves(getattr(new, name)) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.float32 for x in floats), name
  assert all(m.dtype == jnp.float32 for m in jax.tree.leaves(metrics))
  moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.actor_params, new.actor_params)
  assert all(jax.tree.leaves(moved))


def _eqns(jaxpr):
  """Every equation of a jaxpr, recursing into sub-jaxprs (jit, cond branches, loops, custom_vjp, vmap)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(sub, 'jaxpr', sub)
        if hasattr(inner, 'eqns'):
          yield from _eqns(inner)


def _dots(fn, *args):
  return [e for e in _eqns(jax.make_jaxpr(fn)(*args).jaxpr) if e.primitive.name == 'dot_general']


@pytest.mark.parametrize('cfg', [F32, BF16], ids=['float32', 'bfloat16'])
def test_update_dots_use_the_compute_dtype(cfg):
  """Every matmul of a TD3 update (target, critic and actor forward and backward passes) takes `compute_dtype`
  inputs and returns float32."""
  state = td3.init(jax.random.key(10), cfg)
  batch = td3_tests.random_batch(jax.random.key(11), 32, cfg)
  dots = _dots(lambda s, b: td3.update(s, b, cfg), state, batch)
  # 28 matmuls are needed: target 3 + 3; critic 3 forward, 3 weight and 2 input gradients; actor step 3 + 3
  # forward, Q1's 3 input gradients (down to the action), actor's 3 weight and 2 input gradients. The bfloat16
  # backward rule also forms the unused ones (weight gradients of Q1, input gradients of the first layers);
  # XLA drops those.
  assert len(dots) == {'float32': 28, 'bfloat16': 33}[cfg.compute_dtype]
  want = jnp.dtype(cfg.compute_dtype)
  for e in dots:
    assert [v.aval.dtype for v in e.invars] == [want, want], e
    assert e.outvars[0].aval.dtype == jnp.float32 and e.params['preferred_element_type'] == jnp.float32


def test_mjx_physics_is_traced_at_highest_precision():
  """Inside a program that asks for bfloat16 matmuls, the MJX step and reset still trace their dots at HIGHEST;
  the policy network's dots around them keep the program's setting."""
  from ktm.envs import make_suite   # pylint: disable=import-outside-toplevel
  suite = make_suite('pendulum_group', num_envs=2, backend='mjx')
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, hidden_sizes=(8,))
  params = jax.eval_shape(lambda k: td3.init(k, cfg), jax.random.key(12)).actor_params

  def act_and_step(params, env_state):
    actions = td3.policy(params, env_state.obs, cfg)
    return suite.step(env_state, actions)

  env_state = jax.eval_shape(suite.reset, jax.random.key(13))
  with jax.default_matmul_precision('bfloat16'):
    step_dots = _dots(act_and_step, params, env_state)
    reset_dots = _dots(suite.reset, jax.random.key(14))
  highest = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
  physics = [e for e in step_dots if e.params['precision'] == highest]
  others = [e for e in step_dots if e.params['precision'] != highest]
  assert len(physics) > 0 and len(reset_dots) > 0
  assert all(e.params['precision'] == highest for e in reset_dots)
  assert len(others) == 2   # the policy's two layers, at the surrounding bfloat16 setting
  assert all(e.params['precision'] == (jax.lax.Precision.DEFAULT, jax.lax.Precision.DEFAULT) for e in others)


def check_gpu_benchmark_small(tmp_path, physics, dtypes=('float32', 'bfloat16')):
  """`python -m benchmarks.gpu --small` (here with one env count) writes one JSON with every measurement."""
  from benchmarks import gpu   # pylint: disable=import-outside-toplevel
  out = tmp_path / 'gpu.json'
  gpu.main(['--small', '--envs=1', f'--physics={physics}', f'--dtypes={",".join(dtypes)}', '--out', str(out)])
  data = json.loads(out.read_text())
  assert {'td3_update', 'ktm_epoch', 'env_steps', 'projected_hours', 'host_loop', 'device', 'machine'} <= set(data)
  assert [r['chunk'] for r in data['host_loop']] == [1] and data['host_loop'][0]['epochs_per_s']['read_ahead'] > 0
  assert data['errors'] == {} and data['skipped'] == []
  td3_rows = {(r['dtype'], r['setting']) for r in data['td3_update']['rows']}
  assert td3_rows == {(d, s) for d in dtypes for s in ('K=1', 'K=2 vmapped')}
  ktm_rows = {(r['dtype'], r['stage'], r['chunk']) for r in data['ktm_epoch']['rows']}
  assert ktm_rows == {(d, s, c) for d in dtypes for s, _, c in gpu.ktm_settings(gpu.SMALL['ktm']['epochs'])}
  assert data['ktm_epoch']['physics'] == physics
  assert {(r['suite'], r['num_envs'], r['physics']) for r in data['env_steps']} == {('pendulum_group', 1, physics)}
  assert set(data['projected_hours']) == set(dtypes)
  rates = ([r['updates_per_s'] for r in data['td3_update']['rows']] + [r['epochs_per_s'] for r in data['ktm_epoch']['rows']]
           + [r['env_steps_per_s'] for r in data['env_steps']]
           + [h for by_chunk in data['projected_hours'].values() for h in by_chunk.values()])
  assert all(math.isfinite(x) and x > 0 for x in rates)
  # The projection is the two stages' times at the measured rates.
  rows = {(r['dtype'], r['stage'], r['chunk']): r['epochs_per_s'] for r in data['ktm_epoch']['rows']}
  epochs = gpu.SMALL['ktm']['epochs']
  want = (500_000 / rows[('float32', 'offline', epochs)] + 500_000 / rows[('float32', 'online', 1)]) / 3600
  assert math.isclose(data['projected_hours']['float32']['online chunk 1'], want, rel_tol=1e-9)


def test_gpu_benchmark_small_writes_every_key(tmp_path):
  """The CI version: float32 only, KTM epochs and env-step rows on native physics (MJX's compiles alone take minutes
  on a 2-core CPU). Both dtypes, and MJX physics: the slow versions below."""
  check_gpu_benchmark_small(tmp_path, 'native', ('float32',))


@pytest.mark.slow
def test_gpu_benchmark_small_writes_every_key_for_both_dtypes(tmp_path):
  check_gpu_benchmark_small(tmp_path, 'native')


def test_gpu_benchmark_budget_skips_and_still_writes(tmp_path):
  """With its budget spent, the script starts nothing, lists every section as skipped and still writes its JSON."""
  from benchmarks import gpu   # pylint: disable=import-outside-toplevel
  out = tmp_path / 'gpu.json'
  gpu.main(['--small', '--budget_s=0', '--out', str(out)])
  data = json.loads(out.read_text())
  assert data['skipped'] == ['td3', 'ktm', 'env', 'host'] and data['errors'] == {}
  assert not {'td3_update', 'ktm_epoch', 'env_steps', 'host_loop'} & set(data)
  with pytest.raises(SystemExit):     # an unknown section is refused before anything runs or is written
    gpu.main(['--small', '--sections=td3,bogus', '--out', str(tmp_path / 'bad.json')])
  with pytest.raises(SystemExit):     # so is an unknown dtype
    gpu.main(['--small', '--dtypes=float16', '--out', str(tmp_path / 'bad.json')])
  assert not (tmp_path / 'bad.json').exists()


@pytest.mark.slow
def test_gpu_benchmark_small_with_mjx_physics(tmp_path):
  check_gpu_benchmark_small(tmp_path, 'mjx')
