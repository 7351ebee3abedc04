"""Acting in a suite inside compiled code: collect transitions for replay, and evaluate deterministic policies.

A policy here is `policy_fn(params, obs [K, E, obs_size], key) -> actions [K, E, act_size]`, so the same code
serves K separate teachers (a vmapped actor) and one multi-task student (one actor over all K tasks).
"""

from typing import Any, Callable, Tuple

import flax
import jax
import jax.numpy as jnp

from ktm.envs import EnvState, Suite
from ktm.replay import Transition

PolicyFn = Callable[[Any, jnp.ndarray, jax.Array], jnp.ndarray]


@flax.struct.dataclass
class EpisodeStats:
  """Returns of training episodes that ended during a collection: per task [K]."""
  return_sum: jnp.ndarray
  count: jnp.ndarray

  def mean(self) -> jnp.ndarray:
    """Mean return per task [K] (NaN where no episode ended)."""
    return jnp.where(self.count > 0, self.return_sum / jnp.maximum(self.count, 1), jnp.nan)


def uniform_actions(key: jax.Array, suite: Suite) -> jnp.ndarray:
  """Uniform-random actions in [-1, 1], padded entries zero: [K, E, act_size]."""
  shape = (suite.num_tasks, suite.num_envs, suite.act_size)
  return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0) * suite.action_masks[:, None, :]


def collect(policy_fn: PolicyFn, params: Any, env_state: EnvState, key: jax.Array, first_step: jnp.ndarray,
            suite: Suite, num_steps: int, random_steps: int = 0) -> Tuple[EnvState, Transition, EpisodeStats]:
  """`num_steps` env steps of all K x E envs with a fixed policy; while the global step (`first_step` + i) is below
  `random_steps`, actions are uniform-random instead. Returns transitions with fields [K, num_steps * E, ...]."""

  def body(env_state, inputs):
    step, step_key = inputs
    policy_key, random_key = jax.random.split(step_key)
    action = jax.lax.cond(step < random_steps, lambda: uniform_actions(random_key, suite),
                          lambda: policy_fn(params, env_state.obs, policy_key))
    action = action * suite.action_masks[:, None, :]
    next_env_state, out = suite.step(env_state, action)
    row = Transition(obs=env_state.obs, action=action, reward=out.reward, next_obs=out.next_obs,
                     terminated=out.terminated.astype(jnp.float32))
    return next_env_state, (row, out.episode_return, out.done)

  steps = first_step + jnp.arange(num_steps)
  env_state, (rows, returns, done) = jax.lax.scan(body, env_state, (steps, jax.random.split(key, num_steps)))
  # [T, K, E, ...] -> [K, T * E, ...], time-major within each task.
  rows = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape((x.shape[1], -1) + x.shape[3:]), rows)
  stats = EpisodeStats(return_sum=jnp.sum(returns, axis=(0, 2)), count=jnp.sum(done, axis=(0, 2)))
  return env_state, rows, stats


def evaluate_episodes(policy_fn: PolicyFn, params: Any, key: jax.Array, suite: Suite
                      ) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """ONE episode in each of the suite's K x E envs (E = episodes per task): (returns [K, E], success [K, E]).

  Runs up to `suite.episode_length` steps, with step t's policy key the t-th of split(key, episode_length); an env's
  episode ends at its first `done`, and the loop stops once every env's has ended (a `lax.while_loop`: an untrained
  pendulum falls within tens of steps, so its evaluation no longer pays for 1000 steps of physics; the returns are
  the same as running all `episode_length` steps). success (the Meta-World protocol): 1.0 where the env reported
  info['success'] at any step of the episode, 0.0 where it reported only failures, NaN where it reported nothing
  (StepOutput.success).
  """
  def body(carry):
    t, env_state, total, alive, success, reported = carry
    env_state, out = suite.step(env_state, policy_fn(params, env_state.obs, step_keys[t]))
    total = total + jnp.where(alive, out.reward, 0.0)
    success = success | (alive & (out.success == 1.0))
    reported = reported | (alive & jnp.isfinite(out.success))
    return t + 1, env_state, total, alive & ~out.done, success, reported

  def running(carry):
    t, _, _, alive, _, _ = carry
    return (t < suite.episode_length) & jnp.any(alive)

  reset_key, key = jax.random.split(key)
  step_keys = jax.random.split(key, suite.episode_length)
  env_state = suite.reset(reset_key)
  shape = (suite.num_tasks, suite.num_envs)
  no = jnp.zeros(shape, bool)
  init = (jnp.zeros((), jnp.int32), env_state, jnp.zeros(shape), jnp.ones(shape, bool), no, no)
  _, _, total, _, success, reported = jax.lax.while_loop(running, body, init)
  return total, jnp.where(reported, success.astype(jnp.float32), jnp.nan)


def evaluate(policy_fn: PolicyFn, params: Any, key: jax.Array, suite: Suite) -> jnp.ndarray:
  """Returns [K, E] of `evaluate_episodes` (one episode per env)."""
  return evaluate_episodes(policy_fn, params, key, suite)[0]
