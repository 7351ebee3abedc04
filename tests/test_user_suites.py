"""User-defined suites (ktm/envs/custom.py): a Hopper morphology group and an MJCF task, built, stepped, trained
through the scripts, and malformed definitions rejected with one line (through the scripts: test_bad_inputs.py's
`*_user_suite_*` cases)."""

import json
import math
import os
import textwrap

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import loop, teachers
from ktm.envs import custom, make_suite
from ktm.envs import models as models_lib
from ktm.runs import teacher_training
from tests.test_run_ktm import main_in_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOPPER_REF = 'examples.hopper_group:SUITE'
HOPPER_FILE_REF = os.path.join(ROOT, 'examples', 'hopper_group.py') + ':SUITE'
# Hopper-v5's capsules (radius, half-length) by geom, density 1000 (gymnasium's hopper.xml).
HOPPER_CAPSULES = {'torso_geom': (0.05, 0.2), 'thigh_geom': (0.05, 0.225), 'leg_geom': (0.04, 0.25),
                   'foot_geom': (0.06, 0.195)}
HOPPER_SCALES = {'HopperBigTorso': ('torso_geom', 1.25), 'HopperSmallTorso': ('torso_geom', 0.75),
                 'HopperBigFoot': ('foot_geom', 1.25), 'HopperSmallFoot': ('foot_geom', 0.75)}
TINY_KTM = ['--preset=quick', '--hidden_sizes=16,16', '--batch_size=32', '--offline_epochs=20',
            '--online_epochs=20', '--offline_chunk=10', '--chunk_steps=5', '--checkpoint_every=20',
            '--eval_every=20', '--eval_episodes=1', '--online_capacity=100', '--progress_bar=false',
            '--tensorboard=false']
TINY_TEACHER = dict(hidden_sizes=(16, 16), batch_size=32)
TINY_SCHEDULE = dict(steps=300, start_steps=100, chunk_steps=50, replay_capacity=300)


def _capsule_mass(radius, half_length, density=1000.0):
  return density * (math.pi * radius**2 * 2 * half_length + 4.0 / 3.0 * math.pi * radius**3)


def test_hopper_group_masses_from_the_capsule_formula():
  suite = make_suite(HOPPER_FILE_REF)
  assert suite.task_names == tuple(HOPPER_SCALES)
  original = sum(_capsule_mass(*rs) for rs in HOPPER_CAPSULES.values())
  for name, (geom, factor) in HOPPER_SCALES.items():
    masses = {g: _capsule_mass(r * (factor if g == geom else 1), h * (factor if g == geom else 1))
              for g, (r, h) in HOPPER_CAPSULES.items()}
    expected = np.array([0.0] + [masses[g] for g in HOPPER_CAPSULES]) * original / sum(masses.values())
    model = models_lib.build_model(name, 'hopper.xml')
    np.testing.assert_allclose(model.body_mass, expected, rtol=1e-9)
    assert model.body_mass.sum() == pytest.approx(original, rel=1e-12)   # total_mass='keep'


def test_hopper_variant_steps_like_gymnasium_with_its_xml(tmp_path):
  """The suite's HopperBigFoot and gymnasium's Hopper-v5 on the variant's MJCF agree step by step."""
  suite = make_suite(HOPPER_REF)
  k = suite.task_names.index('HopperBigFoot')
  xml = tmp_path / 'big_foot.xml'
  xml.write_text(models_lib.variant_xml('HopperBigFoot', 'hopper.xml'))
  env = gymnasium.make('Hopper-v5', xml_file=str(xml)).unwrapped
  env.reset(seed=0)
  state = suite.reset(jax.random.key(0))
  qpos = np.asarray(state.physics.readout[0].qpos[k, 0], np.float64)
  qvel = np.asarray(state.physics.readout[0].qvel[k, 0], np.float64)
  env.set_state(qpos, qvel)
  step = jax.jit(suite.step)
  actions = np.random.default_rng(0).uniform(-1, 1, (20, suite.num_tasks, 1, 3)).astype(np.float32)
  for a in actions:
    state, out = step(state, jnp.asarray(a))
    obs, reward, terminated, _, _ = env.step(a[k, 0].astype(np.float64))
    np.testing.assert_allclose(np.asarray(out.next_obs[k, 0]), obs, atol=1e-4)
    assert float(out.reward[k, 0]) == pytest.approx(reward, abs=1e-4)
    assert bool(out.terminated[k, 0]) == terminated
    if terminated:
      break


@pytest.fixture(scope='module')
def hopper_teachers(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('hopper_teachers'))
  teacher_training.train_teachers(HOPPER_REF, TINY_TEACHER, TINY_SCHEDULE,
                                  loop.LoopConfig(eval_every=300, eval_episodes=1, checkpoint_every=300), directory,
                                  tensorboard=False, progress_bar=False)
  return directory


def test_hopper_group_trains_through_run_ktm(hopper_teachers, tmp_path):
  workdir = str(tmp_path / 'run')
  main_in_process([f'--benchmark={HOPPER_REF}', f'--workdir={workdir}', f'--teacher_dir={hopper_teachers}']
                  + TINY_KTM)   # run_ktm's flags and main, in this process (no second JAX start-up)
  results = json.load(open(os.path.join(workdir, 'results.json')))
  assert results['benchmark'] == HOPPER_REF
  assert [r['name'] for r in results['tasks']] == list(HOPPER_SCALES)
  assert all(np.isfinite(r['student_return']) for r in results['tasks'])
  config = json.load(open(os.path.join(workdir, 'config.json')))
  assert config['benchmark'] == HOPPER_REF
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints')))   # checkpoints were written


def test_mjcf_task_reward_and_termination_reach_the_teachers_replay(tmp_path):
  """A task from an MJCF string with a JAX reward trains a teacher for a few chunks; its replay rows hold the
  reward and termination computed here with numpy from the rows' own observations and actions."""
  from examples import custom_task   # pylint: disable=import-outside-toplevel
  directory = str(tmp_path / 'cart')
  rows = teacher_training.train_teachers('examples.custom_task:SUITE', TINY_TEACHER, TINY_SCHEDULE,
                                         loop.LoopConfig(eval_every=300, eval_episodes=1, checkpoint_every=300),
                                         directory, tensorboard=False, progress_bar=False)
  assert [r['name'] for r in rows] == ['Cart'] and np.isfinite(rows[0]['final_return'])
  suite = make_suite('examples.custom_task:SUITE')
  data = teachers.load(directory, suite).buffer.data
  n = int(teachers.load(directory, suite).buffer.size[0])
  assert n == TINY_SCHEDULE['steps']
  next_obs, action = np.asarray(data.next_obs[0, :n], np.float64), np.asarray(data.action[0, :n], np.float64)
  x = next_obs[:, 0] + custom_task.TARGET
  reward = 1.0 - np.minimum(np.abs(x - custom_task.TARGET), 1.0) - 0.01 * action[:, 0] ** 2
  np.testing.assert_allclose(np.asarray(data.reward[0, :n]), reward, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(data.terminated[0, :n]) > 0, np.abs(x) > 2.0)
  assert np.ptp(next_obs[:, 1]) > 0.1   # the cart moved


BAD_DEFINITIONS = {
    'unknown geom': ("custom.morphology_group('Hopper', [custom.variant('HopperX', size={'torso': 1.1})])",
                     "Hopper has no geom 'torso'"),
    'missing function': ("custom.task('Bad', XML, obs_fn=lambda r: r.qpos, transition_fn=None)",
                         'transition_fn is missing'),
    'wrong obs shape': ("custom.task('Bad', XML, lambda r: r.qpos[..., 0], TRANSITION, obs_dim=1)",
                        'obs_fn must map a Readout [B, ...] to [B, obs_dim]'),
    'obs_dim mismatch': ("custom.task('Bad', XML, lambda r: r.qpos, TRANSITION, obs_dim=3)",
                         'obs_fn returns 1 numbers per observation, obs_dim is 3'),
    'bad mjcf': ("custom.task('Bad', '<mujoco><worldbody><geom type=\"nope\"/></worldbody></mujoco>', "
                 'lambda r: r.qpos, TRANSITION)', 'MuJoCo cannot compile it'),
}
PRELUDE = textwrap.dedent('''\
    import jax.numpy as jnp
    from ktm.envs import custom
    XML = ('<mujoco><worldbody><body><joint name="j" type="slide"/><geom size=".1"/></body></worldbody>'
           '<actuator><motor joint="j"/></actuator></mujoco>')
    TRANSITION = lambda p, c, u, dt: (c.qpos[..., 0], c.qpos[..., 0] > 1)
    ''')


@pytest.mark.parametrize('case', list(BAD_DEFINITIONS))
def test_malformed_definition_is_one_value_error_line(case):
  code, message = BAD_DEFINITIONS[case]
  scope = {}
  exec(PRELUDE, scope)   # pylint: disable=exec-used
  with pytest.raises(ValueError) as info:
    eval(code, scope)   # pylint: disable=eval-used
  assert message in str(info.value) and '\n' not in str(info.value)


def test_redefinition_is_idempotent_and_conflicts_are_refused():
  edit = custom.variant('HopperBigTorso', size={'torso_geom': 1.25})
  group = custom.morphology_group('Hopper', [edit])   # same as examples/hopper_group.py: fine
  assert group.names == ('HopperBigTorso',)
  with pytest.raises(ValueError, match="different morphology variant named 'HopperBigTorso'"):
    custom.morphology_group('Hopper', [custom.variant('HopperBigTorso', size={'torso_geom': 1.5})])
  with pytest.raises(ValueError, match='different suite'):
    custom.suite('pendulum_group', ['Hopper'])


def test_mjcf_file_task_and_its_morphology_group_step_like_the_string_task(tmp_path):
  """The Cart MJCF given as a file steps exactly like the string version; a morphology group of a user task
  scales its geom (the cart's explicit mass stays: total_mass=None)."""
  from examples import custom_task   # pylint: disable=import-outside-toplevel
  path = tmp_path / 'cart.xml'
  path.write_text(custom_task.CART_XML)
  custom.task('CartFromFile', str(path), custom_task.cart_obs, custom_task.cart_transition, frame_skip=2,
              reset_noise_scale=0.1)
  group = custom.morphology_group('Cart', [custom.variant('CartWide', size={'cart_geom': 1.5})], total_mass=None,
                                  include_base=True)
  assert group.names == ('Cart', 'CartWide')
  wide = models_lib.build_model('CartWide', custom_task.CART_XML)
  np.testing.assert_allclose(wide.geom_size[1], [0.15, 0.15, 0.15])
  assert wide.body_mass[1] == pytest.approx(1.0)
  suites = [make_suite(name, num_envs=2) for name in ('single:Cart', 'single:CartFromFile')]
  actions = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (10, 1, 2, 1)), jnp.float32)
  rewards = []
  for suite in suites:
    state, step, out_rewards = suite.reset(jax.random.key(4)), jax.jit(suite.step), []
    for a in actions:
      state, out = step(state, a)
      out_rewards.append(np.asarray(out.reward))
    rewards.append(np.array(out_rewards))
  np.testing.assert_array_equal(rewards[0], rewards[1])
  assert np.ptp(rewards[0]) > 0
