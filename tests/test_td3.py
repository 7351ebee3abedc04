"""TD3 losses, targets, delay and soft updates against numpy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import padding, replay, sweep, td3
from tests import numpy_ref

CFG = td3.TD3Config(obs_size=3, act_size=2, hidden_sizes=(16, 8), batch_size=5)


# The helpers are compiled: run eagerly, each of their ops would compile a tiny program of its own, per shape.
@functools.partial(jax.jit, static_argnames=('batch_size', 'cfg'))
def _random_batch(key, batch_size, cfg):
  ks = jax.random.split(key, 4)
  return replay.Transition(
      obs=jax.random.normal(ks[0], (batch_size, cfg.obs_size)),
      action=jax.random.uniform(ks[1], (batch_size, cfg.act_size), minval=-1, maxval=1),
      reward=jax.random.normal(ks[2], (batch_size,)),
      next_obs=jax.random.normal(ks[3], (batch_size, cfg.obs_size)),
      terminated=jnp.zeros(batch_size))


def random_batch(key, batch_size=5, cfg=CFG, terminated=None):
  batch = _random_batch(key, batch_size, cfg)
  return batch if terminated is None else batch.replace(terminated=jnp.asarray(terminated, jnp.float32))


@functools.partial(jax.jit, static_argnames='scale')
def perturbed(state, key, scale=0.3):
  """Distinct online and target parameters, so tests can tell which network a computation used."""
  leaves, tree = jax.tree.flatten(state.target_actor_params)
  keys = jax.random.split(key, len(leaves))
  noisy = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
  ct_leaves, ct_tree = jax.tree.flatten(state.target_critic_params)
  ckeys = jax.random.split(jax.random.fold_in(key, 1), len(ct_leaves))
  ct_noisy = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(ct_leaves, ckeys)]
  return state.replace(target_actor_params=jax.tree.unflatten(tree, noisy),
                       target_critic_params=jax.tree.unflatten(ct_tree, ct_noisy))


@pytest.fixture(scope="module")
def state():
  return perturbed(td3.init(jax.random.key(0), CFG), jax.random.key(1))


def np_tree(tree):
  return jax.tree.map(np.asarray, tree)


def ref_target(state, batch, noise, mask=None):
  next_action = np.clip(numpy_ref.actor(np_tree(state.target_actor_params), np.asarray(batch.next_obs)) + noise, -1, 1)
  if mask is not None:
    next_action = next_action * mask
  tc = np_tree(state.target_critic_params)
  q = np.minimum(numpy_ref.critic(tc, 0, np.asarray(batch.next_obs), next_action),
                 numpy_ref.critic(tc, 1, np.asarray(batch.next_obs), next_action))
  return np.asarray(batch.reward) + 0.99 * (1 - np.asarray(batch.terminated)) * q


def test_smoothing_noise_is_per_sample_and_clipped():
  cfg = td3.TD3Config(obs_size=1, act_size=3, target_noise=1.0, target_noise_clip=0.5)
  noise = np.asarray(td3.smoothing_noise(jax.random.key(3), (4096, 3), cfg))
  assert noise.min() >= -0.5 and noise.max() <= 0.5
  assert np.abs(noise).max() == pytest.approx(0.5)  # some samples hit the clip
  inside = noise[np.abs(noise[:, 0]) < 0.5, 0]     # rows differ: noise is not broadcast over the batch
  assert len(inside) > 1000 and len(np.unique(inside)) == len(inside)
  # Unclipped draws: N(0, 0.2) has std 0.2.
  wide_clip = td3.TD3Config(obs_size=1, act_size=1, target_noise_clip=10.0)
  small = np.asarray(td3.smoothing_noise(jax.random.key(4), (20000,), wide_clip))
  assert small.std() == pytest.approx(0.2, rel=0.03)


def test_td_target_matches_numpy(state):
  batch = random_batch(jax.random.key(2), terminated=[0, 1, 0, 0, 1])
  key = jax.random.key(5)
  target = td3.td_target(state.target_actor_params, state.target_critic_params, batch, key, CFG)
  noise = np.clip(0.2 * np.asarray(jax.random.normal(key, (5, 2))), -0.5, 0.5)
  np.testing.assert_allclose(np.asarray(target), ref_target(state, batch, noise), rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_and_termination_does_not(state):
  key = jax.random.key(6)
  truncated = random_batch(jax.random.key(2), terminated=[0] * 5)   # a time-limit end is stored with terminated=0
  terminal = truncated.replace(terminated=jnp.ones(5))
  y_trunc = td3.td_target(state.target_actor_params, state.target_critic_params, truncated, key, CFG)
  y_term = td3.td_target(state.target_actor_params, state.target_critic_params, terminal, key, CFG)
  np.testing.assert_array_equal(np.asarray(y_term), np.asarray(truncated.reward))
  noise = np.clip(0.2 * np.asarray(jax.random.normal(key, (5, 2))), -0.5, 0.5)
  np.testing.assert_allclose(np.asarray(y_trunc), ref_target(state, truncated, noise), rtol=1e-5, atol=1e-5)
  assert np.all(np.abs(np.asarray(y_trunc) - np.asarray(truncated.reward)) > 1e-4)


def test_td_target_masks_padded_actions(state):
  batch = random_batch(jax.random.key(2))
  key = jax.random.key(7)
  mask = padding.action_mask(1, 2)
  target = td3.td_target(state.target_actor_params, state.target_critic_params, batch, key, CFG, mask)
  noise = np.clip(0.2 * np.asarray(jax.random.normal(key, (5, 2))), -0.5, 0.5)
  np.testing.assert_allclose(np.asarray(target), ref_target(state, batch, noise, np.array([1.0, 0.0])),
                             rtol=1e-5, atol=1e-5)


def test_critic_loss_matches_numpy(state):
  batch = random_batch(jax.random.key(8))
  y = jnp.linspace(-1.0, 2.0, 5)
  loss, metrics = td3.critic_loss(state.critic_params, y, batch, CFG)
  c = np_tree(state.critic_params)
  q1 = numpy_ref.critic(c, 0, np.asarray(batch.obs), np.asarray(batch.action))
  q2 = numpy_ref.critic(c, 1, np.asarray(batch.obs), np.asarray(batch.action))
  expected = np.mean((np.asarray(y) - q1) ** 2) + np.mean((np.asarray(y) - q2) ** 2)
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  assert float(metrics['q1']) == pytest.approx(q1.mean(), rel=1e-5, abs=1e-6)
  assert not np.allclose(q1, q2)  # the two critics are initialised independently


def test_actor_loss_uses_q1_only(state):
  obs = random_batch(jax.random.key(9)).obs
  loss, _ = td3.actor_loss(state.actor_params, state.critic_params, obs, CFG)
  action = numpy_ref.actor(np_tree(state.actor_params), np.asarray(obs))
  expected = -numpy_ref.critic(np_tree(state.critic_params), 0, np.asarray(obs), action).mean()
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  # Changing Q2 must not change the actor loss or its gradient.
  changed = jax.tree.map(lambda p: p.at[1].add(1.0), state.critic_params)
  g1 = jax.grad(lambda a: td3.actor_loss(a, state.critic_params, obs, CFG)[0])(state.actor_params)
  g2 = jax.grad(lambda a: td3.actor_loss(a, changed, obs, CFG)[0])(state.actor_params)
  jax.tree.map(np.testing.assert_array_equal, g1, g2)


def test_soft_update_arithmetic():
  target = {'w': jnp.array([1.0, 2.0]), 'b': jnp.array(-4.0)}
  online = {'w': jnp.array([3.0, 0.0]), 'b': jnp.array(4.0)}
  out = td3.soft_update(target, online, 0.25)
  np.testing.assert_allclose(out['w'], [0.25 * 3 + 0.75 * 1, 0.25 * 0 + 0.75 * 2])
  np.testing.assert_allclose(out['b'], 0.25 * 4 - 0.75 * 4)


def _plain(x):
  return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def tree_equal(a, b):
  """Bit-equal trees (numpy compares: no program compiled per leaf shape)."""
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(np.asarray(_plain(x)), np.asarray(_plain(y))),
                                          a, b)))


def test_policy_delay_and_target_updates(state):
  update = jax.jit(td3.update, static_argnames='cfg')
  batch = random_batch(jax.random.key(10))
  s1, m1 = update(state, batch, cfg=CFG)      # update 1 of d=2: critic only
  assert int(s1.step) == 1
  assert not tree_equal(s1.critic_params, state.critic_params)
  assert tree_equal(s1.actor_params, state.actor_params)
  assert tree_equal(s1.target_actor_params, state.target_actor_params)
  assert tree_equal(s1.target_critic_params, state.target_critic_params)
  assert float(m1['actor_loss']) == 0.0
  s2, _ = update(s1, batch, cfg=CFG)         # update 2: critic, actor, then all targets
  assert not tree_equal(s2.actor_params, s1.actor_params)
  expected_ta = td3.soft_update(s1.target_actor_params, s2.actor_params, CFG.tau)
  expected_tc = td3.soft_update(s1.target_critic_params, s2.critic_params, CFG.tau)
  close = lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
  jax.tree.map(close, s2.target_actor_params, expected_ta)
  jax.tree.map(close, s2.target_critic_params, expected_tc)
  s3, _ = update(s2, batch, cfg=CFG)
  assert tree_equal(s3.actor_params, s2.actor_params)


def test_critic_step_is_one_adam_step_on_the_numpy_loss(state):
  """The first update's critic change equals Adam's first step: -lr * g / (|g| + eps) elementwise."""
  batch = random_batch(jax.random.key(11))
  new, _ = jax.jit(td3.update, static_argnames='cfg')(state, batch, cfg=CFG)
  _, noise_key = jax.random.split(state.key)
  y = td3.td_target(state.target_actor_params, state.target_critic_params, batch, noise_key, CFG)
  grads = jax.grad(lambda p: td3.critic_loss(p, y, batch, CFG)[0])(state.critic_params)
  expected = jax.tree.map(lambda p, g: p - 3e-4 * g / (jnp.abs(g) + 1e-8), state.critic_params, grads)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), new.critic_params, expected)


def run_updates(seed, n=12):
  s = td3.init(jax.random.key(seed), CFG)
  update = jax.jit(td3.update, static_argnames='cfg')
  for i in range(n):
    s, _ = update(s, random_batch(jax.random.key(100 + i)), cfg=CFG)
  return s


def test_same_seed_gives_bit_identical_params():
  a, b, c = run_updates(0), run_updates(0), run_updates(1)
  assert tree_equal(a, b)
  assert not tree_equal(a.actor_params, c.actor_params)


def test_vmapped_learners_equal_learners_updated_one_by_one():
  k = 3
  states = td3.init_many(jax.random.key(0), k, CFG)
  batches = jax.vmap(random_batch)(jax.random.split(jax.random.key(1), k))
  masks = jnp.asarray(padding.action_masks([2, 1, 2], 2))
  many = jax.jit(td3.update_many, static_argnames='cfg')
  one = jax.jit(td3.update, static_argnames='cfg')
  for _ in range(3):
    states_next, _ = many(states, batches, cfg=CFG, action_masks=masks)
    for i in range(k):
      single, _ = one(jax.tree.map(lambda x: x[i], states), jax.tree.map(lambda x: x[i], batches), cfg=CFG,
                      action_mask=masks[i])
      jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x)[i], _plain(y), rtol=1e-5, atol=1e-6),
                   states_next, single)
    states = states_next
  # Learners are independent: different init keys give different actors.
  assert not np.allclose(states.actor_params['MLP_0']['Dense_0']['kernel'][0],
                         states.actor_params['MLP_0']['Dense_0']['kernel'][1])


def test_masked_learner_never_acts_on_padded_entries():
  state = td3.init(jax.random.key(0), CFG)
  mask = padding.action_mask(1, 2)
  obs = random_batch(jax.random.key(1)).obs
  a = td3.exploration_action(state.actor_params, obs, jax.random.key(2), CFG, mask)
  assert np.all(np.asarray(a)[:, 1] == 0) and np.all(np.abs(np.asarray(a)[:, 0]) > 0)
  assert np.all(np.abs(np.asarray(a)) <= 1)


def test_donated_state_has_no_aliased_buffers():
  state = td3.init(jax.random.key(0), CFG)
  update = jax.jit(td3.update, static_argnames='cfg', donate_argnums=0)
  new, _ = update(state, random_batch(jax.random.key(1)), cfg=CFG)   # fails if targets alias online params
  assert int(new.step) == 1


def test_config_validation():
  with pytest.raises(ValueError, match='policy_delay'):
    td3.TD3Config(obs_size=1, act_size=1, policy_delay=0)
  assert td3.TD3Config(obs_size=1, act_size=1, hidden_sizes=[4, 4]).hidden_sizes == (4, 4)


def test_compiled_init_is_the_plain_init_and_runs_as_written_under_a_traced_config():
  """td3.init is compiled once per config (networks.compiled_init): the same bits as the function run as written;
  a config holding a traced hyperparameter (a sweep's vmapped learning rate) runs it as written, inside the trace."""
  key = jax.random.key(4)
  assert tree_equal(td3.init(key, CFG), td3.init.__wrapped__(key, CFG))
  lrs = jnp.asarray([1e-3, 3e-4])
  states = jax.vmap(lambda lr: td3.init(key, sweep._replace_unchecked(CFG, actor_lr=lr)))(lrs)
  assert all(tree_equal(jax.tree.map(lambda x, m=m: np.asarray(_plain(x))[m], states), td3.init(key, CFG))
             for m in range(2))
