"""Per-task value scaling for a critic shared by K tasks (issue 24): `value_norm = 'scale'` on the configs of
KTM-DRL / TD3-MT, SAC-MT, SharedNet and G-Surgery.

One critic serves tasks whose values differ ~40x (Benchmark B: Ant against the pendulums), so their squared TD
errors differ ~1600x and the largest task decides where the shared layers go. With 'scale' every task's losses are
divided by the running scale of its own regression targets y_k:

    critic loss_k / s_k^2,   actor loss_k / s_k,   s_k = max(sqrt(E[y_k^2] - E[y_k]^2), MIN_SCALE)

with E[.] exponential moving averages over task k's batches (rate RATE, debiased as Adam's moments are, so the first
batch sets them exactly). The targets are the TD targets online (Eq. 3) and teacher k's twin-Q values offline
(Eq. 1). A task's statistics see only its own targets: scaling one task's rewards changes no other task's weights.

Nothing needs preserving when the statistics move (PopArt's "Pop" step, van Hasselt et al. 2016, Hessel et al.
2019): the critic still outputs values in reward units and the statistics only weight the losses, so no output and
no target depends on them. What this does not do, and PopArt's per-task output heads would, is give the shared
layers unit-scale values to fit: the network itself still spans the tasks' value ranges.
"""

from typing import Any, Tuple

import flax
import jax.numpy as jnp

from ktm import td3

MODES = ('none', 'scale')  # the `value_norm` settings of every method's config ('none': as published)
RATE = 3e-4        # moving-average rate per batch (Hessel et al. 2019's PopArt step size)
MIN_SCALE = 1.0    # in reward units: a task whose targets barely vary (e.g. all ~0 at the start) is not blown up


@flax.struct.dataclass
class Stats:
  """Running target statistics of K tasks (biased moving averages; `count` batches folded in, for debiasing)."""
  mean: jnp.ndarray     # [K]
  second: jnp.ndarray   # [K] moving average of y^2
  count: jnp.ndarray    # [K] int32


@flax.struct.dataclass
class ScaledTD3State(td3.TD3State):
  """A TD3 learner shared by K tasks, with its tasks' target statistics."""
  value_stats: Stats


def init(num_tasks: int) -> Stats:
  zeros = jnp.zeros(num_tasks)
  return Stats(mean=zeros, second=zeros, count=jnp.zeros(num_tasks, jnp.int32))


def with_stats(state: Any, num_tasks: int, scaled_cls=ScaledTD3State) -> Any:
  """`state` (a TD3State, or the learner class `scaled_cls` extends) with fresh statistics for K tasks."""
  fields = [name for name in scaled_cls.__dataclass_fields__ if name != 'value_stats']
  return scaled_cls(**{name: getattr(state, name) for name in fields}, value_stats=init(num_tasks))


def _move(average: jnp.ndarray, batch_value: jnp.ndarray) -> jnp.ndarray:
  return (1.0 - RATE) * average + RATE * batch_value


def update(stats: Stats, task: Any, targets: jnp.ndarray) -> Stats:
  """Folds task `task`'s batch of targets (any shape) into its statistics, the other tasks' unchanged; with
  task None, every task's batch at once (targets [K, ...])."""
  if task is None:
    axes = tuple(range(1, targets.ndim))
    return Stats(mean=_move(stats.mean, jnp.mean(targets, axis=axes)),
                 second=_move(stats.second, jnp.mean(jnp.square(targets), axis=axes)), count=stats.count + 1)
  return Stats(mean=stats.mean.at[task].set(_move(stats.mean[task], jnp.mean(targets))),
               second=stats.second.at[task].set(_move(stats.second[task], jnp.mean(jnp.square(targets)))),
               count=stats.count.at[task].add(1))


def scales(stats: Stats) -> jnp.ndarray:
  """s_k [K]: the debiased standard deviation of each task's targets, at least MIN_SCALE (MIN_SCALE before any
  batch)."""
  debias = -jnp.expm1(stats.count.astype(jnp.float32) * jnp.log1p(-RATE))   # 1 - (1 - RATE)^n, no cancellation
  safe = jnp.where(stats.count > 0, debias, 1.0)
  mean, second = stats.mean / safe, stats.second / safe
  return jnp.maximum(jnp.sqrt(jnp.maximum(second - mean * mean, 0.0)), MIN_SCALE)


def scale(stats: Stats, task: Any) -> jnp.ndarray:
  """s_k of task `task`."""
  return scales(stats)[task]


def fold_in(state: Any, task: Any, targets: jnp.ndarray) -> Tuple[Any, jnp.ndarray, jnp.ndarray, dict]:
  """Folds task `task`'s batch of targets (with task None: every task's, targets [K, ...]) into the learner's
  statistics; returns the learner, the critic and actor loss weights 1 / s_k^2 and 1 / s_k ([K] for task None),
  and metrics ({'value_scale': s_k})."""
  stats = update(state.value_stats, task, targets)
  s = scales(stats) if task is None else scale(stats, task)
  return state.replace(value_stats=stats), 1.0 / jnp.square(s), 1.0 / s, {'value_scale': s}


def task_weights(task: Any) -> td3.LossWeightsFn:
  """`fold_in` for task `task`, as `td3.update`'s `loss_weights` hook (the targets are the TD targets)."""
  return lambda state, targets: fold_in(state, task, targets)
