"""Gymnasium v5 observation, reward and termination for the six MuJoCo tasks, in JAX.

Shared by both physics backends: every function takes `Readout`s whose leaves have any
leading batch shape ([..., nq] etc.) and the applied control ctrl [..., nu] (the action
already scaled to the actuator ctrlrange, i.e. what gymnasium calls `action`).
Definitions follow site-packages/gymnasium/envs/mujoco/*_v5.py with default arguments.
"""

import dataclasses
from typing import Callable

import jax.numpy as jnp

from ktm.envs.types import Readout

ObsFn = Callable[[Readout], jnp.ndarray]
# (previous readout, current readout, ctrl [..., nu], dt) -> (reward [...], terminated [...])
TransitionFn = Callable[[Readout, Readout, jnp.ndarray, float], tuple[jnp.ndarray, jnp.ndarray]]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """Static description of one gymnasium v5 task family (shared by its morphology variants).

  extras: MjData fields the task needs besides qpos/qvel, as (field, index) with index an
    int row or None for the whole field; both backends read them after the last substep
    (after mj_rnePostConstraint when `rne_post`), exactly where gymnasium reads them.
  qvel_noise: 'uniform' (U(-s, s)) or 'normal' (s * N(0, 1)) reset noise on qvel;
    qpos always gets U(-s, s) with s = reset_noise_scale.
  """
  name: str
  xml: str
  frame_skip: int
  obs_dim: int
  obs_fn: ObsFn
  transition_fn: TransitionFn
  reset_noise_scale: float
  qvel_noise: str
  extras: tuple[tuple[str, int | None], ...] = ()
  rne_post: bool = False


def _ctrl_cost(ctrl, weight):
  return weight * jnp.sum(jnp.square(ctrl), axis=-1)


def _state_vector(ro: Readout) -> jnp.ndarray:
  return jnp.concatenate([ro.qpos, ro.qvel], axis=-1)


# ---- HalfCheetah-v5

def half_cheetah_obs(ro: Readout) -> jnp.ndarray:
  """[..., 17]: qpos[1:], qvel."""
  return jnp.concatenate([ro.qpos[..., 1:], ro.qvel], axis=-1)


def half_cheetah_transition(prev, cur, ctrl, dt):
  x_velocity = (cur.qpos[..., 0] - prev.qpos[..., 0]) / dt
  reward = 1.0 * x_velocity - _ctrl_cost(ctrl, 0.1)
  return reward, jnp.zeros_like(reward, dtype=bool)


# ---- Ant-v5 (include_cfrc_ext_in_observation=False). extra = [torso xpos (3), cfrc_ext (nbody*6)]

def ant_obs(ro: Readout) -> jnp.ndarray:
  """[..., 27]: qpos[2:], qvel."""
  return jnp.concatenate([ro.qpos[..., 2:], ro.qvel], axis=-1)


def ant_transition(prev, cur, ctrl, dt):
  # gymnasium differences body(1).xpos, which MuJoCo leaves at the last RK4 stage of the last
  # substep (not qpos): hence xpos comes from the backend, not from qpos.
  x_velocity = (cur.extra[..., 0] - prev.extra[..., 0]) / dt
  z = cur.qpos[..., 2]
  healthy = jnp.all(jnp.isfinite(_state_vector(cur)), axis=-1) & (z >= 0.2) & (z <= 1.0)
  cfrc_ext = cur.extra[..., 3:]
  contact_cost = 5e-4 * jnp.sum(jnp.square(jnp.clip(cfrc_ext, -1.0, 1.0)), axis=-1)
  reward = x_velocity + healthy.astype(x_velocity.dtype) - _ctrl_cost(ctrl, 0.5) - contact_cost
  return reward, ~healthy


# ---- Hopper-v5 / Walker2d-v5

def planar_walker_obs(ro: Readout) -> jnp.ndarray:
  """Hopper [..., 11] / Walker2d [..., 17]: qpos[1:], clip(qvel, -10, 10)."""
  return jnp.concatenate([ro.qpos[..., 1:], jnp.clip(ro.qvel, -10.0, 10.0)], axis=-1)


def _planar_walker_transition(prev, cur, ctrl, dt, healthy):
  x_velocity = (cur.qpos[..., 0] - prev.qpos[..., 0]) / dt
  reward = x_velocity + healthy.astype(x_velocity.dtype) - _ctrl_cost(ctrl, 1e-3)
  return reward, ~healthy


def hopper_transition(prev, cur, ctrl, dt):
  z, angle = cur.qpos[..., 1], cur.qpos[..., 2]
  state = _state_vector(cur)[..., 2:]
  healthy = (jnp.all((state > -100.0) & (state < 100.0), axis=-1)
             & (z > 0.7) & (angle > -0.2) & (angle < 0.2))
  return _planar_walker_transition(prev, cur, ctrl, dt, healthy)


def walker2d_transition(prev, cur, ctrl, dt):
  z, angle = cur.qpos[..., 1], cur.qpos[..., 2]
  healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
  return _planar_walker_transition(prev, cur, ctrl, dt, healthy)


# ---- InvertedPendulum-v5

def inverted_pendulum_obs(ro: Readout) -> jnp.ndarray:
  """[..., 4]: qpos, qvel."""
  return jnp.concatenate([ro.qpos, ro.qvel], axis=-1)


def inverted_pendulum_transition(prev, cur, ctrl, dt):
  obs = inverted_pendulum_obs(cur)
  terminated = ~jnp.all(jnp.isfinite(obs), axis=-1) | (jnp.abs(obs[..., 1]) > 0.2)
  return (~terminated).astype(obs.dtype), terminated


# ---- InvertedDoublePendulum-v5. extra = [site_xpos[0] (3), qfrc_constraint (nv)]

def inverted_double_pendulum_obs(ro: Readout) -> jnp.ndarray:
  """[..., 9]: cart x, sin/cos of the two link angles, clip(qvel), clip(qfrc_constraint[0])."""
  qfrc_constraint0 = ro.extra[..., 3:4]
  return jnp.concatenate([
      ro.qpos[..., :1], jnp.sin(ro.qpos[..., 1:]), jnp.cos(ro.qpos[..., 1:]),
      jnp.clip(ro.qvel, -10.0, 10.0), jnp.clip(qfrc_constraint0, -10.0, 10.0)], axis=-1)


def inverted_double_pendulum_transition(prev, cur, ctrl, dt):
  x, y = cur.extra[..., 0], cur.extra[..., 2]
  terminated = y <= 1.0
  v1, v2 = cur.qvel[..., 1], cur.qvel[..., 2]
  dist_penalty = 0.01 * x**2 + (y - 2.0) ** 2
  vel_penalty = 1e-3 * v1**2 + 5e-3 * v2**2
  alive_bonus = 10.0 * (~terminated).astype(x.dtype)
  return alive_bonus - dist_penalty - vel_penalty, terminated


TASKS: dict[str, TaskSpec] = {
    'HalfCheetah': TaskSpec('HalfCheetah', 'half_cheetah.xml', 5, 17, half_cheetah_obs,
                            half_cheetah_transition, 0.1, 'normal'),
    'Ant': TaskSpec('Ant', 'ant.xml', 5, 27, ant_obs, ant_transition, 0.1, 'normal',
                    extras=(('xpos', 1), ('cfrc_ext', None)), rne_post=True),
    'Hopper': TaskSpec('Hopper', 'hopper.xml', 4, 11, planar_walker_obs, hopper_transition,
                       5e-3, 'uniform'),
    'Walker2d': TaskSpec('Walker2d', 'walker2d_v5.xml', 4, 17, planar_walker_obs,
                         walker2d_transition, 5e-3, 'uniform'),
    'InvertedPendulum': TaskSpec('InvertedPendulum', 'inverted_pendulum.xml', 2, 4,
                                 inverted_pendulum_obs, inverted_pendulum_transition, 0.01,
                                 'uniform'),
    'InvertedDoublePendulum': TaskSpec(
        'InvertedDoublePendulum', 'inverted_double_pendulum.xml', 5, 9,
        inverted_double_pendulum_obs, inverted_double_pendulum_transition, 0.1, 'normal',
        extras=(('site_xpos', 0), ('qfrc_constraint', None))),
}


def _same_definition(a: TaskSpec, b: TaskSpec) -> bool:
  """Equal fields, functions compared by qualified name (a user module may be imported twice, e.g. as __main__)."""
  key = lambda s: dataclasses.replace(s, obs_fn=None, transition_fn=None)
  return (key(a) == key(b) and a.obs_fn.__qualname__ == b.obs_fn.__qualname__
          and a.transition_fn.__qualname__ == b.transition_fn.__qualname__)


def register(spec: TaskSpec) -> None:
  """Adds a (validated, see ktm.envs.custom) task to TASKS; a name taken by a different task raises ValueError."""
  old = TASKS.get(spec.name)
  if old is not None and not _same_definition(old, spec):
    raise ValueError(f'a different task named {spec.name!r} is already registered')
  TASKS[spec.name] = spec
