"""G-Surgery (PCGrad on TD3): the projection by hand and against a numpy loop, the update's gradient, determinism."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ktm import padding, replay, td3
from ktm.methods import base, gsurgery
from tests import numpy_ref

TASKS = base.TaskInfo(('small', 'large'), obs_dims=(3, 5), act_dims=(1, 2))
CFG = td3.TD3Config(obs_size=5, act_size=2, hidden_sizes=(8, 8), batch_size=4)
METHOD = gsurgery.GSurgeryMethod(TASKS, CFG)
MASKS = np.asarray(TASKS.action_masks)


def np_tree(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def task_batch(key, obs_dim, act_dim, b=4):
  """One task's minibatch at the padded sizes: zero-padded obs, masked actions."""
  ks = jax.random.split(key, 5)
  return replay.Transition(
      obs=padding.pad(jax.random.normal(ks[0], (b, obs_dim)), CFG.obs_size),
      action=padding.pad(jax.random.uniform(ks[1], (b, act_dim), minval=-1, maxval=1), CFG.act_size),
      reward=jax.random.normal(ks[2], (b,)),
      next_obs=padding.pad(jax.random.normal(ks[3], (b, obs_dim)), CFG.obs_size),
      terminated=(jax.random.uniform(ks[4], (b,)) < 0.3).astype(jnp.float32))


def make_batch(seed):
  keys = jax.random.split(jax.random.key(seed), 2)
  rows = [task_batch(keys[k], TASKS.obs_dims[k], TASKS.act_dims[k]) for k in range(2)]
  return jax.tree.map(lambda *x: jnp.stack(x), *rows)


def numpy_pcgrad(grads, orders):
  """PCGrad (Yu et al. 2020, Algorithm 1) as a plain loop: grads [K, P], orders [K, K]."""
  grads = np.asarray(grads, np.float64)
  out = grads.copy()
  for i in range(len(grads)):
    for j in orders[i]:
      if j == i:
        continue
      dot = out[i] @ grads[j]
      if dot < 0:
        out[i] = out[i] - dot / (grads[j] @ grads[j]) * grads[j]
  return out


def test_projection_two_tasks_by_hand():
  orders = jnp.array([[0, 1], [1, 0]], jnp.int32)
  # Conflicting: g1 . g2 = -1. g1' = g1 - (-1 / 2) g2 = (0.5, 0.5); g2' = g2 - (-1 / 1) g1 = (0, 1).
  out, count = gsurgery.project_conflicting(jnp.array([[1.0, 0.0], [-1.0, 1.0]]), orders)
  np.testing.assert_allclose(out, [[0.5, 0.5], [0.0, 1.0]], atol=1e-7)
  np.testing.assert_array_equal(count, [1, 1])
  # Each projected gradient no longer conflicts with the other task's original gradient.
  assert float(out[0] @ jnp.array([-1.0, 1.0])) == pytest.approx(0.0, abs=1e-7)
  # Not conflicting (dot = 1 > 0): unchanged.
  grads = jnp.array([[1.0, 0.0], [1.0, 1.0]])
  out, count = gsurgery.project_conflicting(grads, orders)
  np.testing.assert_array_equal(out, grads)
  np.testing.assert_array_equal(count, [0, 0])


def test_three_tasks_match_numpy_loop_with_the_same_order():
  rng = np.random.default_rng(0)
  checked_order_matters = False
  for trial in range(20):
    grads = rng.normal(size=(3, 6)).astype(np.float32)
    orders = np.asarray(gsurgery.random_orders(jax.random.key(trial), 3))
    assert all(sorted(o) == [0, 1, 2] for o in orders)
    out, _ = gsurgery.project_conflicting(jnp.asarray(grads), jnp.asarray(orders))
    expected = numpy_pcgrad(grads, orders)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    reversed_expected = numpy_pcgrad(grads, orders[:, ::-1])
    checked_order_matters |= not np.allclose(expected, reversed_expected, atol=1e-4)
  assert checked_order_matters  # the cases include ones where the visiting order changes the result
  # Orders differ across tasks and keys.
  many = np.asarray(gsurgery.random_orders(jax.random.key(1), 3))
  other = np.asarray(gsurgery.random_orders(jax.random.key(2), 3))
  assert not np.array_equal(many, other)


def ref_target(state, batch, noise, mask):
  """TD3's clipped double-Q target in numpy: [B]."""
  next_obs = np.asarray(batch.next_obs, np.float64)
  next_action = np.clip(numpy_ref.actor(np_tree(state.target_actor_params), next_obs) + noise, -1, 1) * mask
  tc = np_tree(state.target_critic_params)
  q = np.minimum(numpy_ref.critic(tc, 0, next_obs, next_action), numpy_ref.critic(tc, 1, next_obs, next_action))
  return np.asarray(batch.reward) + CFG.gamma * (1 - np.asarray(batch.terminated)) * q


def flat(tree):
  return np.asarray(jax.flatten_util.ravel_pytree(tree)[0], np.float64)


def adam_first_step(params, grad_flat, lr):
  """optax's Adam from a fresh state, applied to a flat numpy gradient."""
  _, unravel = jax.flatten_util.ravel_pytree(params)
  grads = unravel(jnp.asarray(grad_flat, jnp.float32))
  opt = optax.adam(lr)
  updates, _ = opt.update(grads, opt.init(params), params)
  return optax.apply_updates(params, updates)


def test_update_takes_adam_steps_on_the_numpy_projected_sums():
  state = METHOD.init(jax.random.key(0))
  # Distinct target networks, so the test can tell which network a computation used.
  state = state.replace(target_actor_params=jax.tree.map(lambda p: p * 1.3 + 0.05, state.target_actor_params),
                        target_critic_params=jax.tree.map(lambda p: p * 0.8 - 0.02, state.target_critic_params))
  batch = make_batch(1)
  update = jax.jit(lambda s, b: METHOD.update(s, b, None, 0, 0, s.step))

  # Update 1 (critic only). Reproduce its keys: (key, noise, critic order, actor order).
  _, noise_key, critic_order_key, _ = jax.random.split(state.key, 4)
  noise_keys = jax.random.split(noise_key, 2)
  per_task_grads, losses, targets_np = [], [], []
  for k in range(2):
    b_k = jax.tree.map(lambda x: x[k], batch)
    noise = np.asarray(td3.smoothing_noise(noise_keys[k], (4, 2), CFG), np.float64)
    y = ref_target(state, b_k, noise, MASKS[k])
    targets_np.append(y)
    c = np_tree(state.critic_params)
    obs, action = np.asarray(b_k.obs, np.float64), np.asarray(b_k.action, np.float64)
    losses.append(sum(np.mean((y - numpy_ref.critic(c, j, obs, action)) ** 2) for j in range(2)))
    g = jax.grad(lambda p: td3.critic_loss(p, jnp.asarray(y, jnp.float32), b_k, CFG)[0])(state.critic_params)
    per_task_grads.append(flat(g))
  orders = np.asarray(gsurgery.random_orders(critic_order_key, 2))
  projected = numpy_pcgrad(np.stack(per_task_grads), orders)
  # The combined gradient itself (Adam's first step is nearly scale-free, so check the gradient's values too).
  targets = jnp.asarray(np.stack(targets_np), jnp.float32)
  grad, _ = gsurgery.pcgrad(lambda c, y, b: td3.critic_loss(c, y, b, CFG), state.critic_params, critic_order_key,
                            targets, batch)
  np.testing.assert_allclose(flat(grad), projected.sum(0), rtol=1e-4, atol=1e-6)
  assert not np.allclose(projected.sum(0), np.sum(per_task_grads, axis=0), atol=1e-4)  # a conflict was projected
  s1, m1 = update(state, batch)
  np.testing.assert_allclose(m1['critic_loss'], losses, rtol=1e-4)
  expected = adam_first_step(state.critic_params, projected.sum(0), CFG.critic_lr)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), s1.critic_params, expected)
  jax.tree.map(np.testing.assert_array_equal, s1.actor_params, state.actor_params)   # delayed
  assert np.all(np.asarray(m1['actor_loss']) == 0.0)

  # Update 2: critic, then the actor on the new critic with task k's mask, then the targets.
  _, _, _, actor_order_key = jax.random.split(s1.key, 4)
  s2, m2 = update(s1, batch)
  actor_grads, actor_losses = [], []
  for k in range(2):
    obs = batch.obs[k]
    loss = lambda a: td3.actor_loss(a, s2.critic_params, obs, CFG, jnp.asarray(MASKS[k]))[0]
    actor_grads.append(flat(jax.grad(loss)(s1.actor_params)))
    a = numpy_ref.actor(np_tree(s1.actor_params), np.asarray(obs, np.float64)) * MASKS[k]
    actor_losses.append(-numpy_ref.critic(np_tree(s2.critic_params), 0, np.asarray(obs, np.float64), a).mean())
  np.testing.assert_allclose(m2['actor_loss'], actor_losses, rtol=1e-4)
  orders = np.asarray(gsurgery.random_orders(actor_order_key, 2))
  projected = numpy_pcgrad(np.stack(actor_grads), orders)
  expected = adam_first_step(s1.actor_params, projected.sum(0), CFG.actor_lr)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), s2.actor_params, expected)
  expected_ta = td3.soft_update(s1.target_actor_params, s2.actor_params, CFG.tau)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), s2.target_actor_params,
               expected_ta)
  assert int(s2.step) == 2


def test_act_masks_padded_entries():
  state = METHOD.init(jax.random.key(0))
  obs = jax.random.normal(jax.random.key(1), (2, 3, 5))
  for explore in (True, False):
    a = np.asarray(METHOD.act(state, obs, jax.random.key(2), explore))
    assert a.shape == (2, 3, 2) and np.all(np.abs(a) <= 1.0)
    np.testing.assert_array_equal(a[0, :, 1], 0.0)


def _plain(x):
  return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def run_updates(seed, n=4):
  state = METHOD.init(jax.random.key(seed))
  update = jax.jit(lambda s, b: METHOD.update(s, b, None, 0, 0, s.step))
  for i in range(n):
    state, _ = update(state, make_batch(100 + i))
  return jax.tree.map(lambda x: np.asarray(_plain(x)), state)


def test_same_seed_gives_bit_identical_state():
  a, b, c = run_updates(0), run_updates(0), run_updates(1)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(flat(a.actor_params), flat(c.actor_params))


def test_config_sizes_must_match_the_suite():
  with pytest.raises(ValueError, match='padded sizes'):
    gsurgery.GSurgeryMethod(TASKS, td3.TD3Config(obs_size=3, act_size=2))
