"""Per-task value scaling (ktm/value_norm.py, `value_norm='scale'`) against float64 numpy: the statistics, their
source (teacher k's twin Q offline, the TD targets online), the weights 1/s^2 and 1/s, per-task isolation, and the
published update where every scale is at its floor; for KTM-DRL / TD3-MT, SAC-MT, SharedNet and G-Surgery."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import replay, td3, transfer, value_norm
from ktm.methods import base, gsurgery, ktm_drl, sac, sharednet
from tests import numpy_ref
from tests.test_td3 import _plain, perturbed, tree_equal
from tests.test_transfer import B, STUDENT, offline_epoch, offline_task_update, task, three_tasks

SCALED = ktm_drl.KTMConfig(value_norm='scale')


def np_scale(batches):
  """s from float64 moving averages of a task's batches of targets (debiased), as the module docstring defines."""
  mean = second = 0.0
  for n, y in enumerate(batches, start=1):
    mean = (1 - value_norm.RATE) * mean + value_norm.RATE * np.mean(y)
    second = (1 - value_norm.RATE) * second + value_norm.RATE * np.mean(np.square(y))
  debias = 1 - (1 - value_norm.RATE) ** n
  return max(np.sqrt(max(second / debias - (mean / debias) ** 2, 0.0)), value_norm.MIN_SCALE)


def test_statistics_are_debiased_moving_averages_and_stay_per_task():
  rng = np.random.default_rng(0)
  task0 = [rng.normal(50.0, 20.0, 64) for _ in range(3)]
  task1 = [rng.normal(-3.0, 7.0, 64) for _ in range(2)]
  update = jax.jit(value_norm.update)
  stats = value_norm.init(2)
  assert float(value_norm.scale(stats, 0)) == value_norm.MIN_SCALE          # before any batch
  for y in task0:
    stats = update(stats, 0, jnp.asarray(y, jnp.float32))
  for y in task1:
    stats = update(stats, 1, jnp.asarray(y, jnp.float32))
  assert float(value_norm.scale(stats, 0)) == pytest.approx(np_scale(task0), rel=1e-4)
  assert float(value_norm.scale(stats, 1)) == pytest.approx(np_scale(task1), rel=1e-4)
  # Task 1's targets 100x larger: its scale is 100x, task 0's statistics do not move by a bit.
  big = value_norm.init(2)
  for y in task0:
    big = update(big, 0, jnp.asarray(y, jnp.float32))
  for y in task1:
    big = update(big, 1, jnp.asarray(100 * y, jnp.float32))
  assert tree_equal(jax.tree.map(lambda x: x[0], big), jax.tree.map(lambda x: x[0], stats))
  assert float(value_norm.scale(big, 1)) == pytest.approx(100 * np_scale(task1), rel=1e-4)


def loud_teachers(critics, factors):
  """Teacher k's critics with their output layer multiplied by factors[k]: values of very different scales."""
  def scale_layer(params, f):
    last = max(params['MLP_0'], key=lambda name: int(name.split('_')[-1]))
    layer = {k: v * f for k, v in params['MLP_0'][last].items()}
    return {'MLP_0': {**params['MLP_0'], last: layer}}
  return jax.vmap(scale_layer)(critics, jnp.asarray(factors, jnp.float32))


def test_offline_epoch_weighs_eq1_and_eq2_by_each_teachers_value_scale():
  """Task k's offline losses are divided by s_k^2 (Eq. 1) and s_k (Eq. 2), s_k the scale of teacher k's twin-Q
  values on its batch (computed here in numpy); a task whose values barely vary keeps weight 1."""
  batches, critics, masks = three_tasks(21)
  critics = loud_teachers(critics, [300.0, 1.0, 40.0])
  s = value_norm.with_stats(perturbed(td3.init(jax.random.key(0), STUDENT), jax.random.key(1)), 3)
  out, metrics = jax.jit(ktm_drl.offline_epoch, static_argnums=(5, 6, 7))(s, critics, batches, masks, jnp.int32(0),
                                                                          STUDENT, STUDENT, SCALED)
  expected, scales = s, []
  for k in range(3):
    critic, batch = task(critics, k), task(batches, k)
    obs, action = transfer.teacher_inputs(batch.obs, batch.action, STUDENT, masks[k])
    teacher_q = np.stack([numpy_ref.critic(jax.tree.map(np.asarray, critic), j, np.asarray(obs, np.float64),
                                           np.asarray(action, np.float64)) for j in (0, 1)])
    scales.append(np_scale([teacher_q]))
    expected, _ = offline_task_update(
        expected, critic, batch, masks[k], STUDENT, STUDENT,
        critic_loss_fn=td3.weighted(transfer.offline_critic_loss, 1 / scales[-1] ** 2),
        actor_loss_fn=td3.weighted(transfer.offline_actor_loss, 1 / scales[-1]))
  assert scales[0] > 10 and scales[1] == value_norm.MIN_SCALE and scales[2] > 2   # the case is discriminative
  np.testing.assert_allclose(metrics['value_scale'], scales, rtol=1e-4)
  fields = lambda st: {n: getattr(st, n) for n in td3.TD3State.__dataclass_fields__}
  jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x), _plain(y), rtol=2e-4, atol=1e-6),
               fields(out), fields(expected))
  paper, _ = offline_epoch(s, critics, batches, masks, jnp.int32(0), STUDENT, STUDENT, ktm_drl.KTMConfig())
  assert not np.allclose(_plain(paper.critic_params['MLP_0']['Dense_0']['kernel']),
                         _plain(out.critic_params['MLP_0']['Dense_0']['kernel']), rtol=1e-4, atol=1e-6)


def test_online_epoch_folds_td_targets_per_task_and_at_the_floor_is_the_papers_update():
  """gamma ~ 0 makes task k's TD targets its rewards, so s_k is the std of its batch's rewards (numpy); with small
  rewards every s_k is at the floor, the weights are 1, and the epoch is the paper's bit for bit."""
  batches, critics, masks = three_tasks(22)
  cfg = td3.TD3Config(**{**STUDENT.__dict__, 'gamma': 1e-9})
  s = value_norm.with_stats(perturbed(td3.init(jax.random.key(0), cfg), jax.random.key(1)), 3)
  epoch = jax.jit(ktm_drl.online_epoch, static_argnums=(5, 6, 7))
  loud = batches.replace(reward=batches.reward * jnp.asarray([[100.0], [0.5], [30.0]]))
  out, metrics = epoch(s, critics, loud, masks, jnp.int32(1), cfg, cfg, SCALED)
  scales = [np_scale([np.asarray(loud.reward[k], np.float64)]) for k in range(3)]
  assert scales[0] > 10 and scales[1] == value_norm.MIN_SCALE
  np.testing.assert_allclose(metrics['value_scale'], scales, rtol=1e-4)
  np.testing.assert_array_equal(out.value_stats.count, [1, 1, 1])
  # Rewards of std < 1: every scale at the floor, the paper's update exactly.
  quiet = batches.replace(reward=batches.reward * 0.1)
  scaled, metrics = epoch(s, critics, quiet, masks, jnp.int32(1), cfg, cfg, SCALED)
  paper, _ = epoch(s, critics, quiet, masks, jnp.int32(1), cfg, cfg, ktm_drl.KTMConfig())
  np.testing.assert_array_equal(metrics['value_scale'], [1.0, 1.0, 1.0])
  assert tree_equal({n: getattr(scaled, n) for n in td3.TD3State.__dataclass_fields__},
                    {n: getattr(paper, n) for n in td3.TD3State.__dataclass_fields__})


def test_value_norm_needs_the_sequential_hierarchical_loop_and_leaves_the_outputs_alone():
  with pytest.raises(ValueError, match="value_norm needs combine='sequential'"):
    ktm_drl.KTMConfig(value_norm='scale', combine='joint')
  with pytest.raises(ValueError, match='value_norm'):
    ktm_drl.KTMConfig(value_norm='popart')


# ---- the baselines: SAC-MT (sequential and joint), SharedNet, G-Surgery ----

TASKS = base.TaskInfo(('a', 'b', 'c'), (4, 3, 2), (1, 3, 2))
SMALL = dict(hidden_sizes=(8, 8), batch_size=B, gamma=1e-9)     # gamma ~ 0: task k's targets are its rewards
BASELINES = {
    'sac_mt': lambda norm: sac.SACMethod(TASKS, sac.SACConfig(**SMALL, value_norm=norm)),
    'sac_mt_joint': lambda norm: sac.SACMethod(TASKS, sac.SACConfig(**SMALL, combine='joint', value_norm=norm)),
    'sharednet': lambda norm: sharednet.SharedNetMethod(TASKS, sharednet.SharedNetConfig(**SMALL, value_norm=norm)),
    'gsurgery': lambda norm: gsurgery.GSurgeryMethod(TASKS, gsurgery.GSurgeryConfig(
        obs_size=TASKS.obs_size, act_size=TASKS.act_size, **SMALL, value_norm=norm)),
}


def base_fields(state):
  return {name: getattr(state, name) for name in state.__dataclass_fields__ if name != 'value_stats'}


@pytest.mark.parametrize('name', sorted(BASELINES))
def test_baselines_scale_each_tasks_losses_by_its_own_targets(name):
  """One update: value_scale per task is the std of its batch's rewards (numpy); the losses are weighted (the
  update differs from the published one); with every scale at the floor it is the published update bit for bit."""
  scaled_method, plain_method = BASELINES[name]('scale'), BASELINES[name]('none')
  key = jax.random.key(5)
  learner = scaled_method.init(key)
  assert tree_equal(base_fields(learner), base_fields(plain_method.init(key)))
  ks = jax.random.split(jax.random.key(6), 4)
  masks = jnp.asarray(TASKS.action_masks)
  batch = replay.Transition(obs=jax.random.normal(ks[0], (3, B, TASKS.obs_size)),
                            action=jnp.tanh(jax.random.normal(ks[1], (3, B, TASKS.act_size))) * masks[:, None],
                            reward=jax.random.normal(ks[2], (3, B)),
                            next_obs=jax.random.normal(ks[3], (3, B, TASKS.obs_size)), terminated=jnp.zeros((3, B)))
  update = lambda method, state, b: jax.jit(method.update, static_argnums=3)(state, b, None, 0, jnp.int32(1),
                                                                              jnp.int32(1))
  loud = batch.replace(reward=batch.reward * jnp.asarray([[100.0], [0.5], [30.0]]))
  scaled, metrics = update(scaled_method, learner, loud)
  scales = [np_scale([np.asarray(loud.reward[k], np.float64)]) for k in range(3)]
  assert scales[0] > 10 and scales[1] == value_norm.MIN_SCALE
  np.testing.assert_allclose(metrics['value_scale'], scales, rtol=1e-4)
  plain, _ = update(plain_method, plain_method.init(key), loud)
  assert not tree_equal(scaled.critic_params, plain.critic_params)
  quiet = batch.replace(reward=batch.reward * 0.1)
  scaled, metrics = update(scaled_method, learner, quiet)
  plain, _ = update(plain_method, plain_method.init(key), quiet)
  np.testing.assert_array_equal(metrics['value_scale'], [1.0, 1.0, 1.0])
  assert tree_equal(base_fields(scaled), base_fields(plain))
