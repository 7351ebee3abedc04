"""ONE multi-task training loop for every method: compiled chunks inside, a host loop outside.

Compiled (one `jit` per chunk kind, the run state donated):
  offpolicy_chunk  collect `n` epochs of env steps with the method's exploration into the replay (in place), then
                   n * updates_per_epoch method updates, each on one minibatch per task read from the replay
  onpolicy_chunk   the method's own rollouts and updates (A2C-MT)
  evaluate         deterministic returns [K, E] of the method's policy
Host (`train`): stages in order, chunk boundaries at evaluations, checkpoints and stage ends (derived from the epoch
counters alone, so a resumed run takes exactly the chunks of an uninterrupted one: bit-identical on CPU), a NaN/Inf
guard after every chunk, SIGTERM / SIGINT saving a checkpoint at the next chunk boundary, resume from the newest
valid checkpoint.
"""

import dataclasses
import functools
import os
import signal
import time
from typing import Any, Callable, List, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from ktm import checkpoint, networks, replay, rollout, validate
from ktm.envs import EnvState, Suite
from ktm.methods.base import Method, Stage


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """What the loop does around the method's updates; shared by every method."""
  eval_every: int = 5_000          # epochs between evaluations (counted within each stage)
  eval_episodes: int = 10          # deterministic episodes per task, run in parallel
  checkpoint_every: int = 50_000   # epochs between checkpoints (counted over all stages)
  num_envs: int = 1                # parallel envs per task
  seed: int = 0                    # seeds networks, exploration, envs and evaluation

  RANGES = dict(eval_every=validate.AT_LEAST_1, eval_episodes=validate.AT_LEAST_1,
                checkpoint_every=validate.AT_LEAST_1, num_envs=validate.AT_LEAST_1, seed=validate.NON_NEGATIVE_INT)

  def __post_init__(self):
    validate.check(self, self.RANGES)


@flax.struct.dataclass
class RunState:
  """Everything a run carries between chunks (and checkpoints)."""
  learner: Any                          # the method's state
  buffer: Optional[replay.ReplayBuffer]  # online replay [K, capacity] (None for on-policy methods)
  env: EnvState                         # [K, E]
  key: jax.Array
  stage: jnp.ndarray                    # int32 index into method.stages(); len(stages) when done
  epoch: jnp.ndarray                    # int32 epochs done in the current stage


class TrainingDiverged(ValueError):
  """A NaN or Inf appeared in the method's parameters or losses."""


class Interrupted(Exception):
  """SIGTERM or SIGINT arrived; a checkpoint was saved at the chunk boundary (scripts exit with `exit_code`)."""
  exit_code = 130


def init(key: jax.Array, method: Method, suite: Suite) -> RunState:
  """The method's fresh state, an empty replay (if it has one) and reset envs."""
  learner_key, env_key, key = jax.random.split(key, 3)
  capacity = method.replay_capacity
  buffer = replay.init(suite.num_tasks, capacity, suite.obs_size, suite.act_size) if capacity else None
  # Reset through jit: an eagerly reset MJX state shares buffers between its physics data and readouts, which the
  # donating chunks refuse ("donate the same buffer twice").
  return RunState(learner=method.init(learner_key), buffer=buffer, env=jax.jit(suite.reset)(env_key), key=key,
                  stage=jnp.zeros((), jnp.int32), epoch=jnp.zeros((), jnp.int32))


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


@functools.lru_cache(maxsize=None)
def _compiled(fn: Callable, dtype: str, static_argnames: Tuple[str, ...], donate: bool) -> Callable:
  """`fn` jitted with the XLA options its networks' dtype needs (bfloat16 on CPU needs XLA's bf16 dot kernels)."""
  return jax.jit(fn, static_argnames=static_argnames, donate_argnums=0 if donate else (),
                 compiler_options=networks.xla_compiler_options(dtype))


def offpolicy_chunk(state: RunState, aux: Any, method: Method, suite: Suite, stage: int, num_epochs: int,
                    learn: bool) -> Tuple[RunState, dict]:
  """Compiled `_offpolicy_chunk` (the run state donated)."""
  fn = _compiled(_offpolicy_chunk, compute_dtype(method), ('method', 'suite', 'stage', 'num_epochs', 'learn'), True)
  return fn(state, aux, method, suite, stage, num_epochs, learn)


def onpolicy_chunk(state: RunState, aux: Any, method: Method, suite: Suite, num_epochs: int) -> Tuple[RunState, dict]:
  """Compiled `_onpolicy_chunk` (the run state donated)."""
  fn = _compiled(_onpolicy_chunk, compute_dtype(method), ('method', 'suite', 'num_epochs'), True)
  return fn(state, aux, method, suite, num_epochs)


def evaluate(learner: Any, key: jax.Array, method: Method, eval_suite: Suite) -> jnp.ndarray:
  """Deterministic returns [K, E] of the method's policy, one episode per env of `eval_suite` (compiled)."""
  return _compiled(_evaluate, compute_dtype(method), ('method', 'eval_suite'), False)(learner, key, method, eval_suite)


def _offpolicy_chunk(state: RunState, aux: Any, method: Method, suite: Suite, stage: int, num_epochs: int,
                    learn: bool) -> Tuple[RunState, dict]:
  """`num_epochs` epochs of an off-policy stage: env steps first (policy fixed), inserted into the donated replay,
  then (if `learn`) the epochs' updates, which read the replay without copying it."""
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
    source = method.sample_source(stage, buffer, aux)
    updates = num_epochs * spec.updates_per_epoch

    def body(learner, inputs):
      i, sample_key = inputs
      batch = replay.sample(source, sample_key, method.batch_size)
      return method.update(learner, batch, aux, stage, state.epoch + i // spec.updates_per_epoch)

    learner, update_metrics = jax.lax.scan(body, learner, (jnp.arange(updates), jax.random.split(learn_key, updates)))
    metrics.update(_mean_over_scan(update_metrics))
  metrics['finite'] = finite_flag(learner, metrics)
  return RunState(learner=learner, buffer=buffer, env=env, key=key, stage=state.stage,
                  epoch=state.epoch + num_epochs), metrics


def _onpolicy_chunk(state: RunState, aux: Any, method: Method, suite: Suite, num_epochs: int) -> Tuple[RunState, dict]:
  """`num_epochs` epochs of the method's own rollouts and updates."""
  key, chunk_key = jax.random.split(state.key)
  learner, env, metrics = method.onpolicy_chunk(state.learner, state.env, chunk_key, suite, aux, num_epochs)
  metrics = dict(metrics, finite=finite_flag(learner, metrics))
  return state.replace(learner=learner, env=env, key=key, epoch=state.epoch + num_epochs), metrics


def _evaluate(learner: Any, key: jax.Array, method: Method, eval_suite: Suite) -> jnp.ndarray:
  return rollout.evaluate(lambda params, obs, k: method.act(params, obs, k, False), learner, key, eval_suite)


# ---- the host loop ----

def stage_offsets(stages: Tuple[Stage, ...]) -> np.ndarray:
  """Global epoch at which each stage starts, and the total: [S + 1]."""
  return np.cumsum([0] + [s.epochs for s in stages])


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


def advance_stage(state: RunState, method: Method) -> RunState:
  """Moves past finished (or empty) stages, calling the method's `begin_stage` for each stage it enters."""
  stages = method.stages()
  stage, epoch = int(state.stage), int(state.epoch)
  while stage < len(stages) and epoch >= stages[stage].epochs:
    stage, epoch = stage + 1, 0
    learner = method.begin_stage(state.learner, stage) if stage < len(stages) else state.learner
    state = state.replace(learner=learner, stage=jnp.asarray(stage, jnp.int32), epoch=jnp.zeros((), jnp.int32))
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
    """Called after every chunk; `returns` [K, E] after an evaluation, else None."""


def _restore(manager, state):
  """(state, history, wall seconds before, restored global epoch or None) from the newest valid checkpoint."""
  if manager is None or manager.latest_step() is None:
    return state, [], 0.0, None
  state, extra = manager.restore(state)
  return state, extra['history'], extra['wall_seconds'], manager.restored_step


def train(method: Method, suite: Suite, eval_suite: Suite, aux: Any, cfg: LoopConfig,
          workdir: Optional[str] = None, reporter: Optional[Reporter] = None,
          exit_after_checkpoint: Optional[int] = None, on_start: Optional[Callable[[], None]] = None):
  """Runs (or resumes from WORKDIR/checkpoints) all of the method's stages. Returns (final RunState, evaluation
  history, wall seconds).

  History entries: {'stage', 'epoch', 'global_epoch', 'returns': [K][E]}. `on_start()` is called once everything is
  built, right before the first chunk (the run directory's config.json is written there). `exit_after_checkpoint=n`
  exits the process one chunk after the n-th checkpoint of this call (tests use it to simulate a kill).
  Raises TrainingDiverged (nothing saved after the last good checkpoint) or Interrupted (a checkpoint was saved).
  """
  reporter = reporter or Reporter()
  key = jax.random.key(cfg.seed)
  state = init(jax.random.fold_in(key, 0), method, suite)
  eval_key = jax.random.fold_in(key, 1)
  manager = checkpoint.CheckpointManager(os.path.join(workdir, 'checkpoints')) if workdir else None
  try:
    return _train(method, suite, eval_suite, aux, cfg, manager, state, eval_key, reporter, exit_after_checkpoint,
                  on_start)
  finally:
    if manager is not None:
      manager.close()


def _train(method, suite, eval_suite, aux, cfg, manager, state, eval_key, reporter, exit_after_checkpoint,
           on_start):
  stages = method.stages()
  offsets = stage_offsets(stages)
  state, history, wall_before, restored = _restore(manager, state)
  if restored is None:
    state = state.replace(learner=method.begin_stage(state.learner, 0))
  state = advance_stage(state, method)
  reporter.resumed(int(offsets[min(int(state.stage), len(stages))]) + int(state.epoch), restored)
  if on_start is not None:
    on_start()
  start = time.perf_counter()
  saves = 0
  with _StopSignals() as signals:
    while int(state.stage) < len(stages):
      stage, epoch = int(state.stage), int(state.epoch)
      spec = stages[stage]
      n = next_chunk(stages, stage, epoch, cfg)
      if spec.kind == 'onpolicy':
        state, metrics = onpolicy_chunk(state, aux, method, suite, n)
      else:
        state, metrics = offpolicy_chunk(state, aux, method, suite, stage, n, epoch >= spec.random_epochs)
      metrics = jax.device_get(metrics)
      epoch += n
      g = int(offsets[stage]) + epoch
      if not metrics.pop('finite'):
        raise TrainingDiverged(
            f'training diverged (NaN/Inf) in stage {spec.name!r} between epochs {epoch - n} and {epoch} (global '
            f'{g}), task {first_bad_task(metrics, suite.task_names)}; the last good checkpoint is kept and no '
            'results were written')
      returns = None
      if epoch % cfg.eval_every == 0 or epoch == spec.epochs:
        returns = np.asarray(evaluate(state.learner, jax.random.fold_in(eval_key, g), method, eval_suite))
        history.append({'stage': spec.name, 'epoch': epoch, 'global_epoch': g, 'returns': returns.tolist()})
      reporter.chunk(spec.name, g, metrics, returns)
      if exit_after_checkpoint is not None and saves >= exit_after_checkpoint:
        os._exit(3)   # simulated kill: nothing after the last checkpoint is kept
      state = advance_stage(state, method)
      done = int(state.stage) >= len(stages)
      if manager is not None and (g % cfg.checkpoint_every == 0 or done or signals.received):
        manager.save(g, state, {'history': history, 'wall_seconds': wall_before + time.perf_counter() - start})
        saves += 1
      if signals.received and not done:
        raise Interrupted(f'{signals.received} received: stopped at epoch {g:,} with a checkpoint saved; re-run '
                          'the same command to resume' if manager else f'{signals.received} received: stopped at '
                          f'epoch {g:,} (no workdir: nothing saved)')
  return state, history, wall_before + time.perf_counter() - start


def best_returns(history: List[dict]) -> np.ndarray:
  """The paper's metric per task [K]: the max over evaluations of the average return over episodes."""
  if not history:
    raise ValueError('no evaluation was run')
  return np.max([np.mean(h['returns'], axis=1) for h in history], axis=0)
