"""A2C-MT: n-step returns, masked Gaussian, distillation and the K-task loss against numpy; chunk determinism."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import td3
from ktm.envs import make_suite
from ktm.methods import a2c, base
from tests import numpy_ref

GAMMA = 0.9


def numpy_returns(reward, terminated, done, next_value, gamma):
  """Forward-view n-step returns: sum rewards from t up to the episode's end or the rollout's last step m, then
  bootstrap gamma^(m-t+1) V(s'_m) unless step m terminated. Arrays [T, E]."""
  T, E = reward.shape
  out = np.zeros((T, E))
  for e in range(E):
    for t in range(T):
      total, discount, m = 0.0, 1.0, t
      while True:
        total += discount * reward[m, e]
        discount *= gamma
        if done[m, e] or m == T - 1:
          break
        m += 1
      out[t, e] = total + discount * (1.0 - terminated[m, e]) * next_value[m, e]
  return out


def test_nstep_returns_truncation_vs_termination():
  rng = np.random.default_rng(0)
  T, E = 7, 4
  reward = rng.normal(size=(T, E))
  next_value = rng.normal(size=(T, E)) * 5
  terminated = np.zeros((T, E))
  truncated = np.zeros((T, E))
  terminated[2, 0] = 1                 # env 0 terminates mid-rollout
  truncated[3, 1] = 1                  # env 1 is truncated (time limit) mid-rollout
  terminated[T - 1, 2] = 1             # env 2 terminates on the last step
  terminated[1, 3] = 1; truncated[4, 3] = 1   # env 3: both, in two episodes
  done = np.maximum(terminated, truncated)
  got = np.asarray(a2c.nstep_returns(jnp.asarray(reward, jnp.float32), jnp.asarray(terminated, jnp.float32),
                                     jnp.asarray(done, jnp.float32), jnp.asarray(next_value, jnp.float32), GAMMA))
  np.testing.assert_allclose(got, numpy_returns(reward, terminated, done, next_value, GAMMA), rtol=1e-5, atol=1e-5)
  # By hand: a terminated step's return is its reward; a truncated step's bootstraps from V(s'_t).
  assert got[2, 0] == pytest.approx(reward[2, 0], abs=1e-6)
  assert got[3, 1] == pytest.approx(reward[3, 1] + GAMMA * next_value[3, 1], rel=1e-5)
  assert got[T - 1, 2] == pytest.approx(reward[T - 1, 2], abs=1e-6)
  assert got[T - 1, 0] == pytest.approx(reward[T - 1, 0] + GAMMA * next_value[T - 1, 0], rel=1e-5)
  # Nothing leaks across an episode boundary: changing rewards/values after env 0's end changes nothing before it.
  reward2, value2 = reward.copy(), next_value.copy()
  reward2[3:, 0] += 100.0
  value2[3:, 0] -= 100.0
  got2 = np.asarray(a2c.nstep_returns(jnp.asarray(reward2, jnp.float32), jnp.asarray(terminated, jnp.float32),
                                      jnp.asarray(done, jnp.float32), jnp.asarray(value2, jnp.float32), GAMMA))
  np.testing.assert_array_equal(got2[:3, 0], got[:3, 0])
  assert np.all(got2[3:, 0] != got[3:, 0])


def test_gaussian_log_prob_and_entropy_mask_padded_dims():
  rng = np.random.default_rng(1)
  mean = rng.normal(size=(5, 3))
  action = rng.normal(size=(5, 3))
  log_std = np.array([-0.3, 0.2, 0.7])
  mask = np.array([1.0, 1.0, 0.0])
  std = np.exp(log_std[:2])
  expected = np.sum(-0.5 * ((action[:, :2] - mean[:, :2]) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi),
                    axis=-1)
  got = a2c.gaussian_log_prob(jnp.asarray(action), jnp.asarray(mean), jnp.asarray(log_std), jnp.asarray(mask))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  entropy = a2c.gaussian_entropy(jnp.asarray(log_std), jnp.asarray(mask))
  assert float(entropy) == pytest.approx(np.sum(0.5 * np.log(2 * np.pi * np.e * std ** 2)), rel=1e-5)
  # The padded dim contributes nothing, whatever its values.
  action2, mean2, log_std2 = action.copy(), mean.copy(), log_std.copy()
  action2[:, 2] += 3.0; mean2[:, 2] -= 1.0; log_std2[2] = 5.0
  np.testing.assert_array_equal(
      a2c.gaussian_log_prob(jnp.asarray(action2), jnp.asarray(mean2), jnp.asarray(log_std2), jnp.asarray(mask)),
      got)
  assert float(a2c.gaussian_entropy(jnp.asarray(log_std2), jnp.asarray(mask))) == float(entropy)


def test_distill_loss_matches_numpy():
  rng = np.random.default_rng(2)
  mean, teacher = rng.uniform(-1, 1, size=(2, 6, 3))
  mask = np.array([1.0, 0.0, 0.0])
  got = a2c.distill_loss(jnp.asarray(mean), jnp.asarray(teacher), jnp.asarray(mask))
  assert float(got) == pytest.approx(np.mean((mean[:, 0] - teacher[:, 0]) ** 2), rel=1e-5)


# ---- the K-task loss on tiny networks, K = 2 tasks of different sizes ----

TASKS = base.TaskInfo(('small', 'large'), obs_dims=(3, 5), act_dims=(1, 2))
CFG = a2c.A2CConfig(obs_size=5, act_size=2, hidden_sizes=(8, 8), gamma=GAMMA, entropy_coef=0.01,
                    distill_coef=0.7, log_std_init=-0.4, n_steps=4)
TEACHER_CFG = td3.TD3Config(obs_size=5, act_size=2, hidden_sizes=(6,))
MASKS = np.asarray(TASKS.action_masks)
# Compiled once per config: run eagerly, every operation of an update would compile a program of its own.
update = jax.jit(a2c.update, static_argnames=('cfg', 'teacher_cfg'))


def np_tree(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


@functools.partial(jax.jit, static_argnames=('T', 'E'))
def synthetic_rollout(key, T=4, E=3):
  """[K, T, E, ...] with zero-padded obs (task dims 3 and 5), masked actions, and some episode ends."""
  ks = jax.random.split(key, 4)
  obs_mask = (np.arange(5)[None, :] < np.array([[3], [5]])).astype(np.float32)[:, None, None, :]
  done = np.zeros((2, T, E), np.float32)
  terminated = np.zeros((2, T, E), np.float32)
  terminated[0, 1, 0] = done[0, 1, 0] = 1.0
  done[1, 2, 1] = 1.0                       # truncated
  return a2c.Rollout(obs=jax.random.normal(ks[0], (2, T, E, 5)) * obs_mask,
                     action=jax.random.normal(ks[1], (2, T, E, 2)) * MASKS[:, None, None, :],
                     reward=jax.random.normal(ks[2], (2, T, E)),
                     terminated=jnp.asarray(terminated), done=jnp.asarray(done),
                     next_obs=jax.random.normal(ks[3], (2, T, E, 5)) * obs_mask)


def test_update_losses_match_numpy_for_two_tasks_of_different_sizes():
  state = a2c.init(jax.random.key(0), CFG)
  teachers = td3.init_many(jax.random.key(1), 2, TEACHER_CFG).actor_params
  rollout = synthetic_rollout(jax.random.key(2))
  new, metrics = update(state, rollout, teachers, CFG, TEACHER_CFG, jnp.asarray(MASKS))
  p = np_tree(state.params)
  std = np.exp(p['log_std'])
  for k in range(2):
    r = jax.tree.map(lambda x: np.asarray(x, np.float64)[k], rollout)
    m = MASKS[k]
    v = numpy_ref.mlp(p['value'], r.obs)[..., 0]
    next_v = numpy_ref.mlp(p['value'], r.next_obs)[..., 0]
    returns = numpy_returns(r.reward, r.terminated, r.done, next_v, GAMMA)
    mean = numpy_ref.actor(p['actor'], r.obs)
    log_prob = np.sum((-0.5 * ((r.action - mean) / std) ** 2 - p['log_std'] - 0.5 * np.log(2 * np.pi)) * m, -1)
    teacher = numpy_ref.actor(np_tree(jax.tree.map(lambda x: x[k], teachers)), r.obs) * m
    expected = {
        'policy_loss': -np.mean(log_prob * (returns - v)),
        'value_loss': np.mean((returns - v) ** 2),
        'entropy': np.sum((0.5 * np.log(2 * np.pi * np.e) + p['log_std']) * m),
        'distill_loss': np.mean(np.sum((mean - teacher) ** 2 * m, -1)),
    }
    expected['loss'] = (expected['policy_loss'] + 0.5 * expected['value_loss'] - 0.01 * expected['entropy']
                        + 0.7 * expected['distill_loss'])
    for name, want in expected.items():
      assert float(metrics[name][k]) == pytest.approx(want, rel=1e-4, abs=1e-6), (name, k)
  assert int(new.step) == 1
  assert not np.allclose(np.asarray(new.params['log_std']), np.asarray(state.params['log_std']))


def test_advantage_carries_no_gradient_into_the_value_network():
  state = a2c.init(jax.random.key(0), CFG)
  rollout = jax.tree.map(lambda x: x[1], synthetic_rollout(jax.random.key(3)))
  returns = jnp.ones(rollout.reward.shape)
  cfg = a2c.A2CConfig(obs_size=5, act_size=2, hidden_sizes=(8, 8), value_coef=0.0, entropy_coef=0.0,
                      distill_coef=0.0)
  grads = jax.grad(lambda p: a2c.task_loss(p, rollout, returns, jnp.zeros((4, 3, 2)), jnp.ones(2), cfg)[0])(
      state.params)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads['value']))
  assert any(float(jnp.abs(g).max()) > 0.0 for g in jax.tree.leaves(grads['actor']))


# ---- the on-policy chunk on pendulum_group ----

def _plain(x):
  return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


@pytest.fixture(scope='module')
def pendulum():
  suite = make_suite('pendulum_group', num_envs=2, episode_length=6)   # short episodes: truncations happen
  tasks = base.TaskInfo.from_suite(suite)
  cfg = a2c.A2CConfig(obs_size=suite.obs_size, act_size=suite.act_size, hidden_sizes=(8,), n_steps=4)
  teacher_cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, hidden_sizes=(8,))
  method = a2c.A2CMethod(tasks, cfg, teacher_cfg, a2c.A2CSchedule(epochs=6, chunk=3))
  return suite, method


def run_chunks(suite, method, seed):
  chunk = jax.jit(method.onpolicy_chunk, static_argnums=(3, 5))
  aux = td3.init_many(jax.random.key(99), suite.num_tasks, method.teacher_cfg).actor_params
  learner, env = method.init(jax.random.key(seed)), suite.reset(jax.random.key(seed + 1))
  out = []
  for i in range(2):
    learner, env, metrics = chunk(learner, env, jax.random.key(10 * seed + i), suite, aux, 3)
    out.append(metrics)
  return jax.tree.map(lambda x: np.asarray(_plain(x)), (learner, env, out))


def test_onpolicy_chunk_is_deterministic(pendulum):
  suite, method = pendulum
  assert method.stages()[0].kind == 'onpolicy' and method.replay_capacity == 0
  a, b, c = run_chunks(suite, method, 0), run_chunks(suite, method, 0), run_chunks(suite, method, 1)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a[0].params['log_std'], c[0].params['log_std'])
  metrics = a[2][-1]
  for name in ('policy_loss', 'value_loss', 'entropy', 'distill_loss', 'train_return'):
    assert metrics[name].shape == (suite.num_tasks,), name
  # 24 steps of episodes at most 6 long: every task finished episodes, with returns of at most 6 (reward 1/step).
  assert np.all(np.isfinite(metrics['train_return'])) and np.all(metrics['train_return'] <= 6.0)
  assert int(a[0].step) == 6


def test_act_masks_padded_entries(pendulum):
  suite, method = pendulum
  learner = method.init(jax.random.key(0))
  obs = jax.random.normal(jax.random.key(1), (suite.num_tasks, 3, suite.obs_size))
  for explore in (True, False):
    a = np.asarray(method.act(learner, obs, jax.random.key(2), explore))
    assert np.all(np.abs(a) <= 1.0)
    np.testing.assert_array_equal(a * (1 - suite.action_masks[:, None, :]), 0.0)


def test_without_teachers_only_with_distill_coef_zero():
  state = a2c.init(jax.random.key(0), CFG)
  rollout = synthetic_rollout(jax.random.key(2))
  with pytest.raises(ValueError, match='distill_coef'):
    update(state, rollout, None, CFG, TEACHER_CFG, jnp.asarray(MASKS))
  cfg = a2c.A2CConfig(obs_size=5, act_size=2, hidden_sizes=(8, 8), gamma=GAMMA, distill_coef=0.0)
  teachers = td3.init_many(jax.random.key(1), 2, TEACHER_CFG).actor_params
  plain, m_plain = update(state, rollout, None, cfg, TEACHER_CFG, jnp.asarray(MASKS))
  with_t, m_t = update(state, rollout, teachers, cfg, TEACHER_CFG, jnp.asarray(MASKS))
  np.testing.assert_array_equal(m_plain['distill_loss'], 0.0)
  assert np.all(np.asarray(m_t['distill_loss']) > 0)     # measured, but weighted by 0
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), plain.params, with_t.params)


def test_config_validation():
  with pytest.raises(ValueError, match='n_steps'):
    a2c.A2CConfig(obs_size=3, act_size=1, n_steps=0)
  with pytest.raises(ValueError, match='padded sizes'):
    a2c.A2CMethod(TASKS, a2c.A2CConfig(obs_size=3, act_size=2), TEACHER_CFG)
