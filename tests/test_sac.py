"""SAC-MT: tanh-Gaussian log-prob, padded action dims, temperature, losses against numpy, determinism."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import padding, replay
from ktm.methods import base, sac
from tests import numpy_ref
from tests.test_td3 import tree_equal

TASKS = base.TaskInfo(('small', 'large'), obs_dims=(3, 5), act_dims=(1, 2))
CFG = sac.SACConfig(hidden_sizes=(16, 8), batch_size=6)
B = CFG.batch_size


def np_tree(tree):
  return jax.tree.map(np.asarray, tree)


def random_batch(key, tasks=TASKS, batch_size=B, terminated=None):
  """[K, B, ...] at padded sizes: obs zero-padded per task, actions masked by g^k."""
  ks = jax.random.split(key, 5)
  k, o, a = tasks.num_tasks, tasks.obs_size, tasks.act_size
  obs_masks = padding.action_masks(tasks.obs_dims, o)[:, None, :]
  return replay.Transition(
      obs=jax.random.normal(ks[0], (k, batch_size, o)) * obs_masks,
      action=jax.random.uniform(ks[1], (k, batch_size, a), minval=-1, maxval=1) * tasks.action_masks[:, None, :],
      reward=jax.random.normal(ks[2], (k, batch_size)),
      next_obs=jax.random.normal(ks[3], (k, batch_size, o)) * obs_masks,
      terminated=(jax.random.uniform(ks[4], (k, batch_size)) < 0.3).astype(jnp.float32)
      if terminated is None else terminated)


def perturb(tree, key, scale=0.3):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


@pytest.fixture(scope='module')
def state():
  s = sac.init(jax.random.key(0), TASKS, CFG)
  # Distinct target critics and per-task temperatures, so the tests can tell which one a computation used.
  return s.replace(target_critic_params=perturb(s.target_critic_params, jax.random.key(1)),
                   log_alpha=jnp.array([-0.5, 0.7]))


# ---- numpy references ----

def np_gaussian(actor_params, obs):
  out = numpy_ref.mlp(np_tree(actor_params)['MLP_0'], np.asarray(obs, np.float64))
  a = out.shape[-1] // 2
  return out[..., :a], np.clip(out[..., a:], CFG.log_std_min, CFG.log_std_max)


def np_squashed_log_prob(u, mean, log_std, act_dim):
  """Change of variables a = tanh(u): log N(u; mean, std) - log(1 - tanh(u)^2), summed over the first act_dim."""
  std = np.exp(log_std)
  log_normal = -0.5 * ((u - mean) / std) ** 2 - np.log(std * np.sqrt(2 * np.pi))
  return np.sum((log_normal - np.log(1.0 - np.tanh(u) ** 2))[..., :act_dim], axis=-1)


def np_sample(actor_params, obs, key, act_dim):
  """The same reparameterised sample as `sac.sample_action` (its noise is normal(key, mean.shape))."""
  mean, log_std = np_gaussian(actor_params, obs)
  eps = np.asarray(jax.random.normal(key, mean.shape), np.float64)
  u = mean + np.exp(log_std) * eps
  mask = np.arange(mean.shape[-1]) < act_dim
  return np.tanh(u) * mask, np_squashed_log_prob(u, mean, log_std, act_dim)


def np_min_q(critic_params, obs, action):
  c = np_tree(critic_params)
  return np.minimum(numpy_ref.critic(c, 0, obs, action), numpy_ref.critic(c, 1, obs, action))


# ---- the tanh-Gaussian ----

def test_squashed_log_prob_matches_numpy_change_of_variables():
  rng = np.random.default_rng(0)
  u = rng.normal(size=(7, 3)) * 2.0
  mean, log_std = rng.normal(size=(7, 3)), rng.normal(size=(7, 3)) * 0.5
  for act_dim in (1, 2, 3):
    mask = padding.action_mask(act_dim, 3)
    got = sac.squashed_log_prob(jnp.asarray(u, jnp.float32), jnp.asarray(mean, jnp.float32),
                                jnp.asarray(log_std, jnp.float32), mask)
    np.testing.assert_allclose(got, np_squashed_log_prob(u, mean, log_std, act_dim), rtol=1e-5, atol=1e-5)


def test_squashed_density_integrates_to_one_and_is_stable():
  """p(a) = N(atanh a; mu, sigma) / (1 - a^2) is a density on (-1, 1); large |u| stays finite."""
  a = np.linspace(-1 + 1e-6, 1 - 1e-6, 400001)
  u = np.arctanh(a)
  for mu, log_sigma in ((0.3, -0.2), (-1.5, 0.4)):
    logp = sac.squashed_log_prob(jnp.asarray(u, jnp.float32)[:, None], jnp.full((1, 1), mu),
                                 jnp.full((1, 1), log_sigma), jnp.ones(1))
    assert np.trapezoid(np.exp(np.asarray(logp, np.float64)), a) == pytest.approx(1.0, abs=2e-3)
  far = sac.squashed_log_prob(jnp.array([[30.0, -30.0]]), jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.ones(2))
  assert np.isfinite(float(far[0]))


def test_sample_action_matches_numpy(state):
  obs = random_batch(jax.random.key(2)).obs[1]
  key = jax.random.key(3)
  for act_dim in (1, 2):
    action, log_prob = sac.sample_action(state.actor_params, obs, key, padding.action_mask(act_dim, 2), CFG)
    ref_action, ref_log_prob = np_sample(state.actor_params, obs, key, act_dim)
    np.testing.assert_allclose(action, ref_action, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_prob, ref_log_prob, rtol=1e-4, atol=1e-4)
  assert np.all(np.asarray(sac.sample_action(state.actor_params, obs, key, padding.action_mask(1, 2), CFG)[0])[:, 1]
                == 0)


# ---- padded action dims change nothing ----

def _with_padded_outputs_changed(actor_params, act_size, padded_dims, key):
  """Changes the last layer's kernel and bias for the mean and log-std outputs of `padded_dims`."""
  last = sorted(actor_params['MLP_0'], key=lambda n: int(n.split('_')[-1]))[-1]
  cols = np.array(list(padded_dims) + [act_size + d for d in padded_dims])
  layer = actor_params['MLP_0'][last]
  k1, k2 = jax.random.split(key)
  kernel = layer['kernel'].at[:, cols].add(3.0 * jax.random.normal(k1, (layer['kernel'].shape[0], len(cols))))
  bias = layer['bias'].at[cols].add(5.0 * jax.random.normal(k2, (len(cols),)))
  return {'MLP_0': {**actor_params['MLP_0'], last: {'kernel': kernel, 'bias': bias}}}, last, cols


def test_padded_action_dims_change_no_loss_and_no_gradient(state):
  """Task 0 has 1 real action dim of 2: its actor loss, critic target and their gradients on every real parameter
  are unchanged (bit for bit) when the network's outputs for the padded dim change; the padded columns get zero
  gradient."""
  batch = jax.tree.map(lambda x: x[0], random_batch(jax.random.key(4)))
  mask = jnp.asarray(TASKS.action_masks[0])
  changed, last, cols = _with_padded_outputs_changed(state.actor_params, 2, [1], jax.random.key(5))
  key = jax.random.key(6)

  def actor(params):
    return sac.actor_loss(params, state.critic_params, state.log_alpha[0], batch.obs, mask, key, CFG)

  def target(params):
    return jnp.sum(sac.td_target(params, state.target_critic_params, state.log_alpha[0], batch, mask, key, CFG))

  (l1, m1), g1 = jax.value_and_grad(actor, has_aux=True)(state.actor_params)
  (l2, m2), g2 = jax.value_and_grad(actor, has_aux=True)(changed)
  assert float(l1) == float(l2) and float(m1['entropy']) == float(m2['entropy'])
  assert float(target(state.actor_params)) == float(target(changed))
  padded = lambda g: np.asarray(g['MLP_0'][last]['kernel'])[:, cols]
  assert np.all(padded(g1) == 0) and np.all(padded(g2) == 0)
  assert np.all(np.asarray(g1['MLP_0'][last]['bias'])[cols] == 0)
  jax.tree.map(np.testing.assert_array_equal, g1, g2)
  # The same change does move task 1, whose second action dim is real.
  full = jnp.ones(2)
  assert float(sac.actor_loss(state.actor_params, state.critic_params, 0.0, batch.obs, full, key, CFG)[0]) != \
      float(sac.actor_loss(changed, state.critic_params, 0.0, batch.obs, full, key, CFG)[0])


# ---- temperature ----

def test_alpha_loss_gradient_sign_and_value():
  for log_alpha, log_prob, target in ((0.3, -0.5, -2.0), (-1.0, 1.5, -1.0)):
    grad = jax.grad(sac.alpha_loss)(jnp.float32(log_alpha), jnp.float32(log_prob), jnp.float32(target))
    # d/d log_alpha [-alpha (log_prob + target)] = alpha * (entropy - target), entropy = -log_prob.
    assert float(grad) == pytest.approx(np.exp(log_alpha) * (-log_prob - target), rel=1e-6)


def _temperature_after(state, updates, cfg):
  update = jax.jit(sac.update, static_argnames=('tasks', 'cfg'))
  for i in range(updates):
    state, metrics = update(state, random_batch(jax.random.key(100 + i)), tasks=TASKS, cfg=cfg)
  return state, metrics


@pytest.mark.parametrize('combine', ['sequential', 'joint'])
def test_temperature_moves_toward_target_entropy(combine):
  """A fresh policy (std ~ 1) has entropy above SAC's target -|A_k|, so alpha must fall; a target of +1 nat per dim
  is above the largest entropy an action in [-1, 1]^d can have (d log 2), so alpha must rise."""
  fresh = sac.init(jax.random.key(7), TASKS, CFG)
  low = dataclasses.replace(CFG, combine=combine, alpha_lr=1e-2)
  s, m = _temperature_after(fresh, 5, low)
  assert np.all(np.asarray(m['entropy']) > -np.asarray(TASKS.act_dims))
  assert np.all(np.asarray(s.log_alpha) < 0.0)
  s, m = _temperature_after(fresh, 5, dataclasses.replace(low, target_entropy_per_dim=1.0))
  assert np.all(np.asarray(m['entropy']) < np.asarray(TASKS.act_dims) * np.log(2.0))
  assert np.all(np.asarray(s.log_alpha) > 0.0)


def test_sequential_step_updates_only_its_tasks_temperature(state):
  """In a sequential epoch, step k changes log_alpha[k] and its Adam moments only."""
  batch = random_batch(jax.random.key(8))
  _, key = jax.random.split(state.key)
  masks = jnp.asarray(TASKS.action_masks)
  new, _ = sac._step(state, jax.tree.map(lambda x: x[1], batch), masks[1], sac.target_entropies(TASKS, CFG)[1],
                     jnp.array([False, True]), state.log_alpha[1], key, CFG, joint=False)
  assert float(new.log_alpha[0]) == float(state.log_alpha[0]) and float(new.log_alpha[1]) != float(state.log_alpha[1])
  mu_old, mu_new = state.alpha_opt_state[0].mu, new.alpha_opt_state[0].mu
  assert float(mu_new[0]) == float(mu_old[0]) == 0.0 and float(mu_new[1]) != 0.0


# ---- losses against numpy, K = 2 tasks of different sizes ----

def test_td_target_and_critic_loss_match_numpy(state):
  batch = random_batch(jax.random.key(9))
  for k in range(2):
    b = jax.tree.map(lambda x: np.asarray(x[k], np.float64), batch)
    key = jax.random.key(10 + k)
    y = sac.td_target(state.actor_params, state.target_critic_params, state.log_alpha[k],
                      jax.tree.map(lambda x: x[k], batch), jnp.asarray(TASKS.action_masks[k]), key, CFG)
    next_action, next_log_prob = np_sample(state.actor_params, b.next_obs, key, TASKS.act_dims[k])
    soft_q = np_min_q(state.target_critic_params, b.next_obs, next_action) - np.exp(float(state.log_alpha[k])) * \
        next_log_prob
    y_ref = b.reward + 0.99 * (1 - b.terminated) * soft_q
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    loss, metrics = sac.critic_loss(state.critic_params, y, jax.tree.map(lambda x: x[k], batch), CFG)
    c = np_tree(state.critic_params)
    q1 = numpy_ref.critic(c, 0, b.obs, b.action)
    q2 = numpy_ref.critic(c, 1, b.obs, b.action)
    y64 = np.asarray(y, np.float64)
    assert float(loss) == pytest.approx(np.mean((q1 - y64) ** 2) + np.mean((q2 - y64) ** 2), rel=1e-5)
    assert float(metrics['q1']) == pytest.approx(q1.mean(), rel=1e-5, abs=1e-6)


def test_actor_loss_matches_numpy(state):
  batch = random_batch(jax.random.key(11))
  for k in range(2):
    obs = np.asarray(batch.obs[k], np.float64)
    key = jax.random.key(12 + k)
    loss, metrics = sac.actor_loss(state.actor_params, state.critic_params, state.log_alpha[k], batch.obs[k],
                                   jnp.asarray(TASKS.action_masks[k]), key, CFG)
    action, log_prob = np_sample(state.actor_params, obs, key, TASKS.act_dims[k])
    expected = np.mean(np.exp(float(state.log_alpha[k])) * log_prob - np_min_q(state.critic_params, obs, action))
    assert float(loss) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert float(metrics['entropy']) == pytest.approx(-log_prob.mean(), rel=1e-4, abs=1e-5)


def test_joint_losses_are_sums_of_the_per_task_losses(state):
  """The joint step's first critic gradient equals the sum of the two per-task critic gradients."""
  batch = random_batch(jax.random.key(14))
  target = jnp.stack([jnp.linspace(-1.0, 1.0, B), jnp.linspace(2.0, 0.0, B)])
  joint = sac._sum_over_tasks(lambda c, y, b: sac.critic_loss(c, y, b, CFG), 1)
  (loss, metrics), grads = jax.value_and_grad(joint, has_aux=True)(state.critic_params, target, batch)
  per_task = [sac.critic_loss(state.critic_params, target[k], jax.tree.map(lambda x: x[k], batch), CFG)[0]
              for k in range(2)]
  np.testing.assert_allclose(metrics['critic_loss'], per_task, rtol=1e-6)
  assert float(loss) == pytest.approx(sum(float(x) for x in per_task), rel=1e-6)
  expected = jax.tree.map(lambda *g: g[0] + g[1], *[
      jax.grad(lambda c: sac.critic_loss(c, target[k], jax.tree.map(lambda x: x[k], batch), CFG)[0])(
          state.critic_params) for k in range(2)])
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), grads, expected)


def test_update_critic_step_is_one_adam_step_and_targets_follow(state):
  """Sequential mode, task 0's step: Adam's first step on the numpy-checked loss, then Polyak targets."""
  batch = random_batch(jax.random.key(15))
  fresh = state.replace(step=jnp.zeros((), jnp.int32))
  new, metrics = jax.jit(sac.update, static_argnames=('tasks', 'cfg'))(fresh, batch, tasks=TASKS, cfg=CFG)
  assert metrics['critic_loss'].shape == (2,) and metrics['alpha'].shape == (2,)
  np.testing.assert_allclose(metrics['alpha'], np.exp(np.asarray(state.log_alpha)), rtol=1e-6)
  assert int(new.step) == 1
  # Task 0's step alone, from the same key derivation.
  _, update_key = jax.random.split(state.key)
  task_key = jax.random.fold_in(update_key, 0)
  target_key, _ = jax.random.split(task_key)
  b0 = jax.tree.map(lambda x: x[0], batch)
  y = sac.td_target(state.actor_params, state.target_critic_params, state.log_alpha[0], b0,
                    jnp.asarray(TASKS.action_masks[0]), target_key, CFG)
  grads = jax.grad(lambda c: sac.critic_loss(c, y, b0, CFG)[0])(state.critic_params)
  after_0 = jax.tree.map(lambda p, g: p - 3e-4 * g / (jnp.abs(g) + 1e-8), state.critic_params, grads)
  first, _ = sac._step(state, b0, jnp.asarray(TASKS.action_masks[0]), -1.0, jnp.array([True, False]),
                       state.log_alpha[0], task_key, CFG, joint=False)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), first.critic_params, after_0)
  expected_target = jax.tree.map(lambda t, p: 0.995 * t + 0.005 * p, state.target_critic_params,
                                 first.critic_params)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), first.target_critic_params,
               expected_target)
  # The epoch is task 0's step then task 1's (its own temperature, target -2).
  second, _ = sac._step(first, jax.tree.map(lambda x: x[1], batch), jnp.asarray(TASKS.action_masks[1]), -2.0,
                        jnp.array([False, True]), first.log_alpha[1], jax.random.fold_in(update_key, 1), CFG,
                        joint=False)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
               (new.critic_params, new.actor_params, new.log_alpha), (second.critic_params, second.actor_params,
                                                                       second.log_alpha))


# ---- acting ----

def test_act_explores_with_samples_and_evaluates_with_tanh_mean(state):
  method = sac.SACMethod(TASKS, CFG)
  obs = random_batch(jax.random.key(16)).obs[:, :4]        # [K, E=4, O]
  a1 = np.asarray(method.act(state, obs, jax.random.key(17), True))
  a2 = np.asarray(method.act(state, obs, jax.random.key(18), True))
  greedy = np.asarray(method.act(state, obs, jax.random.key(17), False))
  assert a1.shape == (2, 4, 2) and np.all(np.abs(a1) <= 1) and not np.allclose(a1, a2)
  assert np.all(a1[0, :, 1] == 0) and np.all(greedy[0, :, 1] == 0)
  np.testing.assert_array_equal(greedy, np.asarray(method.act(state, obs, jax.random.key(99), False)))
  for k in range(2):
    mean, _ = np_gaussian(state.actor_params, np.asarray(obs[k], np.float64))
    np.testing.assert_allclose(greedy[k, :, :TASKS.act_dims[k]], np.tanh(mean)[:, :TASKS.act_dims[k]],
                               rtol=1e-5, atol=1e-6)


# ---- determinism ----

@pytest.mark.parametrize('combine', ['sequential', 'joint'])
def test_same_seed_same_bits(combine):
  cfg = dataclasses.replace(CFG, combine=combine)
  method = sac.SACMethod(TASKS, cfg)
  update = jax.jit(lambda s, b: method.update(s, b, None, 0, 0, s.step))

  def run(seed):
    s = method.init(jax.random.key(seed))
    for i in range(4):
      s, _ = update(s, random_batch(jax.random.key(200 + i)))
    return s

  a, b, c = run(0), run(0), run(1)
  assert tree_equal(a, b)
  assert not tree_equal(a.actor_params, c.actor_params)


def test_config_validation():
  with pytest.raises(ValueError, match='combine'):
    sac.SACConfig(combine='both')
  with pytest.raises(ValueError, match='log_std_min'):
    sac.SACConfig(log_std_min=2.0, log_std_max=-2.0)
  with pytest.raises(ValueError, match='compute_dtype'):
    sac.SACConfig(compute_dtype='float16')
  assert sac.SACConfig(hidden_sizes=[4, 4]).hidden_sizes == (4, 4)
