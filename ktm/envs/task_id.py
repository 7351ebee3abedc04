"""The task-identity input (optional, off by default: the paper's student has no task id).

`make_suite('NAME+task_id')` wraps suite NAME so that every observation ends with a one-hot of its task:
obs [K, E, obs_size + K] = [padded obs of task k | e_k]. Every method's networks get it with no change (their
input size is the suite's obs_size). Teachers trained on such a suite see it too (to a per-task teacher it is a
constant input); teachers trained without it have another obs_size and are refused with their mismatch named.
Without it, tasks with equal observation sizes (MT10's 39/4, Benchmark B's HalfCheetah and Walker2d 17/6) reach the
student as unlabelled inputs that only their state distributions tell apart.
"""

import jax.numpy as jnp

from ktm.envs.types import EnvState, StepOutput

SUFFIX = '+task_id'


def with_task_id(obs: jnp.ndarray) -> jnp.ndarray:
  """obs [K, E, n] -> [K, E, n + K]: task k's rows end with the one-hot e_k."""
  num_tasks = obs.shape[-3]
  one_hot = jnp.broadcast_to(jnp.eye(num_tasks, dtype=obs.dtype)[:, None, :], obs.shape[:-1] + (num_tasks,))
  return jnp.concatenate([obs, one_hot], axis=-1)


class TaskIdSuite:
  """A suite whose observations end with the task's one-hot; everything else is the wrapped suite's."""

  def __init__(self, suite):
    self.inner = suite
    self.obs_size = suite.obs_size + suite.num_tasks
    self.obs_dims = (self.obs_size,) * suite.num_tasks   # no zero padding at the end of any task's input

  def __getattr__(self, name):
    return getattr(self.inner, name)

  def _wrap(self, state: EnvState) -> EnvState:
    return state.replace(obs=with_task_id(state.obs))

  def reset(self, key) -> EnvState:
    return self._wrap(self.inner.reset(key))

  def reset_to(self, *args) -> EnvState:
    return self._wrap(self.inner.reset_to(*args))

  def step(self, state: EnvState, actions: jnp.ndarray) -> tuple[EnvState, StepOutput]:
    """The wrapped suite's step on its own observations ([..., :obs_size - K]); next_obs and obs get the one-hot."""
    inner_state, out = self.inner.step(state.replace(obs=state.obs[..., :self.inner.obs_size]), actions)
    return self._wrap(inner_state), out.replace(next_obs=with_task_id(out.next_obs))
