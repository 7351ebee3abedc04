"""Parity of the suites with gymnasium's own native v5 envs.

One step: both sides start from the same float32-representable (qpos, qvel) (gymnasium's
set_state, our reset_to) and apply the same action. Tolerances: native backend rtol=atol=1e-5
(float64 physics, float32 outputs/ctrl; gymnasium's solver warmstart comes from its previous
steps, ours starts at 0), MJX (float32 physics) rtol=atol=2e-3.

Long trajectories (native): 300 steps of HalfCheetah and Ant from perturbed states with
actions on a 1/64 grid (exact in float32, so both sides apply the same ctrl). The native
backend carries MuJoCo's solver warmstart, so its float64 physics state (time, qpos, qvel,
qacc_warmstart) must equal gymnasium's bit for bit at every step. The test also checks that
this equality is a real test: restarting the warmstart at 0 each step (as the backend once
did) leaves gymnasium's trajectory within the same 300 steps.
"""

import os
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from ktm.envs import make_suite
from ktm.envs import models as models_lib
from ktm.envs import native

warnings.filterwarnings('ignore', message='.*settotalmass.*')
TASKS = ('Ant', 'Hopper', 'Walker2d', 'HalfCheetah', 'InvertedPendulum',
         'InvertedDoublePendulum')
TOL = {'native': 1e-5, 'mjx': 2e-3}
SLOW = os.environ.get('KTM_RUN_SLOW_ENV_TESTS') == '1'

GYM_IDS = {'Ant': 'Ant-v5', 'Hopper': 'Hopper-v5', 'Walker2d': 'Walker2d-v5',
           'HalfCheetah': 'HalfCheetah-v5', 'InvertedPendulum': 'InvertedPendulum-v5',
           'InvertedDoublePendulum': 'InvertedDoublePendulum-v5'}


def make_gym(task: str, **kwargs):
  if task == 'Ant':
    kwargs['include_cfrc_ext_in_observation'] = False
  return gymnasium.make(GYM_IDS[task], **kwargs).unwrapped


def gym_state_after_random_steps(env, rng, n):
  """A non-trivial gym state (qpos, qvel), rounded to float32 so both sides start equal."""
  env.reset(seed=int(rng.integers(1 << 30)))
  lo, hi = env.action_space.low, env.action_space.high
  for _ in range(n):
    env.step(rng.uniform(lo, hi))
  return (env.data.qpos.astype(np.float32).astype(np.float64),
          env.data.qvel.astype(np.float32).astype(np.float64))


def gym_reference_step(env, qpos, qvel, action01):
  """gymnasium's step from (qpos, qvel) with a [-1, 1] action scaled to ctrlrange (float64)."""
  env.set_state(qpos, qvel)
  lo, hi = env.model.actuator_ctrlrange.T
  ctrl = lo + (action01 + 1.0) * 0.5 * (hi - lo)
  obs, reward, terminated, truncated, info = env.step(ctrl)
  return obs, reward, terminated, info


def suite_step_from(suite, qpos, qvel, action01):
  """One step of a single-task suite (K = E = 1) from (qpos, qvel) -> StepOutput."""
  # MJX's reset jitted: run eagerly it compiles hundreds of small programs (~40 s here)
  reset_to = jax.jit(suite.reset_to) if suite.backend_name == 'mjx' else suite.reset_to
  state = reset_to(jax.random.PRNGKey(0), (jnp.asarray(qpos, jnp.float32)[None, None],),
                   (jnp.asarray(qvel, jnp.float32)[None, None],))
  actions = np.zeros((1, 1, suite.act_size), np.float32)
  actions[0, 0, :action01.size] = action01
  return jax.jit(suite.step)(state, jnp.asarray(actions))[1]


def _check_parity(env, suite, rng, n_warmup, tol=None):
  qpos, qvel = gym_state_after_random_steps(env, rng, n_warmup)
  action = rng.uniform(-1.0, 1.0, size=env.model.nu)
  obs, reward, terminated, info = gym_reference_step(env, qpos, qvel, action)
  out = suite_step_from(suite, qpos, qvel, action)
  tol = TOL[suite.backend_name] if tol is None else tol
  np.testing.assert_allclose(np.asarray(out.next_obs[0, 0, :obs.size]), obs, rtol=tol, atol=tol)
  np.testing.assert_array_equal(np.asarray(out.next_obs[0, 0, obs.size:]), 0.0)
  np.testing.assert_allclose(float(out.reward[0, 0]), reward, rtol=tol, atol=tol)
  assert bool(out.terminated[0, 0]) == terminated
  return info


@pytest.mark.parametrize('task', TASKS)
def test_native_matches_gymnasium(task):
  env = make_gym(task)
  suite = make_suite(task, backend='native')
  rng = np.random.default_rng(0)
  for n_warmup in (0, 15):
    info = _check_parity(env, suite, rng, n_warmup)
  if task == 'Ant':  # the contact cost from cfrc_ext must have been exercised
    assert info['reward_contact'] != 0.0


def test_native_matches_gymnasium_halfcheetah_variant(tmp_path):
  name = 'HalfCheetahBigTorso'
  path = tmp_path / f'{name}.xml'
  path.write_text(models_lib.variant_xml(name, 'half_cheetah.xml'))
  env = make_gym('HalfCheetah', xml_file=str(path))
  assert np.isclose(env.model.body_mass.sum(), 14.0)
  _check_parity(env, make_suite(name, backend='native'), np.random.default_rng(1), 10)


@pytest.mark.parametrize('task', ['InvertedDoublePendulum'] + (['Ant'] if SLOW else []))
def test_mjx_matches_gymnasium(task):
  env = make_gym(task)
  suite = make_suite(task, backend='mjx')
  # MJX's contact solution differs from MuJoCo C's: with the Ant's feet on the ground its
  # joint velocities differ by up to ~3.5e-2 after one step (the same in float64 MJX).
  tol = 5e-2 if task == 'Ant' else None
  rng = np.random.default_rng(0)
  for n_warmup in ((0, 15) if task == 'Ant' else (15,)):
    info = _check_parity(env, suite, rng, n_warmup, tol)
  if task == 'Ant':
    assert info['reward_contact'] != 0.0


def perturbed_start(env, rng, seed):
  """gymnasium's reset state plus a perturbation, float32-representable; warmstart 0 on both sides."""
  env.reset(seed=seed)
  qpos = (env.data.qpos + rng.uniform(-0.05, 0.05, env.model.nq)).astype(np.float32).astype(np.float64)
  qvel = (env.data.qvel + rng.normal(0.0, 0.1, env.model.nv)).astype(np.float32).astype(np.float64)
  env.set_state(qpos, qvel)
  env.data.qacc_warmstart[:] = 0.0
  return qpos, qvel


def grid_actions(rng, steps, nu, amplitude):
  """[steps, nu] actions k/64 with |k| <= amplitude: exact in float32 and equal to the ctrl for
  ctrlrange [-1, 1] (HalfCheetah's and Ant's), so both sides apply bit-identical controls."""
  return rng.integers(-amplitude, amplitude + 1, (steps, nu)) / 64.0


def gym_states(env, actions, zero_warmstart=False):
  """gymnasium's carried physics state (native._STATE) after each step [T, nstate] and its
  termination flags [T]."""
  out, terminated = [], []
  for a in actions:
    if zero_warmstart:
      env.data.qacc_warmstart[:] = 0.0
    terminated.append(env.step(a)[2])
    state = np.empty(mujoco.mj_stateSize(env.model, native._STATE))
    mujoco.mj_getState(env.model, env.data, state, native._STATE)
    out.append(state)
  return np.stack(out), np.asarray(terminated)


# Ant's actions stay within +-24/64 so it keeps upright (healthy) for all 300 steps.
LONG = [('HalfCheetah', 0, 64), ('Ant', 0, 24)]
LONG_SLOW = [('HalfCheetah', 1, 64), ('HalfCheetah', 2, 64), ('Ant', 1, 24), ('Ant', 2, 24)]


def _check_long_trajectory(task, seed, amplitude, steps=300):
  env = make_gym(task)
  rng = np.random.default_rng(seed)
  qpos, qvel = perturbed_start(env, rng, seed)
  actions = grid_actions(rng, steps, env.model.nu, amplitude)
  want, terminated = gym_states(env, actions)
  assert not terminated.any(), 'the reference trajectory must stay healthy for the whole check'

  suite = make_suite(task, backend='native')
  state = suite.reset_to(jax.random.PRNGKey(0), (jnp.asarray(qpos, jnp.float32)[None, None],),
                         (jnp.asarray(qvel, jnp.float32)[None, None],))
  padded = np.zeros((steps, 1, 1, suite.act_size), np.float32)
  padded[:, 0, 0, :env.model.nu] = actions

  def step(state, action):
    state, out = suite.step(state, action)
    return state, (state.physics.backend[0][0, 0], out.done[0, 0])

  _, (bits, done) = jax.jit(lambda s, a: jax.lax.scan(step, s, a))(state, jnp.asarray(padded))
  assert not np.asarray(done).any()
  got = np.asarray(bits).view(np.float64)
  for t in range(steps):     # bit-identical physics (time, qpos, qvel, warmstart) at every step
    np.testing.assert_array_equal(got[t], want[t], err_msg=f'{task}: step {t}')

  # Control: the same start and actions with the warmstart restarted at 0 each step diverge.
  env_zero = make_gym(task)
  perturbed_start(env_zero, np.random.default_rng(seed), seed)
  zero, _ = gym_states(env_zero, actions, zero_warmstart=True)
  nq = env.model.nq
  qpos_at = slice(1, 1 + nq)
  assert np.abs(zero[-1, qpos_at] - want[-1, qpos_at]).max() > 1e-6


@pytest.mark.parametrize('task,seed,amplitude', LONG)
def test_native_long_trajectory_is_bit_identical_to_gymnasium(task, seed, amplitude):
  _check_long_trajectory(task, seed, amplitude)


@pytest.mark.slow
@pytest.mark.parametrize('task,seed,amplitude', LONG_SLOW)
def test_native_long_trajectory_is_bit_identical_to_gymnasium_more_seeds(task, seed, amplitude):
  _check_long_trajectory(task, seed, amplitude)
