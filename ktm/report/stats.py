"""Statistics for the report: mean ± std over seeds, the interquartile mean (IQM) and percentile confidence
intervals from a stratified bootstrap (Agarwal et al., "Deep RL at the Edge of the Statistical Precipice", 2021).

Written here with numpy rather than taken from the `rliable` package: rliable 1.2.0 installs with this project's
pins but fails at import (its dependency arch 7.2.0 breaks on pandas 3.1: `deprecate_kwarg() missing 1 required
positional argument`). The definitions follow rliable's: IQM = `scipy.stats.trim_mean(scores, 0.25)` over all
scores pooled (cut int(0.25 n) from each end), and the stratified bootstrap resamples the runs of each task with
replacement, independently per task.
"""

from typing import Callable, Optional, Sequence, Tuple

import numpy as np


def mean_std(values: Sequence[float]) -> Tuple[float, float, int]:
  """(mean, sample std with ddof=1, n) of the finite values; std is nan for n < 2, both nan for n = 0."""
  x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
  if x.size == 0:
    return float('nan'), float('nan'), 0
  return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else float('nan'), int(x.size)


def trimmed_mean(scores: np.ndarray, cut: float = 0.25, axis: int = -1) -> np.ndarray:
  """Mean of the values left after dropping int(cut * n) of the smallest and of the largest along `axis`
  (scipy.stats.trim_mean's rule); [..., n] -> [...]."""
  x = np.sort(np.asarray(scores, dtype=np.float64), axis=axis)
  n = x.shape[axis]
  k = int(cut * n)
  if n - 2 * k <= 0:
    raise ValueError(f'trimming {k} from each end of {n} values leaves nothing')
  return np.take(x, np.arange(k, n - k), axis=axis).mean(axis=axis)


def iqm(scores) -> float:
  """Interquartile mean of all scores pooled, any shape (the middle 50%): rliable's `aggregate_iqm`."""
  return float(trimmed_mean(np.ravel(np.asarray(scores, dtype=np.float64)), 0.25))


def stratified_bootstrap(per_task: Sequence, statistic: Callable[[np.ndarray], np.ndarray], reps: int = 2000,
                         seed: int = 0) -> np.ndarray:
  """Bootstrap replicates of `statistic` under resampling of runs within each task.

  Args:
    per_task: one array of run scores [n_t, ...] per task (tasks may have different numbers of runs n_t >= 1;
      trailing axes, e.g. evaluation steps [n_t, T], are resampled together: a run is drawn with all its values).
    statistic: maps pooled scores [reps, N, ...] to [reps, ...] (N = sum of n_t).
    reps: number of bootstrap replicates.
    seed: seed of the numpy Generator (the same seed gives the same replicates).
  Returns:
    [reps, ...] replicate values.
  """
  rng = np.random.default_rng(seed)
  columns = []
  for scores in per_task:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 0 or s.shape[0] == 0:
      raise ValueError('every task needs at least one run score')
    columns.append(s[rng.integers(0, s.shape[0], size=(reps, s.shape[0]))])
  return statistic(np.concatenate(columns, axis=1))


def iqm_with_ci(per_task: Sequence, reps: int = 2000, seed: int = 0, confidence: float = 0.95):
  """(IQM, CI low, CI high): the IQM of all scores pooled and its percentile interval from a stratified bootstrap
  (rliable's `get_interval_estimates` with method='percentile'). Floats for per_task arrays [n_t]; arrays [T] for
  per_task arrays [n_t, T] (one IQM per column, e.g. per evaluation step, from the same resampled runs)."""
  arrays = [np.asarray(s, dtype=np.float64) for s in per_task]
  pooled = np.concatenate(arrays, axis=0)                              # [N, ...]
  point = trimmed_mean(np.moveaxis(pooled, 0, -1), 0.25)
  replicates = stratified_bootstrap(arrays, lambda x: trimmed_mean(np.moveaxis(x, 1, -1), 0.25), reps, seed)
  lo, hi = np.percentile(replicates, [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2], axis=0)
  if pooled.ndim == 1:
    return float(point), float(lo), float(hi)
  return point, lo, hi


def finite(values: Sequence[Optional[float]]) -> list:
  """The values that are neither None nor nan/inf."""
  return [float(v) for v in values if v is not None and np.isfinite(v)]
