"""The multi-task suite: K tasks x E envs behind pure, jittable reset/step.

A suite is a list of task groups; a group is G morphology variants of one task (one
kinematic tree, stepped together) and contributes G consecutive tasks to the K axis.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ktm import padding
from ktm.envs import tasks as tasks_lib
from ktm.envs.types import EnvState, PhysicsState, StepOutput


@dataclasses.dataclass(frozen=True)
class GroupInfo:
  """Static per-group data: task spec, variant names, and numpy constants for JAX code."""
  spec: tasks_lib.TaskSpec
  names: tuple[str, ...]
  dt: float
  qpos0: np.ndarray  # [G, nq]
  ctrl_lo: np.ndarray  # [G, nu]
  ctrl_hi: np.ndarray  # [G, nu]

  @property
  def size(self) -> int:
    return len(self.names)

  @property
  def act_dim(self) -> int:
    return self.ctrl_lo.shape[-1]


def _group_info(spec, names, mj_models) -> GroupInfo:
  m0 = mj_models[0]
  for m in mj_models:
    if m.nq != m0.nq or m.nv != m0.nv or m.nu != m0.nu or m.nbody != m0.nbody:
      raise ValueError('variants of a group must share one kinematic tree')
  return GroupInfo(spec, tuple(names), m0.opt.timestep * spec.frame_skip,
                   np.stack([m.qpos0 for m in mj_models]),
                   np.stack([m.actuator_ctrlrange[:, 0] for m in mj_models]),
                   np.stack([m.actuator_ctrlrange[:, 1] for m in mj_models]))


def scale_action(action, lo, hi):
  """Maps actions in [-1, 1] ([..., nu]) affinely onto [lo, hi] (after clipping)."""
  action = jnp.clip(action, -1.0, 1.0)
  return lo + (action + 1.0) * 0.5 * (hi - lo)


def sample_reset(key, info: GroupInfo, shape):
  """gymnasium's reset noise: qpos0 + U(-s, s), qvel ~ U(-s, s) or s*N(0, 1); [G, E, ...]."""
  spec = info.spec
  s = spec.reset_noise_scale
  nq, nv = info.qpos0.shape[-1], shape[-1]
  kq, kv = jax.random.split(key)
  lead = shape[:-1]
  qpos = jnp.asarray(info.qpos0, jnp.float32)[:, None] + jax.random.uniform(
      kq, lead + (nq,), minval=-s, maxval=s)
  if spec.qvel_noise == 'uniform':
    qvel = jax.random.uniform(kv, shape, minval=-s, maxval=s)
  else:
    qvel = s * jax.random.normal(kv, shape)
  return qpos, qvel


class Suite:
  """K tasks x E envs with pure `reset(key)` / `step(state, actions)`; see make_suite."""

  def __init__(self, groups: list[GroupInfo], backend, backend_name: str, num_envs: int,
               episode_length: int, nvs: list[int]):
    self.groups, self.backend, self.backend_name = groups, backend, backend_name
    self.num_envs, self.episode_length, self._nvs = num_envs, episode_length, nvs
    self.task_names = tuple(n for g in groups for n in g.names)
    self.obs_dims = tuple(g.spec.obs_dim for g in groups for _ in g.names)
    self.act_dims = tuple(g.act_dim for g in groups for _ in g.names)
    self.obs_size, self.act_size = max(self.obs_dims), max(self.act_dims)
    self.num_tasks = len(self.task_names)
    self.action_masks = padding.action_masks(self.act_dims, self.act_size)  # [K, act_size]

  def _offsets(self):
    return np.cumsum([0] + [g.size for g in self.groups])

  def _obs(self, readouts):
    return jnp.concatenate([padding.pad(g.spec.obs_fn(r), self.obs_size)
                            for g, r in zip(self.groups, readouts)], axis=0)

  def _reset_states(self, key):
    keys = jax.random.split(key, len(self.groups))
    out = [sample_reset(k, g, (g.size, self.num_envs, nv))
           for k, g, nv in zip(keys, self.groups, self._nvs)]
    return tuple(o[0] for o in out), tuple(o[1] for o in out)

  def reset(self, key: jax.Array) -> EnvState:
    """All K x E envs at gymnasium's noisy initial state."""
    key, sub = jax.random.split(key)
    return self.reset_to(key, *self._reset_states(sub))

  def reset_to(self, key: jax.Array, qposs, qvels) -> EnvState:
    """All envs at given states: qposs/qvels are tuples over groups of [G, E, nq] / [G, E, nv]."""
    phys, readouts = self.backend.init(tuple(qposs), tuple(qvels))
    shape = (self.num_tasks, self.num_envs)
    return EnvState(physics=PhysicsState(phys, readouts), obs=self._obs(readouts),
                    step_count=jnp.zeros(shape, jnp.int32),
                    episode_return=jnp.zeros(shape, jnp.float32), key=key)

  def _transition(self, state: EnvState, actions):
    """Physics step + rewards: (physics tuple, readouts, next_obs, reward, terminated)."""
    offs = self._offsets()
    ctrls = tuple(scale_action(padding.slice_action(actions[a:b], g.act_dim),
                               g.ctrl_lo[:, None], g.ctrl_hi[:, None])
                  for g, a, b in zip(self.groups, offs[:-1], offs[1:]))
    phys, readouts = self.backend.step(state.physics.backend, ctrls)
    rewards, terms = zip(*[g.spec.transition_fn(prev, cur, c, g.dt) for g, prev, cur, c in
                           zip(self.groups, state.physics.readout, readouts, ctrls)])
    return (phys, readouts, self._obs(readouts),
            jnp.concatenate(rewards).astype(jnp.float32), jnp.concatenate(terms))

  def _auto_reset(self, key, phys, readouts, done):
    """Restarts done envs; skips the backend call when nothing is done (outside vmap)."""
    qposs, qvels = self._reset_states(key)
    offs = self._offsets()
    masks = tuple(done[a:b] for a, b in zip(offs[:-1], offs[1:]))

    def do_reset(_):
      new_phys, new_ro = self.backend.reset(phys, masks, qposs, qvels)
      sel = lambda m, n, o: jax.tree.map(
          lambda x, y: jnp.where(m.reshape(m.shape + (1,) * (x.ndim - 2)), x, y), n, o)
      return new_phys, tuple(sel(m, n, o) for m, n, o in zip(masks, new_ro, readouts))

    return jax.lax.cond(jnp.any(done), do_reset, lambda _: (phys, readouts), None)

  def step(self, state: EnvState, actions: jnp.ndarray) -> tuple[EnvState, StepOutput]:
    """actions [K, E, act_size] in [-1, 1] (padded entries ignored) -> (state, StepOutput)."""
    phys, readouts, next_obs, reward, terminated = self._transition(state, actions)
    step_count = state.step_count + 1
    truncated = step_count >= self.episode_length
    done = terminated | truncated
    ep_return = state.episode_return + reward
    key, sub = jax.random.split(state.key)
    phys, readouts = self._auto_reset(sub, phys, readouts, done)
    obs = jnp.where(done[..., None], self._obs(readouts), next_obs)
    new_state = EnvState(physics=PhysicsState(phys, readouts), obs=obs,
                         step_count=jnp.where(done, 0, step_count),
                         episode_return=jnp.where(done, 0.0, ep_return), key=key)
    out = StepOutput(next_obs=next_obs, reward=reward, terminated=terminated,
                     truncated=truncated, done=done,
                     episode_return=jnp.where(done, ep_return, 0.0),
                     success=jnp.full(reward.shape, jnp.nan, jnp.float32))
    return new_state, out
