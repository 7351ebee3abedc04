"""Types shared by the multi-task suites, their physics backends and the user definitions (ktm/envs/custom.py)."""

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Readout:
  """What a physics backend reports after a step or reset, per env.

  qpos [..., nq], qvel [..., nv] and `extra` [..., n_extra]: the task's extra MjData
  quantities (e.g. Ant's torso xpos and cfrc_ext), flattened in `TaskSpec.extras` order.
  """
  qpos: jnp.ndarray
  qvel: jnp.ndarray
  extra: jnp.ndarray


@flax.struct.dataclass
class PhysicsState:
  """Backend physics state plus the last readout, one entry per task group.

  backend: tuple over groups of the backend's own pytree ([G, E, ...] leaves).
  readout: tuple over groups of `Readout` [G, E, ...] for the current state (what rewards
    such as forward velocity difference against).
  """
  backend: tuple[Any, ...]
  readout: tuple[Readout, ...]


@flax.struct.dataclass
class EnvState:
  """State of all K tasks x E envs.

  physics: PhysicsState. obs [K, E, obs_size] (zero-padded, to act on next, i.e. after
  auto-reset); step_count [K, E] int32; episode_return [K, E]; key: PRNG key for resets.
  """
  physics: PhysicsState
  obs: jnp.ndarray
  step_count: jnp.ndarray
  episode_return: jnp.ndarray
  key: jax.Array


@flax.struct.dataclass
class StepOutput:
  """One transition of all K tasks x E envs.

  next_obs [K, E, obs_size]: true next observation BEFORE auto-reset (goes to replay).
  reward, terminated (no bootstrap), truncated (time limit), done = terminated | truncated,
  episode_return (return of an episode that ended this step, else 0): all [K, E].
  success [K, E]: the env's info['success'] this step as 1.0 / 0.0, NaN where the env does not report it (the
  MuJoCo suites never do; gymnasium envs such as Meta-World's may).
  """
  next_obs: jnp.ndarray
  reward: jnp.ndarray
  terminated: jnp.ndarray
  truncated: jnp.ndarray
  done: jnp.ndarray
  episode_return: jnp.ndarray
  success: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class Group:
  """Tasks sharing one kinematic tree (stepped together): a base task and/or its registered variants."""
  base: str
  names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SuiteDef:
  """A registered suite: `make_suite(suite_def)` or `make_suite('module:ATTR')` builds it."""
  name: str
  groups: tuple[tuple[str, ...], ...]

  @property
  def task_names(self) -> tuple[str, ...]:
    return tuple(n for g in self.groups for n in g)
