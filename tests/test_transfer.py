"""KTM-DRL's equations against numpy, with teacher and student of different sizes (padding, f^k, g^k)."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import padding, replay, td3, teachers, transfer
from ktm.methods import ktm_drl as student
from tests import numpy_ref
from tests.test_td3 import _plain, perturbed, tree_equal

OBS_DIM, ACT_DIM = 2, 1                 # task k's raw sizes (the teacher's)
STUDENT = td3.TD3Config(obs_size=4, act_size=3, hidden_sizes=(8, 6))
TEACHER = td3.TD3Config(obs_size=OBS_DIM, act_size=ACT_DIM, hidden_sizes=(8, 8))
MASK = padding.action_mask(ACT_DIM, STUDENT.act_size)
B = 5
# Compiled once per config: run eagerly, every operation of an epoch would compile a program of its own, per shape.
offline_epoch = jax.jit(student.offline_epoch, static_argnames=('cfg', 'teacher_cfg', 'ktm_cfg'))
offline_task_update = jax.jit(student.offline_task_update,
                              static_argnames=('cfg', 'teacher_cfg', 'critic_loss_fn', 'actor_loss_fn'))


def task(tree, k):
  """Task k's slice of a [K, ...] tree (numpy indexing: no program compiled per leaf shape)."""
  return jax.tree.map(lambda x: np.asarray(x)[k], tree)


def np_tree(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


@pytest.fixture(scope='module')
def nets():
  s = perturbed(td3.init(jax.random.key(0), STUDENT), jax.random.key(1))
  t = td3.init(jax.random.key(2), TEACHER)
  return s, t


@pytest.fixture(scope='module')
def batch():
  """A D_k batch in the student's padded form: zeros beyond the raw obs/action entries."""
  ks = jax.random.split(jax.random.key(3), 4)
  obs = jax.random.normal(ks[0], (B, OBS_DIM))
  action = jnp.tanh(jax.random.normal(ks[1], (B, ACT_DIM)))
  return replay.Transition(obs=padding.pad(obs, STUDENT.obs_size), action=padding.pad(action, STUDENT.act_size),
                           reward=jax.random.normal(ks[2], (B,)),
                           next_obs=padding.pad(jax.random.normal(ks[3], (B, OBS_DIM)), STUDENT.obs_size),
                           terminated=jnp.array([0., 0., 1., 0., 0.]))


def raw(x, n):
  return np.asarray(x, np.float64)[:, :n]


def test_eq1_offline_critic_loss(nets, batch):
  s, t = nets
  loss, _ = transfer.offline_critic_loss(s.critic_params, t.critic_params, batch, STUDENT, TEACHER, MASK)
  tc, sc = np_tree(t.critic_params), np_tree(s.critic_params)
  expected = sum(np.mean((numpy_ref.critic(tc, j, raw(batch.obs, OBS_DIM), raw(batch.action, ACT_DIM))
                          - numpy_ref.critic(sc, j, np.asarray(batch.obs), np.asarray(batch.action))) ** 2)
                 for j in (0, 1))
  assert float(loss) == pytest.approx(expected, rel=1e-5)


def np_teacher_objective(actor, teacher_critic, obs):
  """mean Q1^k(s, f^k(π(ŝ))) in float64."""
  action = numpy_ref.actor(actor, np.asarray(obs, np.float64))
  return numpy_ref.critic(teacher_critic, 0, raw(obs, OBS_DIM), action[:, :ACT_DIM]).mean()


def np_own_objective(actor, critic, obs):
  action = numpy_ref.actor(actor, np.asarray(obs, np.float64)) * np.asarray(MASK)
  return numpy_ref.critic(critic, 0, np.asarray(obs, np.float64), action).mean()


def finite_difference_check(jax_grads, np_loss, params, coords, eps=1e-6):
  """Central differences of the float64 numpy loss at a few coordinates vs the JAX gradient."""
  for layer, name, index in coords:
    p = np_tree(params)
    p['MLP_0'][layer][name][index] += eps
    up = np_loss(p)
    p['MLP_0'][layer][name][index] -= 2 * eps
    down = np_loss(p)
    numeric = (up - down) / (2 * eps)
    got = float(np.asarray(jax_grads['MLP_0'][layer][name])[index])
    assert got == pytest.approx(numeric, rel=2e-3, abs=1e-5), (layer, name, index)


COORDS = [('Dense_0', 'kernel', (0, 3)), ('Dense_0', 'kernel', (1, 0)), ('Dense_1', 'bias', (2,)),
          ('Dense_2', 'kernel', (4, 0)), ('Dense_2', 'bias', (0,))]


def test_eq2_offline_actor_loss_and_gradient(nets, batch):
  s, t = nets
  loss, _ = transfer.offline_actor_loss(s.actor_params, t.critic_params, batch.obs, STUDENT, TEACHER, MASK)
  tc = np_tree(t.critic_params)
  assert float(loss) == pytest.approx(-np_teacher_objective(np_tree(s.actor_params), tc, batch.obs), rel=1e-5)
  grads = jax.grad(lambda a: transfer.offline_actor_loss(a, t.critic_params, batch.obs, STUDENT, TEACHER,
                                                         MASK)[0])(s.actor_params)
  finite_difference_check(grads, lambda a: -np_teacher_objective(a, tc, batch.obs), s.actor_params, COORDS)
  # f^k: the student's outputs beyond the task's action size get no gradient from the teacher.
  np.testing.assert_array_equal(np.asarray(grads['MLP_0']['Dense_2']['kernel'])[:, ACT_DIM:], 0.0)


def test_eq3_4_online_critic_loss(nets, batch):
  s, _ = nets
  key = jax.random.key(4)
  loss, _ = transfer.online_critic_loss(s.critic_params, s.target_actor_params, s.target_critic_params, batch, key,
                                        STUDENT, MASK)
  noise = np.clip(0.2 * np.asarray(jax.random.normal(key, (B, STUDENT.act_size))), -0.5, 0.5)
  next_obs = np.asarray(batch.next_obs, np.float64)
  next_action = np.clip(numpy_ref.actor(np_tree(s.target_actor_params), next_obs) + noise, -1, 1) * np.asarray(MASK)
  tq = np.minimum(numpy_ref.critic(np_tree(s.target_critic_params), 0, next_obs, next_action),
                  numpy_ref.critic(np_tree(s.target_critic_params), 1, next_obs, next_action))
  y = np.asarray(batch.reward) + 0.99 * (1 - np.asarray(batch.terminated)) * tq
  sc = np_tree(s.critic_params)
  expected = sum(np.mean((y - numpy_ref.critic(sc, j, np.asarray(batch.obs), np.asarray(batch.action))) ** 2)
                 for j in (0, 1))
  assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('alpha,beta', [(1.0, 1.0), (0.7, 1.3), (1.0, 0.0)])
def test_eq5_online_actor_loss_and_gradient(nets, batch, alpha, beta):
  s, t = nets
  loss_fn = lambda a: transfer.online_actor_loss(a, s.critic_params, t.critic_params, batch.obs, STUDENT, TEACHER,
                                                 alpha, beta, MASK)[0]
  tc, sc = np_tree(t.critic_params), np_tree(s.critic_params)
  np_loss = lambda a: -(alpha * np_teacher_objective(a, tc, batch.obs) + beta * np_own_objective(a, sc, batch.obs))
  assert float(loss_fn(s.actor_params)) == pytest.approx(np_loss(np_tree(s.actor_params)), rel=1e-5)
  finite_difference_check(jax.grad(loss_fn)(s.actor_params), np_loss, s.actor_params, COORDS)


def test_alpha_zero_is_td3_actor_gradient(nets, batch):
  s, t = nets
  eq5 = jax.grad(lambda a: transfer.online_actor_loss(a, s.critic_params, t.critic_params, batch.obs, STUDENT,
                                                      TEACHER, 0.0, 1.0, MASK)[0])(s.actor_params)
  plain = jax.grad(lambda a: td3.actor_loss(a, s.critic_params, batch.obs, STUDENT, MASK)[0])(s.actor_params)
  jax.tree.map(np.testing.assert_array_equal, eq5, plain)


def test_padded_teacher_sees_the_raw_task():
  """A teacher trained on padded inputs, given g^k-masked actions, computes its raw-size Q (garbage in the
  student's padded action entries must not leak into the teacher)."""
  padded_teacher = perturbed(td3.init(jax.random.key(5), STUDENT), jax.random.key(6)).critic_params
  raw_teacher = teachers.raw_critic_params(padded_teacher, OBS_DIM, ACT_DIM, STUDENT.obs_size)
  obs = padding.pad(jax.random.normal(jax.random.key(7), (B, OBS_DIM)), STUDENT.obs_size)
  action = jnp.tanh(jax.random.normal(jax.random.key(8), (B, STUDENT.act_size)))    # padded entries non-zero
  q_padded = td3.twin_q(padded_teacher, *transfer.teacher_inputs(obs, action, STUDENT, MASK), STUDENT)
  raw_cfg = td3.TD3Config(obs_size=OBS_DIM, act_size=ACT_DIM, hidden_sizes=STUDENT.hidden_sizes)
  q_raw = td3.twin_q(raw_teacher, obs[:, :OBS_DIM], action[:, :ACT_DIM], raw_cfg)
  np.testing.assert_allclose(q_padded, q_raw, rtol=1e-5, atol=1e-6)
  unmasked = td3.twin_q(padded_teacher, *transfer.teacher_inputs(obs, action, STUDENT, None), STUDENT)
  assert not np.allclose(unmasked, q_raw)


# ---- epochs over K tasks ----

def task_batches(k, key):
  ks = jax.random.split(key, 4)
  return replay.Transition(obs=jax.random.normal(ks[0], (k, B, STUDENT.obs_size)),
                           action=jnp.tanh(jax.random.normal(ks[1], (k, B, STUDENT.act_size))),
                           reward=jax.random.normal(ks[2], (k, B)),
                           next_obs=jax.random.normal(ks[3], (k, B, STUDENT.obs_size)), terminated=jnp.zeros((k, B)))


def teacher_stack(k, cfg=STUDENT):
  return td3.init_many(jax.random.key(9), k, cfg).critic_params


def three_tasks(seed):
  """Batches [3, B, ...], teacher critics [3] and masks for tasks of 1, 3 and 2 action dims."""
  return (task_batches(3, jax.random.key(seed)), teacher_stack(3),
          jnp.asarray(padding.action_masks([1, 3, 2], STUDENT.act_size)))


def test_sequential_online_with_one_task_and_alpha_zero_is_td3(nets):
  s, _ = nets
  ktm_cfg = student.KTMConfig(alpha=0.0)
  batches = task_batches(1, jax.random.key(10))
  masks = padding.action_masks([2], STUDENT.act_size)
  epoch = jax.jit(student.online_epoch, static_argnames=('cfg', 'teacher_cfg', 'ktm_cfg'))
  plain = jax.jit(td3.update, static_argnames='cfg')
  ktm_state, plain_state = s, s
  for e in range(4):   # two delayed actor/target updates
    ktm_state, _ = epoch(ktm_state, teacher_stack(1), batches, masks, jnp.int32(e), cfg=STUDENT, teacher_cfg=STUDENT,
                         ktm_cfg=ktm_cfg)
    ktm_state = ktm_state.replace(step=ktm_state.step + 1)
    plain_state, _ = plain(plain_state, jax.tree.map(lambda x: x[0], batches), cfg=STUDENT,
                           action_mask=jnp.asarray(masks[0]))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x), _plain(y), rtol=1e-6, atol=1e-7),
               ktm_state, plain_state)
  assert not tree_equal(ktm_state.actor_params, s.actor_params)


def test_sequential_offline_epoch_is_one_task_after_another(nets):
  s, _ = nets
  k = 3
  batches, critics, masks = three_tasks(11)
  out, metrics = offline_epoch(s, critics, batches, masks, jnp.int32(0), STUDENT, STUDENT,
                                       student.KTMConfig())
  expected = s
  for i in range(k):
    expected, _ = offline_task_update(expected, task(critics, i),
                                              task(batches, i), masks[i], STUDENT, STUDENT)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x), _plain(y), rtol=1e-5, atol=1e-6), out, expected)
  assert metrics['critic_loss'].shape == (k,)
  assert int(out.critic_opt_state[0].count) == k     # K optimizer steps per epoch


def test_joint_offline_epoch_is_one_step_on_summed_losses(nets):
  s, _ = nets
  k = 3
  batches, critics, masks = three_tasks(12)
  out, _ = offline_epoch(s, critics, batches, masks, jnp.int32(0), STUDENT, STUDENT,
                                 student.KTMConfig(combine='joint'))
  assert int(out.critic_opt_state[0].count) == 1
  total = lambda p: sum(transfer.offline_critic_loss(p, task(critics, i),
                                                     task(batches, i), STUDENT, STUDENT,
                                                     masks[i])[0] for i in range(k))
  g = jax.grad(total)(s.critic_params)
  adam_first_step = jax.tree.map(lambda p, gi: p - 3e-4 * gi / (jnp.abs(gi) + 1e-8), s.critic_params, g)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), out.critic_params,
               adam_first_step)


def test_flat_replay_trains_one_task_per_episode(nets):
  s, _ = nets
  k = 3
  batches, critics, masks = three_tasks(13)
  ktm_cfg = student.KTMConfig(replay='flat', switch_every=2)
  assert [int(student.active_task(jnp.int32(e), k, ktm_cfg)) for e in range(8)] == [0, 0, 1, 1, 2, 2, 0, 0]
  out, _ = offline_epoch(s, critics, batches, masks, jnp.int32(3), STUDENT, STUDENT, ktm_cfg)
  expected, _ = offline_task_update(s, jax.tree.map(lambda x: x[1], critics),
                                            jax.tree.map(lambda x: x[1], batches), masks[1], STUDENT, STUDENT)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x), _plain(y), rtol=1e-6, atol=1e-7), out, expected)


def test_joint_losses_are_sums_of_the_per_task_equations(nets):
  """The joint mode runs the student once on [K, B] rows; its losses must equal the per-task equations summed."""
  s, _ = nets
  k = 3
  batches, critics, masks = three_tasks(14)
  per_task = lambda i, t: jax.tree.map(lambda x: x[i], t)
  ktm_cfg = student.KTMConfig(alpha=0.7, beta=1.3)
  eq5 = student.joint_eq5_actor_loss(critics, STUDENT, ktm_cfg)
  joint = lambda a: eq5(a, s.critic_params, batches.obs, STUDENT, masks[:, None, :])[0]
  summed = lambda a: sum(transfer.online_actor_loss(a, s.critic_params, per_task(i, critics), batches.obs[i], STUDENT,
                                                    STUDENT, 0.7, 1.3, masks[i])[0] for i in range(k))
  assert float(joint(s.actor_params)) == pytest.approx(float(summed(s.actor_params)), rel=1e-5)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6),
               jax.grad(joint)(s.actor_params), jax.grad(summed)(s.actor_params))
  y = jax.random.normal(jax.random.key(15), (k, B))
  joint_critic = td3.critic_loss(s.critic_params, y, batches, STUDENT)[0]
  summed_critic = sum(td3.critic_loss(s.critic_params, y[i], per_task(i, batches), STUDENT)[0] for i in range(k))
  assert float(joint_critic) == pytest.approx(float(summed_critic), rel=1e-5)
  joint_offline = student.joint_offline_actor_loss(s.actor_params, critics, batches.obs, STUDENT, STUDENT, masks)[0]
  summed_offline = sum(transfer.offline_actor_loss(s.actor_params, per_task(i, critics), batches.obs[i], STUDENT,
                                                   STUDENT, masks[i])[0] for i in range(k))
  assert float(joint_offline) == pytest.approx(float(summed_offline), rel=1e-5)


def test_joint_online_epoch_takes_one_critic_and_one_actor_step(nets):
  s, _ = nets
  batches, critics, masks = three_tasks(16)
  epoch = jax.jit(student.online_epoch, static_argnames=('cfg', 'teacher_cfg', 'ktm_cfg'))
  out, metrics = epoch(s, critics, batches, masks, jnp.int32(1), cfg=STUDENT, teacher_cfg=STUDENT,
                       ktm_cfg=student.KTMConfig(combine='joint'))
  assert int(out.critic_opt_state[0].count) == 1 and int(out.actor_opt_state[0].count) == 1
  assert metrics['actor_loss'].shape == (3,)
  expected_targets = td3.soft_update(s.target_actor_params, out.actor_params, STUDENT.tau)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), out.target_actor_params,
               expected_targets)


def _adam_leaves(opt_state, name):
  """The leaves of an optax state whose path ends in field `name` (Adam's 'count', 'mu', 'nu')."""
  return [x for path, x in jax.tree_util.tree_leaves_with_path(opt_state)
          if any(getattr(k, 'name', None) == name for k in path)]


def test_online_stage_begins_with_synced_targets_and_carried_or_fresh_adam(nets, batch):
  """Line 9 copies the nets into the targets; 'carry' keeps the offline Adam states, 'fresh' restarts them (zero
  moments, step count 0) as the authors' separate online optimizers do."""
  state, teacher = nets
  for _ in range(3):     # Adam states past their initial ones
    state, _ = offline_task_update(state, teacher.critic_params, batch, MASK, STUDENT, TEACHER)
  carried = student.begin_online(state, STUDENT, student.KTMConfig())
  assert tree_equal(carried.target_actor_params, state.actor_params)
  assert tree_equal(carried.target_critic_params, state.critic_params)
  assert tree_equal((carried.actor_opt_state, carried.critic_opt_state),
                    (state.actor_opt_state, state.critic_opt_state))
  assert [int(c) for c in _adam_leaves(carried.critic_opt_state, 'count')] == [3]
  fresh = student.begin_online(state, STUDENT, student.KTMConfig(online_adam='fresh'))
  assert tree_equal(fresh.target_critic_params, state.critic_params)
  assert tree_equal(fresh.actor_params, state.actor_params)
  for opt_state in (fresh.actor_opt_state, fresh.critic_opt_state):
    assert [int(c) for c in _adam_leaves(opt_state, 'count')] == [0]
    moments = _adam_leaves(opt_state, 'mu') + _adam_leaves(opt_state, 'nu')
    assert moments and all(float(jnp.abs(x).max()) == 0.0 for x in moments)
