"""MJX physics backend: whole task groups stepped inside the caller's compiled program.

Variants of one kinematic tree are stacked leaf-wise into ONE batched mjx.Model (leaves that
differ get a leading [G] axis, equal ones stay shared) and stepped with a single vmap over
(G, E). Different trees (Benchmark B) are stepped one after another inside the same jit.

Physics is traced at full float32 matmul precision (`PHYSICS_MATMUL_PRECISION`) whatever the rest of the program
uses: on GPUs XLA's default float32 dot may run in TF32, which breaks MJX's accuracy (mujoco_playground issue 86).
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from ktm.envs.tasks import TaskSpec
from ktm.envs.types import Readout

PHYSICS_MATMUL_PRECISION = 'highest'


def _equal_leaves(leaves) -> bool:
  first = np.asarray(leaves[0])
  return all(np.array_equal(first, np.asarray(x)) for x in leaves[1:])


def _share_static_hfield_bounds(models: list) -> list:
  """Gives every model variant 0's static `geom_rbound_hfield` (pytree metadata in MJX).

  It only matters for height-field collisions, so it may differ (scaled geoms change it)
  only when no model has a height field.
  """
  if any(np.any(np.asarray(m.geom_type) == mujoco.mjtGeom.mjGEOM_HFIELD) for m in models):
    raise ValueError('stacking models with height fields is not supported')
  bound = models[0]._impl.geom_rbound_hfield
  return [m.replace(_impl=m._impl.replace(geom_rbound_hfield=bound)) for m in models]


def stack_models(models: list) -> tuple[mjx.Model, mjx.Model]:
  """Stacks G mjx.Models -> (batched model, in_axes tree with 0 for stacked leaves, else None)."""
  models = _share_static_hfield_bounds(models)
  def merge(*leaves):
    return leaves[0] if _equal_leaves(leaves) else jnp.stack([jnp.asarray(x) for x in leaves])

  def axis(*leaves):
    return None if _equal_leaves(leaves) else 0

  return jax.tree.map(merge, *models), jax.tree.map(axis, *models)


def _field(d: mjx.Data, name: str):
  # Fields such as cfrc_ext live on the JAX implementation (`d._impl`) in MJX 3.17.
  return getattr(d._impl, name) if hasattr(d._impl, name) else getattr(d, name)


def read_extras(spec: TaskSpec, d: mjx.Data) -> jnp.ndarray:
  """The task's extra quantities of one env, flattened [n_extra]."""
  parts = [jnp.ravel(_field(d, f) if i is None else _field(d, f)[i]) for f, i in spec.extras]
  return jnp.concatenate(parts) if parts else jnp.zeros((0,), d.qpos.dtype)


class MjxGroup:
  """G variants of one task x E envs on MJX; physics state is a batched mjx.Data [G, E]."""

  def __init__(self, spec: TaskSpec, models: list[mujoco.MjModel]):
    self.spec = spec
    self.model, self.model_axes = stack_models([mjx.put_model(m) for m in models])
    self.template = mjx.make_data(models[0])

  def _finish(self, model, d):
    if self.spec.rne_post:
      d = mjx.rne_postconstraint(model, d)
    return d, Readout(d.qpos, d.qvel, read_extras(self.spec, d))

  def _over_group(self, fn):
    """vmap fn(model, *per_env_args) over E (shared model) then over G (stacked model)."""
    return jax.vmap(jax.vmap(fn, in_axes=(None, 0)), in_axes=(self.model_axes, 0))

  def step(self, data, ctrl):
    """data: mjx.Data [G, E]; ctrl [G, E, nu] -> (data, Readout [G, E, ...])."""
    def one(model, args):
      d, u = args
      d = d.replace(ctrl=u)
      d = jax.lax.fori_loop(0, self.spec.frame_skip, lambda _, x: mjx.step(model, x), d)
      return self._finish(model, d)
    with jax.default_matmul_precision(PHYSICS_MATMUL_PRECISION):
      return self._over_group(one)(self.model, (data, ctrl))

  def fresh(self, qpos, qvel):
    """New mjx.Data [G, E] at (qpos, qvel), forward'ed -> (data, Readout)."""
    def one(model, args):
      q, v = args
      d = self.template.replace(qpos=q.astype(self.template.qpos.dtype),
                                qvel=v.astype(self.template.qvel.dtype))
      return self._finish(model, mjx.forward(model, d))
    with jax.default_matmul_precision(PHYSICS_MATMUL_PRECISION):
      return self._over_group(one)(self.model, (qpos, qvel))


class MjxBackend:
  """All task groups of a suite on MJX, with the same interface as NativeBackend."""

  def __init__(self, groups: list[MjxGroup]):
    self.groups = groups

  def step(self, datas, ctrls):
    out = [g.step(d, c) for g, d, c in zip(self.groups, datas, ctrls)]
    return tuple(o[0] for o in out), tuple(o[1] for o in out)

  def reset(self, datas, masks, qposs, qvels):
    new_datas, readouts = self.init(qposs, qvels)
    def select(mask, new, old):
      return jax.tree.map(
          lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a, b),
          new, old)
    return (tuple(select(m, n, o) for m, n, o in zip(masks, new_datas, datas)), readouts)

  def init(self, qposs, qvels):
    out = [g.fresh(q, v) for g, q, v in zip(self.groups, qposs, qvels)]
    return tuple(o[0] for o in out), tuple(o[1] for o in out)
