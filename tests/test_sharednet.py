"""SharedNet on TD3: raw-size task layers, losses against numpy, gradient isolation between tasks, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import padding, replay, td3
from ktm.methods import base, sharednet
from tests import numpy_ref
from tests.test_td3 import tree_equal

TASKS = base.TaskInfo(('small', 'large'), obs_dims=(3, 5), act_dims=(1, 2))
CFG = sharednet.SharedNetConfig(hidden_sizes=(16, 8), batch_size=6)
B = CFG.batch_size
O, A = TASKS.obs_size, TASKS.act_size


def np_tree(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def random_batch(key, batch_size=B):
  """[K, B, ...] at padded sizes: obs zero-padded per task, actions masked by g^k."""
  ks = jax.random.split(key, 5)
  obs_masks = padding.action_masks(TASKS.obs_dims, O)[:, None, :]
  return replay.Transition(
      obs=jax.random.normal(ks[0], (2, batch_size, O)) * obs_masks,
      action=jax.random.uniform(ks[1], (2, batch_size, A), minval=-1, maxval=1) * TASKS.action_masks[:, None, :],
      reward=jax.random.normal(ks[2], (2, batch_size)),
      next_obs=jax.random.normal(ks[3], (2, batch_size, O)) * obs_masks,
      terminated=(jax.random.uniform(ks[4], (2, batch_size)) < 0.3).astype(jnp.float32))


def perturb(tree, key, scale=0.3):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


@pytest.fixture(scope='module')
def state():
  s = sharednet.init(jax.random.key(0), TASKS, CFG)
  return s.replace(target_actor_params=perturb(s.target_actor_params, jax.random.key(1)),
                   target_critic_params=perturb(s.target_critic_params, jax.random.key(2)))


# ---- numpy references: task k's RAW-size network (sliced out of the stacked parameters) ----

def np_actor(params, k, obs_raw):
  """obs_raw [B, obs_k] -> tanh actions [B, act_k]."""
  p = np_tree(params)
  o, a = TASKS.obs_dims[k], TASKS.act_dims[k]
  h = np.maximum(obs_raw @ p['input']['kernel'][k][:o] + p['input']['bias'][k], 0.0)
  h = np.maximum(numpy_ref.mlp(p['MLP_0'], h), 0.0)
  return np.tanh(h @ p['head']['kernel'][k][:, :a] + p['head']['bias'][k][:a])


def np_critic(twin_params, j, k, obs_raw, act_raw):
  """Critic j of the twin for task k on raw inputs: [B]."""
  p = jax.tree.map(lambda x: x[j], np_tree(twin_params))
  o, a = TASKS.obs_dims[k], TASKS.act_dims[k]
  rows = np.concatenate([np.arange(o), O + np.arange(a)])
  h = np.maximum(np.concatenate([obs_raw, act_raw], -1) @ p['input']['kernel'][k][rows] + p['input']['bias'][k], 0)
  h = np.maximum(numpy_ref.mlp(p['MLP_0'], h), 0.0)
  return (h @ p['head']['kernel'][k] + p['head']['bias'][k])[:, 0]


def raw(batch, k):
  o, a = TASKS.obs_dims[k], TASKS.act_dims[k]
  return (np.asarray(batch.obs[k], np.float64)[:, :o], np.asarray(batch.action[k], np.float64)[:, :a],
          np.asarray(batch.next_obs[k], np.float64)[:, :o])


# ---- raw-size task layers ----

def test_task_layers_have_raw_sizes_and_padded_entries_are_zero(state):
  p = state.actor_params
  assert p['input']['kernel'].shape == (2, O, 16) and p['head']['kernel'].shape == (2, 8, A)
  assert p['MLP_0']['Dense_0']['kernel'].shape == (16, 8)                        # one shared layer, no task axis
  k_in, k_head = np.asarray(p['input']['kernel']), np.asarray(p['head']['kernel'])
  assert np.all(k_in[0, 3:] == 0) and np.all(k_in[0, :3] != 0) and np.all(k_in[1] != 0)
  assert np.all(k_head[0, :, 1:] == 0) and np.all(k_head[1] != 0)
  c_in = np.asarray(state.critic_params['input']['kernel'])                     # [2 critics, K, O + A, 16]
  assert np.all(c_in[:, 0, [3, 4, 6]] == 0) and np.all(c_in[:, 0, [0, 1, 2, 5]] != 0) and np.all(c_in[:, 1] != 0)
  # Raw fan-in initialisation: task 0's 3-input layer has std ~ 1/sqrt(3), task 1's 5-input one ~ 1/sqrt(5).
  big = sharednet.init(jax.random.key(3), TASKS, sharednet.SharedNetConfig(hidden_sizes=(4096, 8)))
  w = np.asarray(big.actor_params['input']['kernel'])
  assert w[0, :3].std() == pytest.approx(1 / np.sqrt(3), rel=0.03)
  assert w[1].std() == pytest.approx(1 / np.sqrt(5), rel=0.03)


def test_padded_parameter_entries_have_no_effect(state):
  """Changing the stored values at padded rows/columns changes no output: the layers are raw-size."""
  def scramble(params, key):
    """Random values at the padded entries: kernel entries that are exactly 0 (real ones never are) and the
    actor head's bias past task 0's one action."""
    noise = perturb(params, key, 5.0)
    layers = {name: {'kernel': jnp.where(params[name]['kernel'] == 0, noise[name]['kernel'], params[name]['kernel']),
                     'bias': params[name]['bias']} for name in ('input', 'head')}
    if layers['head']['bias'].ndim == 2:     # the actor's [K, A] head bias
      layers['head']['bias'] = params['head']['bias'].at[0, 1:].set(noise['head']['bias'][0, 1:])
    return {**params, **layers}
  batch = random_batch(jax.random.key(4))
  actor2 = scramble(state.actor_params, jax.random.key(5))
  assert not np.array_equal(actor2['input']['kernel'], state.actor_params['input']['kernel'])
  np.testing.assert_array_equal(sharednet.policy(actor2, batch.obs, TASKS, CFG),
                                sharednet.policy(state.actor_params, batch.obs, TASKS, CFG))
  critic2 = scramble(state.critic_params, jax.random.key(6))
  np.testing.assert_array_equal(sharednet.twin_q(critic2, batch.obs, batch.action, TASKS, CFG),
                                sharednet.twin_q(state.critic_params, batch.obs, batch.action, TASKS, CFG))
  # Task 0 reads only its 3 obs entries and its 1 action entry, whatever the padded inputs and weights hold.
  garbage = jax.random.normal(jax.random.key(7), batch.obs.shape) * (1 - padding.action_masks(TASKS.obs_dims, O))[
      :, None, :]
  act_garbage = jnp.zeros_like(batch.action).at[0, :, 1].set(3.0)
  np.testing.assert_array_equal(sharednet.policy(actor2, batch.obs + garbage, TASKS, CFG),
                                sharednet.policy(state.actor_params, batch.obs, TASKS, CFG))
  np.testing.assert_array_equal(
      sharednet.twin_q(critic2, batch.obs + garbage, batch.action + act_garbage, TASKS, CFG),
      sharednet.twin_q(state.critic_params, batch.obs, batch.action, TASKS, CFG))


# ---- losses against numpy ----

def test_td_target_matches_numpy(state):
  batch = random_batch(jax.random.key(7))
  key = jax.random.key(8)
  y = sharednet.td_target(state.target_actor_params, state.target_critic_params, batch, key, TASKS, CFG)
  noise = np.clip(0.2 * np.asarray(jax.random.normal(key, (2, B, A)), np.float64), -0.5, 0.5)
  for k in range(2):
    _, _, next_obs = raw(batch, k)
    a = TASKS.act_dims[k]
    next_action = np.clip(np_actor(state.target_actor_params, k, next_obs) + noise[k, :, :a], -1, 1)
    q = np.minimum(np_critic(state.target_critic_params, 0, k, next_obs, next_action),
                   np_critic(state.target_critic_params, 1, k, next_obs, next_action))
    expected = np.asarray(batch.reward[k]) + 0.99 * (1 - np.asarray(batch.terminated[k])) * q
    np.testing.assert_allclose(y[k], expected, rtol=1e-5, atol=1e-5)


def test_critic_and_actor_losses_match_numpy(state):
  batch = random_batch(jax.random.key(9))
  target = jnp.stack([jnp.linspace(-1.0, 1.0, B), jnp.linspace(2.0, 0.0, B)])
  loss, metrics = sharednet.critic_loss(state.critic_params, target, batch, TASKS, CFG)
  a_loss, a_metrics = sharednet.actor_loss(state.actor_params, state.critic_params, batch.obs, TASKS, CFG)
  critic_ref, actor_ref = [], []
  for k in range(2):
    obs, action, _ = raw(batch, k)
    y = np.asarray(target[k], np.float64)
    q1 = np_critic(state.critic_params, 0, k, obs, action)
    q2 = np_critic(state.critic_params, 1, k, obs, action)
    critic_ref.append(np.mean((y - q1) ** 2) + np.mean((y - q2) ** 2))
    assert float(metrics['q1'][k]) == pytest.approx(q1.mean(), rel=1e-5, abs=1e-6)
    actor_ref.append(-np_critic(state.critic_params, 0, k, obs, np_actor(state.actor_params, k, obs)).mean())
  np.testing.assert_allclose(metrics['critic_loss'], critic_ref, rtol=1e-5)
  np.testing.assert_allclose(a_metrics['actor_loss'], actor_ref, rtol=1e-5, atol=1e-6)
  assert float(loss) == pytest.approx(sum(critic_ref), rel=1e-5)
  assert float(a_loss) == pytest.approx(sum(actor_ref), rel=1e-5, abs=1e-6)
  # The actor loss reads Q1 only.
  changed = jax.tree.map(lambda p: p.at[1].add(1.0), state.critic_params)
  assert float(sharednet.actor_loss(state.actor_params, changed, batch.obs, TASKS, CFG)[0]) == float(a_loss)


# ---- gradient isolation ----

def _task_layer_grads(grads):
  return {name: grads[name] for name in ('input', 'head')}


def test_task_loss_has_zero_gradient_on_other_tasks_layers(state):
  """Task k's critic and actor losses: exactly zero gradient on task j's input layer and head (j != k), nonzero
  on task k's and on the shared layers. Also zero on task k's own padded entries."""
  batch = random_batch(jax.random.key(10))
  target = sharednet.td_target(state.target_actor_params, state.target_critic_params, batch, jax.random.key(11),
                               TASKS, CFG)
  for k in range(2):
    j = 1 - k
    critic_grads = jax.grad(lambda c: sharednet.critic_loss(c, target, batch, TASKS, CFG)[1]['critic_loss'][k])(
        state.critic_params)
    actor_grads = jax.grad(
        lambda a: sharednet.actor_loss(a, state.critic_params, batch.obs, TASKS, CFG)[1]['actor_loss'][k])(
            state.actor_params)
    for grads, task_axis in ((critic_grads, 1), (actor_grads, 0)):
      for leaf in jax.tree.leaves(_task_layer_grads(grads)):
        other, own = np.take(np.asarray(leaf), j, axis=task_axis), np.take(np.asarray(leaf), k, axis=task_axis)
        assert np.all(other == 0)
        assert np.any(own != 0)
      assert all(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads['MLP_0']))
    # Own padded entries: task 0 reads obs[:3] and action[:1].
    if k == 0:
      assert np.all(np.asarray(actor_grads['input']['kernel'])[0, 3:] == 0)
      assert np.all(np.asarray(actor_grads['head']['kernel'])[0, :, 1:] == 0)
      assert np.all(np.asarray(critic_grads['input']['kernel'])[:, 0, [3, 4, 6]] == 0)


# ---- TD3 update ----

def test_update_is_td3_with_policy_delay_and_summed_losses(state):
  update = jax.jit(sharednet.update, static_argnames=('tasks', 'cfg'))
  batch = random_batch(jax.random.key(12))
  s1, m1 = update(state, batch, tasks=TASKS, cfg=CFG)           # critic only
  assert m1['critic_loss'].shape == (2,) and np.all(np.asarray(m1['actor_loss']) == 0)
  assert tree_equal(s1.actor_params, state.actor_params)
  assert tree_equal(s1.target_critic_params, state.target_critic_params)
  # The critic step is Adam's first step on the summed loss with the numpy-checked target.
  _, noise_key = jax.random.split(state.key)
  y = sharednet.td_target(state.target_actor_params, state.target_critic_params, batch, noise_key, TASKS, CFG)
  grads = jax.grad(lambda c: sharednet.critic_loss(c, y, batch, TASKS, CFG)[0])(state.critic_params)
  expected = jax.tree.map(lambda p, g: p - 3e-4 * g / (jnp.abs(g) + 1e-8), state.critic_params, grads)
  jax.tree.map(lambda x, e: np.testing.assert_allclose(x, e, rtol=1e-5, atol=1e-6), s1.critic_params, expected)
  s2, m2 = update(s1, batch, tasks=TASKS, cfg=CFG)              # critic, actor, targets
  assert np.all(np.asarray(m2['actor_loss']) != 0) and not tree_equal(s2.actor_params, s1.actor_params)
  close = lambda x, e: np.testing.assert_allclose(x, e, rtol=1e-6, atol=1e-7)
  jax.tree.map(close, s2.target_actor_params, td3.soft_update(s1.target_actor_params, s2.actor_params, CFG.tau))
  jax.tree.map(close, s2.target_critic_params, td3.soft_update(s1.target_critic_params, s2.critic_params, CFG.tau))
  # Padded entries stay exactly zero through Adam (zero gradient, zero moments).
  k_in = np.asarray(s2.actor_params['input']['kernel'])
  assert np.all(k_in[0, 3:] == 0) and np.all(np.asarray(s2.actor_params['head']['kernel'])[0, :, 1:] == 0)


def test_act_explores_with_gaussian_noise_and_evaluates_deterministically(state):
  method = sharednet.SharedNetMethod(TASKS, CFG)
  obs = random_batch(jax.random.key(13)).obs[:, :4]
  greedy = np.asarray(method.act(state, obs, jax.random.key(14), False))
  explore = np.asarray(method.act(state, obs, jax.random.key(14), True))
  np.testing.assert_array_equal(greedy, np.asarray(method.act(state, obs, jax.random.key(15), False)))
  assert np.all(greedy[0, :, 1] == 0) and np.all(explore[0, :, 1] == 0) and np.all(np.abs(explore) <= 1)
  noise = 0.1 * np.asarray(jax.random.normal(jax.random.key(14), (2, 4, A)))
  np.testing.assert_allclose(explore, np.clip(greedy + noise, -1, 1) * TASKS.action_masks[:, None, :], atol=1e-6)
  for k in range(2):
    o, a = TASKS.obs_dims[k], TASKS.act_dims[k]
    np.testing.assert_allclose(greedy[k, :, :a], np_actor(state.actor_params, k, np.asarray(obs[k])[:, :o]),
                               rtol=1e-5, atol=1e-6)


def test_same_seed_same_bits():
  method = sharednet.SharedNetMethod(TASKS, CFG)
  update = jax.jit(lambda s, b: method.update(s, b, None, 0, 0, s.step))

  def run(seed):
    s = method.init(jax.random.key(seed))
    for i in range(4):
      s, _ = update(s, random_batch(jax.random.key(300 + i)))
    return s

  a, b, c = run(0), run(0), run(1)
  assert tree_equal(a, b)
  assert not tree_equal(a.actor_params, c.actor_params)


def test_config_validation():
  with pytest.raises(ValueError, match='shared layer'):
    sharednet.SharedNetConfig(hidden_sizes=(400,))
  with pytest.raises(ValueError, match='policy_delay'):
    sharednet.SharedNetConfig(policy_delay=0)
  assert sharednet.SharedNetConfig(hidden_sizes=[4, 4]).hidden_sizes == (4, 4)
