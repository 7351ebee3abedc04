"""ONE multi-task training loop for every method: compiled chunks inside, a host loop outside.

Compiled (one `jit` per chunk kind, the run state donated):
  offpolicy_chunk  collect `n` epochs of env steps (E per task each) with the method's exploration into the replay
                   (in place), then the updates due in those epochs (n x updates_per_epoch, exactly floor'ed when
                   it is a fraction), each on one minibatch per task read from the replay
  onpolicy_chunk   the method's own rollouts and updates (A2C-MT)
  evaluate         deterministic returns [K, E] of the method's policy
Host (`train`): stages in order, chunk boundaries at evaluations, checkpoints and stage ends (derived from the epoch
counters and the early stage ends of `Stage.patience`, both checkpointed, so a resumed run takes exactly the chunks
of an uninterrupted one: bit-identical on CPU), a NaN/Inf
guard after every chunk, SIGTERM / SIGINT saving a checkpoint at the next chunk boundary, resume from the newest
valid checkpoint. The checkpoints at stage boundaries are kept (KTM's offline end: ablations start from it).
"""

import collections
import dataclasses
import functools
import os
import signal
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ktm import checkpoint, networks, plateau, replay, rollout, td3, validate
from ktm import sweep as sweep_lib
from ktm.envs import EnvState, Suite
from ktm.methods import base
from ktm.methods.base import Method, Stage
from ktm.sweep import Sweep

MEMBER_AXIS = 'member'


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """What the loop does around the method's updates; shared by every method."""
  eval_every: int = 5_000          # epochs between evaluations (counted within each stage)
  eval_episodes: int = 10          # deterministic episodes per task, run in parallel
  checkpoint_every: int = 50_000   # epochs between checkpoints (counted over all stages)
  num_envs: int = 1                # parallel envs per task
  seed: int = 0                    # seeds networks, exploration, envs and evaluation

  RANGES = dict(eval_every=validate.AT_LEAST_1, eval_episodes=validate.AT_LEAST_1,
                checkpoint_every=validate.AT_LEAST_1, num_envs=validate.AT_LEAST_1, seed=validate.SEED)

  def __post_init__(self):
    validate.check(self, self.RANGES)


@flax.struct.dataclass
class RunState:
  """Everything a run carries between chunks (and checkpoints). The arrays of a sweep's S members carry a leading
  member axis [S, ...]; `stage` and `epoch` are shared (members run in lockstep)."""
  learner: Any                          # the method's state [S, ...]
  buffer: Optional[replay.ReplayBuffer]  # online replay [S, K, capacity] (None for on-policy methods)
  env: EnvState                         # [S, K, E]
  key: jax.Array                        # [S]
  stage: jnp.ndarray                    # int32 index into method.stages(); len(stages) when done
  epoch: jnp.ndarray                    # int32 epochs done in the current stage


# The member-axis position of each RunState field (None: shared by all members), as `vmap` axes.
STATE_AXES = RunState(learner=0, buffer=0, env=0, key=0, stage=None, epoch=None)


class TrainingDiverged(ValueError):
  """A NaN or Inf appeared in the method's parameters or losses."""


class Interrupted(Exception):
  """SIGTERM or SIGINT arrived; a checkpoint was saved at the chunk boundary (scripts exit with `exit_code`)."""
  exit_code = 130


def init(key: jax.Array, method: Method, suite: Suite) -> RunState:
  """ONE member's fresh state (no member axis): the method's state, an empty replay (if it has one), reset envs."""
  learner_key, env_key, key = jax.random.split(key, 3)
  capacity = method.replay_capacity
  buffer = replay.init(suite.num_tasks, capacity, suite.obs_size, suite.act_size) if capacity else None
  return RunState(learner=method.init(learner_key), buffer=buffer, env=suite.reset(env_key), key=key,
                  stage=jnp.zeros((), jnp.int32), epoch=jnp.zeros((), jnp.int32))


def member_key(seed: jax.Array, stream: int) -> jax.Array:
  """fold_in(key(seed), stream): stream 0 seeds the run state, stream 1 the evaluations."""
  return jax.random.fold_in(jax.random.key(seed), stream)


def init_members(sweep: Sweep, method: Method, suite: Suite, mesh: Optional[Mesh] = None) -> RunState:
  """The sweep's fresh run state: member m is `init` with its seed and swept values, all members in one program
  (jitted: an eagerly reset MJX state shares buffers between physics data and readouts, which donation refuses)."""
  fn = _compiled(_init_members, compute_dtype(method), ('method', 'suite', 'mesh'), False)
  return fn(*global_arrays((seeds_array(sweep), sweep.hparams()), (0, 0), mesh), method=method, suite=suite,
            mesh=mesh)


def committed(tree: Any, mesh: Optional[Mesh]) -> Any:
  """On one device (no mesh), `tree`'s arrays committed to it (a no-op for committed ones). A compiled chunk's cache
  entry depends on whether its inputs are committed; restored checkpoints are, fresh arrays are not."""
  return jax.device_put(tree, jax.local_devices()[0]) if mesh is None else tree


def _init_members(seeds, hparams, method, suite, mesh):
  one = lambda seed, values: init(member_key(seed, 0), sweep_lib.with_values(method, values), suite)
  return _members(one, (0, 0), STATE_AXES, mesh)(seeds, hparams)


def seeds_array(sweep: Sweep) -> np.ndarray:
  return np.asarray(sweep.seeds, np.int32)


def global_arrays(tree: Any, axes: Any, mesh: Optional[Mesh]) -> Any:
  """Host data as arrays of the mesh, split over its member axis where `axes` says 0 and replicated elsewhere. Only
  needed across processes (jax.distributed), where every input of a program must be a global array; with one
  process the tree is returned as it is."""
  if mesh is None or jax.process_count() == 1:
    return tree

  def one(x, spec):
    if isinstance(x, jax.Array) and checkpoint.is_key(x):
      return jax.random.wrap_key_data(one(jax.random.key_data(x), spec), impl=jax.random.key_impl(x))
    data = np.asarray(x)
    return jax.make_array_from_callback(data.shape, NamedSharding(mesh, spec), lambda index: data[index])

  return jax.tree.map(one, tree, _broadcast_specs(_specs(axes), tree))


def _broadcast_specs(specs, tree):
  """`specs` (a prefix of `tree`) expanded to one PartitionSpec per leaf of `tree`."""
  return jax.tree.map(lambda s, sub: jax.tree.map(lambda _: s, sub), specs, tree, is_leaf=lambda s: isinstance(s, P))


def to_host(tree: Any) -> Any:
  """numpy values of (possibly sharded) arrays; across processes, gathered from all of them."""
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def member(tree: Any, m: int) -> Any:
  """Member m's slice of a tree with a leading member axis (e.g. `state.learner`)."""
  return jax.tree.map(lambda x: x[m], tree)


def host_members(tree: Any) -> Any:
  """numpy copies of every member's arrays (PRNG keys kept as keys); across processes, gathered from all."""
  is_key = checkpoint.is_key
  data = to_host(jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree))
  return jax.tree.map(lambda x, d: jax.random.wrap_key_data(d) if is_key(x) else d, tree, data)


def member_state(state: RunState, m: int) -> RunState:
  """Member m's run state (no member axis), as `init` gives one member."""
  return state.replace(learner=member(state.learner, m), buffer=member(state.buffer, m), env=member(state.env, m),
                       key=state.key[m])


def _mean_over_scan(metrics):
  return jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)


def all_finite(tree) -> jnp.ndarray:
  """One bool: every floating leaf of `tree` is finite (a cheap reduction, done inside the compiled chunk)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def finite_flag(learner: Any, metrics: dict) -> jnp.ndarray:
  """The NaN/Inf guard's flag: the learner and its losses are finite (train_return is NaN by design where no
  episode ended, so it is left out)."""
  return all_finite((learner, {k: v for k, v in metrics.items() if k != 'train_return'}))


def compute_dtype(method: Method) -> str:
  """The dtype of the method's network matmuls (its `cfg.compute_dtype`, else float32)."""
  return getattr(getattr(method, 'cfg', None), 'compute_dtype', 'float32')


def _specs(axes):
  return jax.tree.map(lambda a: P(MEMBER_AXIS) if a == 0 else P(), axes, is_leaf=lambda a: a is None)


def _members(fn: Callable, in_axes, out_axes, mesh: Optional[Mesh]) -> Callable:
  """`fn` for one member lifted to all: `vmap` over the member axis, and with a mesh, `shard_map` so each device
  runs its own members (host callbacks included) on its own data."""
  fn = jax.vmap(fn, in_axes=in_axes, out_axes=out_axes)
  if mesh is None:
    return fn
  return jax.shard_map(fn, mesh=mesh, in_specs=_specs(in_axes), out_specs=_specs(out_axes), check_vma=False)


@functools.lru_cache(maxsize=None)
def _compiled(fn: Callable, dtype: str, static_argnames: Tuple[str, ...], donate: bool) -> Callable:
  """`fn` jitted with the XLA options its networks' dtype needs (bfloat16 on CPU needs XLA's bf16 dot kernels)."""
  return jax.jit(fn, static_argnames=static_argnames, donate_argnums=0 if donate else (),
                 compiler_options=networks.xla_compiler_options(dtype))


TRACES = collections.Counter()   # chunk kind -> times traced (tests check one trace per sweep)


def offpolicy_chunk(state: RunState, aux: Any, method: Method, suite: Suite, stage: int, num_epochs: int,
                    learn: bool, hparams=None, aux_axis: Optional[int] = None,
                    mesh: Optional[Mesh] = None) -> Tuple[RunState, dict]:
  """`num_epochs` epochs of an off-policy stage for every member (state [S, ...], swept values `hparams`
  {field: [S]}, `aux` shared or, with aux_axis=0, per member); compiled, the run state donated. Metrics [S, ...]."""
  fn = _compiled(_offpolicy_chunk, compute_dtype(method),
                 ('method', 'suite', 'stage', 'num_epochs', 'learn', 'aux_axis', 'mesh'), True)
  return fn(state, hparams or {}, aux, method=method, suite=suite, stage=stage, num_epochs=num_epochs, learn=learn,
            aux_axis=aux_axis, mesh=mesh)


def onpolicy_chunk(state: RunState, aux: Any, method: Method, suite: Suite, num_epochs: int, hparams=None,
                   aux_axis: Optional[int] = None, mesh: Optional[Mesh] = None) -> Tuple[RunState, dict]:
  """`num_epochs` epochs of the method's own rollouts and updates for every member (compiled, state donated)."""
  fn = _compiled(_onpolicy_chunk, compute_dtype(method), ('method', 'suite', 'num_epochs', 'aux_axis', 'mesh'), True)
  return fn(state, hparams or {}, aux, method=method, suite=suite, num_epochs=num_epochs, aux_axis=aux_axis,
            mesh=mesh)


def evaluate(learner: Any, key: jax.Array, method: Method, eval_suite: Suite) -> jnp.ndarray:
  """Deterministic returns [K, E] of ONE learner (no member axis), one episode per env of `eval_suite`."""
  return evaluate_with_success(learner, key, method, eval_suite)[0]


def evaluate_with_success(learner: Any, key: jax.Array, method: Method,
                          eval_suite: Suite) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """`evaluate`'s returns [K, E] and each episode's success [K, E] (rollout.evaluate_episodes: 1 / 0, NaN where
  the env reports none)."""
  return _compiled(_evaluate, compute_dtype(method), ('method', 'eval_suite'), False)(learner, key, method,
                                                                                     eval_suite)


def evaluate_members(learners: Any, seeds: jax.Array, global_epoch: jax.Array, method: Method, eval_suite: Suite,
                     hparams=None, mesh: Optional[Mesh] = None) -> jnp.ndarray:
  """Deterministic (returns, success) [S, K, E] of every member (learners [S, ...], seeds [S]) at `global_epoch`
  (success: rollout.evaluate_episodes'); member m's episodes are seeded by fold_in(fold_in(key(seed_m), 1),
  global_epoch)."""
  fn = _compiled(_evaluate_members, compute_dtype(method), ('method', 'eval_suite', 'mesh'), False)
  return fn(learners, seeds, global_epoch, hparams or {}, method=method, eval_suite=eval_suite, mesh=mesh)


def _offpolicy_chunk(state, hparams, aux, method, suite, stage, num_epochs, learn, aux_axis, mesh):
  TRACES['offpolicy'] += 1
  one = lambda s, v, a: _offpolicy_member(s, a, sweep_lib.with_values(method, v), suite, stage, num_epochs, learn)
  return _members(one, (STATE_AXES, 0, aux_axis), (STATE_AXES, 0), mesh)(state, hparams, aux)


def _onpolicy_chunk(state, hparams, aux, method, suite, num_epochs, aux_axis, mesh):
  TRACES['onpolicy'] += 1
  one = lambda s, v, a: _onpolicy_member(s, a, sweep_lib.with_values(method, v), suite, num_epochs)
  return _members(one, (STATE_AXES, 0, aux_axis), (STATE_AXES, 0), mesh)(state, hparams, aux)


def _evaluate_members(learners, seeds, global_epoch, hparams, method, eval_suite, mesh):
  TRACES['evaluate'] += 1
  one = lambda l, s, g, v: _evaluate(l, jax.random.fold_in(member_key(s, 1), g), sweep_lib.with_values(method, v),
                                     eval_suite)
  return _members(one, (0, 0, None, 0), 0, mesh)(learners, seeds, global_epoch, hparams)


def _offpolicy_member(state: RunState, aux: Any, method: Method, suite: Suite, stage: int, num_epochs: int,
                      learn: bool) -> Tuple[RunState, dict]:
  """One member's `num_epochs` epochs of an off-policy stage: env steps first (policy fixed), inserted into the
  replay, then (if `learn`) the epochs' updates, which read the replay without copying it."""
  spec = method.stages()[stage]
  key, collect_key, learn_key = jax.random.split(state.key, 3)
  learner, buffer, env, metrics = state.learner, state.buffer, state.env, {}
  if spec.collect:
    act = lambda params, obs, k: method.act(params, obs, k, True)
    env, rows, stats = rollout.collect(act, learner, env, collect_key, state.epoch, suite, num_epochs,
                                       spec.random_epochs)
    buffer = replay.insert(buffer, rows)
    metrics['train_return'] = stats.mean()
  if learn:
    learner, update_metrics = _updates(learner, method.sample_source(stage, buffer, aux), aux, method, stage, spec,
                                       state.epoch, num_epochs, learn_key)
    metrics.update(update_metrics)
  metrics['finite'] = finite_flag(learner, metrics)
  return RunState(learner=learner, buffer=buffer, env=env, key=key, stage=state.stage,
                  epoch=state.epoch + num_epochs), metrics


def _updates(learner, source: replay.ReplayBuffer, aux, method: Method, stage: int, spec: Stage, epoch: jnp.ndarray,
             num_epochs: int, key: jax.Array):
  """The updates due in epochs [epoch, epoch + num_epochs) at the stage's ratio p / q (`Stage.update_ratio`): the
  stage's update j (counted from its random phase's end) belongs to its epoch random_epochs + ((j + 1) q - 1) // p.
  With q = 1 that is num_epochs x p updates (a plain scan); with q > 1 the scan has the most slots n epochs can hold,
  ceil(n p / q), and a slot past the updates due skips (one `lax.cond` on the shared epoch: a real branch under the
  member vmap). Metrics: means over the updates taken (0 where none was)."""
  p, q = spec.update_ratio
  first_update = base.updates_after(epoch - spec.random_epochs, (p, q))
  due = base.updates_after(epoch + num_epochs - spec.random_epochs, (p, q)) - first_update
  slots = -(-num_epochs * p // q)

  def body(learner, inputs):
    i, sample_key = inputs
    j = first_update + i
    update = lambda l: method.update(l, replay.sample(source, sample_key, method.batch_size), aux, stage,
                                     spec.random_epochs + ((j + 1) * q - 1) // p, j)
    return update(learner) if q == 1 else td3.update_if(i < due, update, learner)

  learner, metrics = jax.lax.scan(body, learner, (jnp.arange(slots), jax.random.split(key, slots)))
  if q == 1:
    return learner, _mean_over_scan(metrics)
  taken = (jnp.arange(slots) < due).astype(jnp.float32)
  mean = lambda m: jnp.tensordot(taken, m, axes=1) / jnp.maximum(due, 1).astype(m.dtype)
  return learner, jax.tree.map(mean, metrics)


def _onpolicy_member(state: RunState, aux: Any, method: Method, suite: Suite, num_epochs: int
                     ) -> Tuple[RunState, dict]:
  """One member's `num_epochs` epochs of the method's own rollouts and updates."""
  key, chunk_key = jax.random.split(state.key)
  learner, env, metrics = method.onpolicy_chunk(state.learner, state.env, chunk_key, suite, aux, num_epochs)
  metrics = dict(metrics, finite=finite_flag(learner, metrics))
  return state.replace(learner=learner, env=env, key=key, epoch=state.epoch + num_epochs), metrics


def _evaluate(learner: Any, key: jax.Array, method: Method, eval_suite: Suite) -> Tuple[jnp.ndarray, jnp.ndarray]:
  return rollout.evaluate_episodes(lambda params, obs, k: method.act(params, obs, k, False), learner, key, eval_suite)


# ---- the host loop ----

def effective_stages(stages: Tuple[Stage, ...], ends: Dict[int, int]) -> Tuple[Stage, ...]:
  """The stages as this run trains them: stage i in `ends` (ended early at its epoch ends[i], `plateau.stalled`)
  is that long, and the epochs it left go to the stage after it, so the total stays the configured one."""
  stages = list(stages)
  for i in sorted(ends):
    left = stages[i].epochs - ends[i]
    stages[i] = dataclasses.replace(stages[i], epochs=ends[i])
    if i + 1 < len(stages):
      stages[i + 1] = dataclasses.replace(stages[i + 1], epochs=stages[i + 1].epochs + left)
  return tuple(stages)


def stage_stalled(history: List[dict], spec: Stage, diverged) -> bool:
  """Whether the stage `spec` (with a patience) has stopped paying by `plateau.stalled`, from its evaluations in
  `history` (diverged members left out)."""
  returns = np.array([h['returns'] for h in history if h['stage'] == spec.name], np.float64)
  if not len(returns):
    return False
  returns[:, sorted(diverged)] = np.nan
  return plateau.stalled(returns, spec.patience)


def stage_offsets(stages: Tuple[Stage, ...]) -> np.ndarray:
  """Global epoch at which each stage starts, and the total: [S + 1]."""
  return np.cumsum([0] + [s.epochs for s in stages])


def stage_boundaries(stages: Tuple[Stage, ...]) -> Tuple[int, ...]:
  """Global epochs where one non-empty stage ends and another begins: the loop checkpoints there and keeps those
  checkpoints (a run can start from another's first stage, `ktm.runs.run_config.start_from_first_stage`)."""
  offsets = stage_offsets(stages)
  return tuple(int(g) for g in offsets[1:-1] if 0 < g < offsets[-1])


def next_chunk(stages: Tuple[Stage, ...], stage: int, epoch: int, cfg: LoopConfig) -> int:
  """Epochs in the next compiled call: up to the stage's chunk, stopping at evaluations (stage epochs), checkpoints
  (global epochs), the end of the random-action phase and the stage's end."""
  spec = stages[stage]
  g = int(stage_offsets(stages)[stage]) + epoch
  boundaries = [epoch + cfg.eval_every - epoch % cfg.eval_every,
                epoch + cfg.checkpoint_every - g % cfg.checkpoint_every, spec.epochs]
  if epoch < spec.random_epochs:
    boundaries.append(spec.random_epochs)
  return min(spec.chunk, min(boundaries) - epoch)


def begin_stage(learners: Any, method: Method, stage: int) -> Any:
  """The method's `begin_stage` hook for every member (learners [S, ...])."""
  return _compiled(_begin_stage, compute_dtype(method), ('method', 'stage'), False)(learners, method=method,
                                                                                     stage=stage)


def _begin_stage(learners, method, stage):
  return jax.vmap(lambda l: method.begin_stage(l, stage))(learners)


def advance_stage(state: RunState, method: Method, mesh: Optional[Mesh] = None,
                  stages: Optional[Tuple[Stage, ...]] = None) -> RunState:
  """Moves past finished (or empty) stages (of `stages`, default `method.stages()`), calling the method's
  `begin_stage` for each stage it enters."""
  stages = stages or method.stages()
  stage, epoch = int(state.stage), int(state.epoch)
  while stage < len(stages) and epoch >= stages[stage].epochs:
    stage, epoch = stage + 1, 0
    learner = begin_stage(state.learner, method, stage) if stage < len(stages) else state.learner
    counters = committed(global_arrays((jnp.asarray(stage, jnp.int32), jnp.zeros((), jnp.int32)), None, mesh),
                         mesh)
    state = state.replace(learner=learner, stage=counters[0], epoch=counters[1])
  return state


def first_bad_task(metrics: dict, task_names) -> str:
  """The first task whose per-task metrics are not finite, for the divergence message."""
  for values in metrics.values():
    values = np.asarray(values)
    if values.ndim == 1 and values.shape[0] == len(task_names) and np.issubdtype(values.dtype, np.floating):
      bad = np.flatnonzero(~np.isfinite(values))
      if bad.size:
        return task_names[int(bad[0])]
  return 'all tasks (shared parameters)'


class _StopSignals:
  """Turns SIGTERM / SIGINT into a flag the host loop checks at chunk boundaries (main thread only)."""

  def __init__(self):
    self.received = None
    self._previous = {}

  def __enter__(self):
    try:
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    except ValueError:   # not the main thread: signals keep their default behaviour
      pass
    return self

  def _handle(self, signum, frame):
    del frame
    if self.received is not None:   # a second signal: stop now
      raise KeyboardInterrupt
    self.received = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


class Reporter:
  """Host-side hooks of `train`; the default does nothing."""

  def resumed(self, global_epoch: int, restored_from: Optional[int]) -> None:
    """Called once before the first chunk with the global epoch the run starts at."""

  def chunk(self, stage_name: str, global_epoch: int, metrics: dict, returns: Optional[np.ndarray]) -> None:
    """Called after every chunk with the members' metrics [S, ...]; `returns` [S, K, E] after an evaluation."""

  def diverged(self, member: int, global_epoch: int, task: Optional[str]) -> None:
    """Called when member `member` of a sweep (S > 1) stops being finite (the others train on), and again on
    resume for members that had diverged (task None)."""

  def stage_ended(self, stage_name: str, global_epoch: int, planned: int, next_stage: Optional[str]) -> None:
    """Called when a stage with a patience ends early (`plateau.stalled`) at `global_epoch`, `planned` its
    configured length in epochs, and again on resume for stages that had."""


def _restore(manager, state):
  """(state, extra, restored global epoch or None) from the newest valid checkpoint."""
  if manager is None or manager.latest_step() is None:
    return state, dict(history=[], wall_seconds=0.0, diverged={}, stage_ends={}), None
  state, extra = manager.restore(state)
  return state, dict(extra, diverged={int(k): v for k, v in extra.get('diverged', {}).items()},
                     stage_ends={int(k): v for k, v in extra.get('stage_ends', {}).items()}), manager.restored_step


def train(method: Method, suite: Suite, eval_suite: Suite, aux: Any, cfg: LoopConfig,
          workdir: Optional[str] = None, reporter: Optional[Reporter] = None,
          exit_after_checkpoint: Optional[int] = None, on_start: Optional[Callable[[], None]] = None,
          sweep: Optional[Sweep] = None, aux_axis: Optional[int] = None, mesh: Optional[Mesh] = None,
          read_ahead: bool = True):
  """Runs (or resumes from WORKDIR/checkpoints) all of the method's stages for every member of `sweep` (default:
  one member with `cfg.seed`). Returns (final RunState [S, ...], evaluation history, wall seconds).

  History entries: {'stage', 'epoch', 'global_epoch', 'returns': [S][K][E]} (`member_history` gives one member's),
  and 'success' [S][K] (`success_rates`) where the eval suite's envs report info['success'].
  `aux` is shared by all members, or with aux_axis=0 has a member axis (e.g. each seed's own teachers). With a
  `mesh` (axis 'member'), the members are split over its devices. `on_start()` is called once everything is built,
  right before the first chunk (the run directory's config.json is written there). `exit_after_checkpoint=n` exits
  the process one chunk after the n-th checkpoint of this call (tests use it to simulate a kill). `read_ahead`: a
  chunk that ends at no evaluation, checkpoint or stage end is read after the next chunk is dispatched (False: every
  chunk is read before the next, as before 2026-12-04; the results are the same, benchmarks/host_loop.py times it).
  Raises TrainingDiverged when every member has diverged (with one member: nothing is saved after the last good
  checkpoint; in a larger sweep a diverged member is reported, left out of results and the others train on), or
  Interrupted (a checkpoint was saved).
  """
  sweep = sweep or sweep_lib.single(cfg.seed)
  reporter = reporter or Reporter()
  state = init_members(sweep, method, suite, mesh)
  manager = None
  if workdir:
    manager = checkpoint.CheckpointManager(os.path.join(workdir, 'checkpoints'),
                                           keep_steps=stage_boundaries(method.stages()))
  try:
    return _train(method, suite, eval_suite, aux, cfg, manager, state, sweep, aux_axis, mesh, reporter,
                  exit_after_checkpoint, on_start, read_ahead)
  finally:
    if manager is not None:
      manager.close()


def _train(method, suite, eval_suite, aux, cfg, manager, state, sweep, aux_axis, mesh, reporter,
           exit_after_checkpoint, on_start, read_ahead):
  hparams, seeds = global_arrays((sweep.hparams(), seeds_array(sweep)), (0, 0), mesh)
  aux = global_arrays(aux, aux_axis, mesh)
  state, extra, restored = _restore(manager, state)
  # fresh or restored, the state is committed alike (restored arrays are, fresh ones and zero-size leaves not), so
  # a run resumed in this process reuses the compiled chunks instead of compiling them for other input shardings
  state = committed(state, mesh)
  history, wall_before, diverged = extra['history'], extra['wall_seconds'], extra['diverged']
  stage_ends = extra['stage_ends']
  stages = effective_stages(method.stages(), stage_ends)
  offsets, boundaries = stage_offsets(stages), stage_boundaries(stages)
  if restored is None:
    state = state.replace(learner=begin_stage(state.learner, method, 0))
  state = advance_stage(state, method, mesh, stages)
  reporter.resumed(int(offsets[min(int(state.stage), len(stages))]) + int(state.epoch), restored)
  for m, g in diverged.items():
    reporter.diverged(m, g, None)
  for i, end in stage_ends.items():
    if manager is not None:
      manager.keep(int(offsets[i + 1]))
    reporter.stage_ended(stages[i].name, int(offsets[i + 1]), method.stages()[i].epochs,
                         stages[i + 1].name if i + 1 < len(stages) else None)
  if on_start is not None:
    on_start()
  start = time.perf_counter()
  saves, last_saved = 0, restored

  def settle(chunk) -> dict:
    """The host side of a finished chunk (stage name, stage epoch at its end, length, global epoch, metrics on the
    device): its metrics read, and the NaN/Inf guard."""
    name, epoch, n, g, metrics = chunk
    metrics = to_host(metrics)
    finite = metrics.pop('finite')
    for m in np.flatnonzero(~finite):
      if int(m) not in diverged:
        diverged[int(m)] = g
        if sweep.size > 1:
          reporter.diverged(int(m), g, first_bad_task(member(metrics, m), suite.task_names))
    if len(diverged) == sweep.size:
      bad = first_bad_task(member(metrics, 0), suite.task_names)
      which = '' if sweep.size == 1 else f'every member of the sweep (member 0: {sweep.describe(0)}, '
      kept = (f'the last good checkpoint (epoch {last_saved:,}) is kept' if last_saved is not None else
              'no checkpoint had been saved yet')
      raise TrainingDiverged(
          f'training diverged (NaN/Inf) in stage {name!r} between epochs {epoch - n} and {epoch} (global '
          f'{g}), {which}task {bad}{")" if which else ""}; {kept} and no results were written')
    return metrics

  # A chunk that ends at no evaluation, checkpoint or stage end is read only after the next one is dispatched, so
  # the device never waits for the host between chunks (issue 27 item 4); the computation is the same.
  pending = None
  with _StopSignals() as signals:
    stage, epoch = int(state.stage), int(state.epoch)
    while stage < len(stages):
      spec = stages[stage]
      n = next_chunk(stages, stage, epoch, cfg)
      if spec.kind == 'onpolicy':
        state, metrics = onpolicy_chunk(state, aux, method, suite, n, hparams, aux_axis, mesh)
      else:
        state, metrics = offpolicy_chunk(state, aux, method, suite, stage, n, epoch >= spec.random_epochs, hparams,
                                         aux_axis, mesh)
      epoch += n
      g = int(offsets[stage]) + epoch
      if pending is not None:
        reporter.chunk(pending[0], pending[3], settle(pending), None)
        pending = None
      evaluating = epoch % cfg.eval_every == 0 or epoch == spec.epochs
      if not (evaluating or g % cfg.checkpoint_every == 0 or g in boundaries or signals.received
              or exit_after_checkpoint is not None or not read_ahead):
        pending = (spec.name, epoch, n, g, metrics)
        continue
      metrics = settle((spec.name, epoch, n, g, metrics))
      returns = None
      if evaluating:
        g_array = global_arrays(np.int32(g), None, mesh)
        returns, success = (np.array(x) for x in to_host(evaluate_members(state.learner, seeds, g_array, method,
                                                                           eval_suite, hparams, mesh)))
        returns[sorted(diverged)] = np.nan
        history.append({'stage': spec.name, 'epoch': epoch, 'global_epoch': g, 'returns': returns.tolist()})
        success = success_rates(success, diverged)
        if success is not None:   # only where the envs report info['success']
          history[-1]['success'] = [[None if np.isnan(r) else float(r) for r in row] for row in success]
          metrics['eval_success'] = success
        if spec.patience is not None and epoch < spec.epochs and stage_stalled(history, spec, diverged):
          stage_ends[stage] = epoch
          stages = effective_stages(method.stages(), stage_ends)
          offsets, boundaries = stage_offsets(stages), stage_boundaries(stages)
          if manager is not None:
            manager.keep(g)
          reporter.stage_ended(spec.name, g, spec.epochs,
                               stages[stage + 1].name if stage + 1 < len(stages) else None)
      reporter.chunk(spec.name, g, metrics, returns)
      if exit_after_checkpoint is not None and saves >= exit_after_checkpoint:
        os._exit(3)   # simulated kill: nothing after the last checkpoint is kept
      state = advance_stage(state, method, mesh, stages)
      stage, epoch = int(state.stage), int(state.epoch)
      done = stage >= len(stages)
      if manager is not None and (g % cfg.checkpoint_every == 0 or done or signals.received
                                  or g in boundaries):
        manager.save(g, state, {'history': history, 'wall_seconds': wall_before + time.perf_counter() - start,
                                'diverged': {str(k): v for k, v in diverged.items()},
                                'stage_ends': {str(k): v for k, v in stage_ends.items()}})
        saves, last_saved = saves + 1, g
      if signals.received and not done:
        raise Interrupted(f'{signals.received} received: stopped at epoch {g:,} with a checkpoint saved; re-run '
                          'the same command to resume' if manager else f'{signals.received} received: stopped at '
                          f'epoch {g:,} (no workdir: nothing saved)')
  return state, history, wall_before + time.perf_counter() - start


def success_rates(success: np.ndarray, diverged) -> Optional[np.ndarray]:
  """Per member and task the fraction of successful episodes [S, K] from success [S, K, E] (1 / 0 / NaN: not
  reported); NaN where no episode reported or the member diverged; None when no env reports success."""
  reported = np.isfinite(success)
  if not reported.any():
    return None
  rates = np.where(reported.any(-1), np.nansum(success, -1) / np.maximum(reported.sum(-1), 1), np.nan)
  rates[sorted(diverged)] = np.nan
  return rates


def member_history(history: List[dict], m: int) -> List[dict]:
  """Member m's evaluation history: entries with 'returns' [K][E]."""
  return [dict(h, returns=h['returns'][m], **({'success': h['success'][m]} if 'success' in h else {}))
          for h in history]


def best_returns(history: List[dict]) -> np.ndarray:
  """The paper's metric per member and task [S, K]: the max over evaluations of the average return over episodes
  (a diverged member's evaluations from its divergence on are NaN and left out)."""
  if not history:
    raise ValueError('no evaluation was run')
  means = np.array([np.mean(h['returns'], axis=-1) for h in history])   # [evals, S, K]
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', RuntimeWarning)   # an all-NaN member stays NaN
    return np.nanmax(means, axis=0)
