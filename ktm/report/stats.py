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


def _resample(per_task: Sequence, reps: int, rng: np.random.Generator) -> list:
  """Per task, its run scores [n_t] resampled with replacement: a list of [reps, n_t] arrays."""
  out = []
  for scores in per_task:
    s = np.asarray(scores, dtype=np.float64)
    out.append(s[rng.integers(0, s.size, size=(reps, s.size))])
  return out


def mean_of_task_means(per_task: Sequence) -> float:
  """Mean over tasks of the mean over runs: per_task is a list of [n_t] arrays (one per task)."""
  return float(np.mean([np.mean(np.asarray(s, dtype=np.float64)) for s in per_task]))


def probability_of_improvement(x_per_task: Sequence, y_per_task: Sequence) -> float:
  """P(X > Y) of Agarwal et al. 2021 (rliable's `probability_of_improvement`): the mean over tasks t of
  (1 / (n_t m_t)) sum_i sum_j S(x_ti, y_tj) with S(x, y) = 1 if x > y, 1/2 if x = y, 0 else; x_per_task [n_t] and
  y_per_task [m_t] hold the runs' scores on the same tasks in the same order."""
  return float(np.mean([_pairwise_wins(np.asarray(x, np.float64)[None], np.asarray(y, np.float64)[None])[0]
                        for x, y in zip(x_per_task, y_per_task)]))


def _pairwise_wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """[reps, n], [reps, m] -> [reps]: mean over the n x m pairs of S(x_i, y_j) (1 win, 1/2 tie, 0 loss)."""
  diff = x[:, :, None] - y[:, None, :]
  return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(1, 2))


def compare(x_per_task: Sequence, y_per_task: Sequence, reps: int = 2000, seed: int = 0,
            confidence: float = 0.95) -> dict:
  """X against Y on the same tasks (lists of per-task run-score arrays [n_t], [m_t]).

  Returns {'diff', 'diff_low', 'diff_high', 'poi', 'poi_low', 'poi_high'}: diff = mean over tasks of X's mean over
  runs minus the same for Y; poi = `probability_of_improvement`; the intervals are percentile intervals of a
  stratified bootstrap that resamples X's runs and Y's runs within each task, independently (rliable's
  `get_interval_estimates` over the pair of score matrices).
  """
  rng = np.random.default_rng(seed)
  xs, ys = _resample(x_per_task, reps, rng), _resample(y_per_task, reps, rng)
  diff = np.mean([x.mean(axis=1) - y.mean(axis=1) for x, y in zip(xs, ys)], axis=0)      # [reps]
  poi = np.mean([_pairwise_wins(x, y) for x, y in zip(xs, ys)], axis=0)                   # [reps]
  q = [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2]
  (d_lo, d_hi), (p_lo, p_hi) = np.percentile(diff, q), np.percentile(poi, q)
  return dict(diff=mean_of_task_means(x_per_task) - mean_of_task_means(y_per_task), diff_low=float(d_lo),
              diff_high=float(d_hi), poi=probability_of_improvement(x_per_task, y_per_task), poi_low=float(p_lo),
              poi_high=float(p_hi))
