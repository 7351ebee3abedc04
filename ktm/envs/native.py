"""Native MuJoCo (C) physics backend, called from inside jitted programs via jax.pure_callback.

The physics state of each env is MuJoCo's full physics state vector plus the solver warmstart
(mjSTATE_FULLPHYSICS | mjSTATE_WARMSTART: time, qpos, qvel, act, history, qacc_warmstart) in float64,
carried in the JAX pytree as its uint32 bit pattern ([..., 2 * nstate]) so it stays exact even with x64
disabled. Carrying the warmstart makes a trajectory bit-identical to stepping one MjData with mj_step (as
gymnasium does): the constraint solver starts from the previous step's accelerations, and HalfCheetah and
Ant are chaotic enough that restarting it from zero leaves gymnasium's trajectory within ~100 steps.

Substeps run in a `mujoco.batch.Batch` (one row of mjSTATE_INTEGRATION per env, stepped on a thread
pool, bit-identical to a loop of mj_step). Tasks whose rewards read MjData fields after the last substep
(Ant's cfrc_ext, InvertedDoublePendulum's site_xpos) take that substep in Python on a scratch MjData.
Batches and scratch MjData live in the backend object, never in the pytree.

Batching: callbacks use vmap_method='broadcast_all' and accept any leading batch dims in
front of the group's [G, E] axes; they are flattened into one rollout batch.
"""

import threading

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import batch as mujoco_batch
from mujoco import rollout as mj_rollout

from ktm.envs.tasks import TaskSpec
from ktm.envs.types import Readout

_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS | mujoco.mjtState.mjSTATE_WARMSTART   # what the pytree carries
_INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION                                   # a Batch row
MIN_SIMS_PER_THREAD = 8


def _float_dtype():
  return jnp.asarray(0.0).dtype  # float64 when x64 is enabled, else float32


def _read_extras(spec: TaskSpec, data) -> np.ndarray:
  """The task's extra MjData quantities, flattened [n_extra]."""
  parts = [np.asarray(getattr(data, f))[slice(None) if i is None else i].ravel()
           for f, i in spec.extras]
  return np.concatenate(parts) if parts else np.zeros((0,))


def _component_offset(model, spec: int, component: int) -> int:
  """Column where `component` starts in a state vector of `spec` (components are stored in bit order)."""
  below = spec & (int(component) - 1)
  return mujoco.mj_stateSize(model, below)


class NativeGroup:
  """G variants of one task (same kinematic tree) x E envs, stepped with mujoco.batch."""

  def __init__(self, spec: TaskSpec, models, num_envs: int, pool: mj_rollout.Rollout = None,
               nthread: int = 1):
    del pool   # kept for callers that still pass one; substeps run in mujoco.batch
    self.spec, self.models, self.num_envs = spec, list(models), num_envs
    self.num_variants = len(self.models)
    m = self.models[0]
    self.nq, self.nv, self.nu = m.nq, m.nv, m.nu
    self.nstate = mujoco.mj_stateSize(m, _STATE)
    self.qpos_adr = mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_TIME)
    self.qvel_adr = self.qpos_adr + self.nq
    # _STATE is a prefix of a Batch row (mjSTATE_INTEGRATION) when the model has no plugin state.
    if mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_PLUGIN):
      raise ValueError(f'{spec.name}: models with plugin state are not supported by the native backend')
    self.ctrl_adr = _component_offset(m, _INTEGRATION, mujoco.mjtState.mjSTATE_CTRL)
    self.nthread = max(int(nthread), 1)
    self.scratch = mujoco.MjData(m)
    self.initial = np.empty(self.nstate)   # a fresh MjData's carried state (warmstart 0, as after mj_resetData)
    mujoco.mj_getState(m, self.scratch, self.initial, _STATE)
    # mjSTATE_FULLPHYSICS of a fresh MjData: what plain mujoco.rollout takes (benchmarks compare against it).
    self.template = np.empty(mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_FULLPHYSICS))
    mujoco.mj_getState(m, self.scratch, self.template, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    self.n_extra = _read_extras(spec, self.scratch).size
    self._model_lists = {}
    self._batches = {}

  def batch(self, n: int) -> mujoco_batch.Batch:
    """A Batch of n simulations on this group's models ([..., G, E] row-major), made once per n. Fewer than
    MIN_SIMS_PER_THREAD simulations per thread run on the calling thread alone (the thread pool's hand-off costs
    more than it saves: 54 vs 154 us CPU per env-step for pendulum_group at E = 1)."""
    if n not in self._batches:
      nthread = self.nthread if n >= 2 * MIN_SIMS_PER_THREAD else 1
      b = mujoco_batch.Batch(self.models[0], nsim=n, nthread=nthread)
      b.set_models(self.model_list(n))
      self._batches[n] = b
    return self._batches[n]

  def model_list(self, n: int) -> list:
    """Models for a flattened batch of n = B * G * E envs ([..., G, E] row-major)."""
    if n not in self._model_lists:
      per_block = [mdl for mdl in self.models for _ in range(self.num_envs)]
      self._model_lists[n] = per_block * (n // len(per_block))
    return self._model_lists[n]

  def _outputs(self, states: np.ndarray, extras: np.ndarray):
    """(state, qpos, qvel, extra) for the host callback, from full states [N, nstate]."""
    qpos = states[:, self.qpos_adr:self.qvel_adr]
    qvel = states[:, self.qvel_adr:self.qvel_adr + self.nv]
    return states, qpos, qvel, extras

  def _last_substep(self, models, state, ctrl, out_state, extras):
    """One substep per env in Python so the task's extras are read where gymnasium reads them."""
    d = self.scratch
    for i in range(state.shape[0]):
      mujoco.mj_setState(models[i], d, state[i], _STATE)
      d.ctrl[:] = ctrl[i]
      mujoco.mj_step(models[i], d)
      if self.spec.rne_post:
        mujoco.mj_rnePostConstraint(models[i], d)
      mujoco.mj_getState(models[i], d, out_state[i], _STATE)
      extras[i] = _read_extras(self.spec, d)

  def step_np(self, state: np.ndarray, ctrl: np.ndarray):
    """state [N, nstate] float64, ctrl [N, nu] -> (state, qpos, qvel, extra), all [N, ...]."""
    n = state.shape[0]
    models = self.model_list(n)
    ctrl = np.ascontiguousarray(ctrl, dtype=np.float64)
    # Tasks with extras do their last substep in Python (they read MjData after it).
    n_batch = self.spec.frame_skip - (1 if self.spec.extras else 0)
    if n_batch > 0:
      b = self.batch(n)
      b.state[:, :self.nstate] = state
      b.state[:, self.ctrl_adr:self.ctrl_adr + self.nu] = ctrl
      b.step(nstep=n_batch)
      state = b.state[:, :self.nstate].copy()
    extras = np.zeros((n, self.n_extra))
    if self.spec.extras:
      out = np.empty_like(state)
      self._last_substep(models, state, ctrl, out, extras)
      state = out
    return self._outputs(state, extras)

  def reset_np(self, state, mask, qpos, qvel):
    """Envs where mask [N] is set restart from (qpos, qvel) at time 0 (mj_forward'ed)."""
    state = state.copy()
    extras = np.zeros((state.shape[0], self.n_extra))
    models = self.model_list(state.shape[0])
    d = self.scratch
    for i in np.flatnonzero(mask):
      state[i] = self.initial
      state[i, self.qpos_adr:self.qvel_adr] = qpos[i]
      state[i, self.qvel_adr:self.qvel_adr + self.nv] = qvel[i]
      mujoco.mj_setState(models[i], d, state[i], _STATE)
      mujoco.mj_forward(models[i], d)
      if self.spec.rne_post:
        mujoco.mj_rnePostConstraint(models[i], d)
      extras[i] = _read_extras(self.spec, d)
    return self._outputs(state, extras)


def _to_bits(x: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(x, dtype=np.float64).view(np.uint32)


def _from_bits(b: np.ndarray, nstate: int) -> np.ndarray:
  return np.ascontiguousarray(b, dtype=np.uint32).view(np.float64).reshape(-1, nstate)


class NativeBackend:
  """All task groups of a suite on native MuJoCo; one host callback per step or reset."""

  def __init__(self, groups: list[NativeGroup]):
    self.groups = groups
    # Several devices (a sharded sweep) call back concurrently; the groups' Batch and scratch MjData are shared.
    self._lock = threading.Lock()

  def _out_shapes(self, lead):
    dt = _float_dtype()
    return tuple(
        (jax.ShapeDtypeStruct(lead[j] + (2 * g.nstate,), jnp.uint32),
         Readout(jax.ShapeDtypeStruct(lead[j] + (g.nq,), dt),
                 jax.ShapeDtypeStruct(lead[j] + (g.nv,), dt),
                 jax.ShapeDtypeStruct(lead[j] + (g.n_extra,), dt)))
        for j, g in enumerate(self.groups))

  def _pack(self, lead, outs):
    """numpy results of group j -> (bits, Readout) with shape lead[j] (incl. vmap dims)."""
    dt = np.dtype(_float_dtype())
    packed = []
    for j, (state, qpos, qvel, extra) in enumerate(outs):
      shape = lead[j]
      packed.append((_to_bits(state).reshape(shape + (-1,)),
                     Readout(qpos.astype(dt).reshape(shape + (-1,)),
                             qvel.astype(dt).reshape(shape + (-1,)),
                             extra.astype(dt).reshape(shape + (-1,)))))
    return tuple(packed)

  def step(self, bits, ctrls):
    """bits: tuple over groups of [G, E, 2*nstate] uint32; ctrls: [G, E, nu]."""
    lead = [b.shape[:-1] for b in bits]

    def host(bits, ctrls):
      lead_now = [b.shape[:-1] for b in bits]
      with self._lock:
        outs = [g.step_np(_from_bits(b, g.nstate), np.asarray(c).reshape(-1, g.nu))
                for g, b, c in zip(self.groups, bits, ctrls)]
      return self._pack(lead_now, outs)

    out = jax.pure_callback(host, self._out_shapes(lead), bits, ctrls,
                            vmap_method='broadcast_all')
    return tuple(o[0] for o in out), tuple(o[1] for o in out)

  def reset(self, bits, masks, qposs, qvels):
    """Masked envs ([G, E] bool) restart from qpos [G, E, nq], qvel [G, E, nv]."""
    lead = [b.shape[:-1] for b in bits]

    def host(bits, masks, qposs, qvels):
      lead_now = [b.shape[:-1] for b in bits]
      with self._lock:
        outs = [g.reset_np(_from_bits(b, g.nstate), np.asarray(m).reshape(-1),
                           np.asarray(qp, np.float64).reshape(-1, g.nq),
                           np.asarray(qv, np.float64).reshape(-1, g.nv))
                for g, b, m, qp, qv in zip(self.groups, bits, masks, qposs, qvels)]
      return self._pack(lead_now, outs)

    out = jax.pure_callback(host, self._out_shapes(lead), bits, masks, qposs, qvels,
                            vmap_method='broadcast_all')
    return tuple(o[0] for o in out), tuple(o[1] for o in out)

  def init(self, qposs, qvels):
    """Fresh physics for every env from qpos/qvel ([G, E, ...] per group)."""
    bits = tuple(jnp.broadcast_to(jnp.asarray(_to_bits(g.initial)), q.shape[:-1] +
                                  (2 * g.nstate,)) for g, q in zip(self.groups, qposs))
    masks = tuple(jnp.ones(q.shape[:-1], bool) for q in qposs)
    return self.reset(bits, masks, qposs, qvels)
