"""Figures 2-3 style learning curves (per task: average evaluation return vs step, one line per method, mean ±
std over seeds shaded) and the aggregate curve (IQM of normalized scores vs step with its 95% bootstrap CI)."""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ktm.report import stats
from ktm.report.runs import Run
from ktm.report.tables import BenchmarkSummary, valid_ideal


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def aligned(runs: Sequence[Run], task: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
  """(steps [T], returns [n_runs, T]) at the steps that every run with a curve for `task` evaluated; None if no
  run has one. Runs without the task's curve are left out (a curve is never filled in)."""
  curves = [r.curves[task] for r in runs if task in r.curves]
  if not curves:
    return None
  common = curves[0][0]
  for steps, _ in curves[1:]:
    common = np.intersect1d(common, steps)
  if common.size == 0:
    return None
  return common, np.stack([returns[np.searchsorted(steps, common)] for steps, returns in curves])


def iqm_curve(runs: Sequence[Run], tasks: Sequence[str], ideal: Dict[str, float], reps: int = 500,
              seed: int = 0) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
  """(steps, IQM, CI low, CI high) of the normalized scores (return / Ideal) over the tasks with a positive Ideal
  and the runs with their curve, at the steps every such (run, task) curve has; None if there are none."""
  per_task = {t: aligned(runs, t) for t in tasks if valid_ideal(ideal[t])}
  per_task = {t: v for t, v in per_task.items() if v is not None}
  if not per_task:
    return None
  common = None
  for steps, _ in per_task.values():
    common = steps if common is None else np.intersect1d(common, steps)
  if common.size == 0:
    return None
  scores = [values[:, np.searchsorted(steps, common)] / ideal[t] for t, (steps, values) in per_task.items()]
  point, low, high = stats.iqm_with_ci(scores, reps, seed)
  return common, point, low, high


def offline_end(runs: Sequence[Run]) -> List[int]:
  """The step where KTM-DRL's online stage starts, if all `runs` share one and have both stages."""
  ends = {r.config.get('ktm', {}).get('offline_epochs') for r in runs if r.method == 'ktm'}
  online = {r.config.get('ktm', {}).get('online_epochs') for r in runs if r.method == 'ktm'}
  return [int(e) for e in ends if e] if len(ends) == 1 and all(online) else []


def line_styles(labels: Sequence[str]) -> Dict[str, Dict[str, str]]:
  """{label: {'color', 'ls'}}, a different pair for each of up to 30 labels: the 10 default colors solid, then
  dashed, then dash-dotted (':' is kept for the online-stage boundary)."""
  dashes = ('-', '--', '-.')
  return {l: dict(color=f'C{i % 10}', ls=dashes[(i // 10) % len(dashes)]) for i, l in enumerate(labels)}


def plot_returns(s: BenchmarkSummary, path: str) -> List[str]:
  """One subplot per task; returns the labels drawn (sorted). Writes a PNG to `path`."""
  plt = _pyplot()
  cols = min(4, max(1, len(s.tasks)))
  rows = -(-len(s.tasks) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
  styles, drawn = line_styles(s.labels), []
  for ax, task in zip(axes.ravel(), s.tasks):
    for label in s.labels:
      curve = aligned(s.runs[label], task)
      if curve is None:
        continue
      steps, values = curve
      mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
      ax.plot(steps, mean, **styles[label], label=f'{label} (n={len(values)})', lw=1.4)
      ax.fill_between(steps, mean - std, mean + std, color=styles[label]['color'], alpha=0.2, lw=0)
      for boundary in offline_end(s.runs[label]):
        ax.axvline(boundary, color=styles[label]['color'], lw=0.8, ls=':')
      drawn.append(label)
    ax.set_title(task, fontsize=10)
    ax.set_xlabel('step (epochs; env steps for teachers)', fontsize=8)
    ax.set_ylabel('average evaluation return', fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  for ax in axes.ravel()[len(s.tasks):]:
    ax.axis('off')
  handles = {h.get_label(): h for ax in axes.ravel() for h in ax.get_lines() if not h.get_label().startswith('_')}
  fig.legend(list(handles.values()), list(handles), loc='lower center', ncol=min(8, max(1, len(handles))),
             fontsize=8, frameon=False)
  fig.suptitle(f'{s.benchmark}: mean ± std over seeds (dotted: start of the online stage)', fontsize=11)
  fig.tight_layout(rect=(0, 0.06, 1, 0.97))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return sorted(set(drawn))


def plot_iqm(s: BenchmarkSummary, path: str, reps: int = 500, seed: int = 0) -> List[str]:
  """IQM of normalized scores vs step per method with its 95% stratified-bootstrap CI band; returns the labels
  drawn (sorted). Writes a PNG to `path`."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  styles, drawn = line_styles(s.labels), []
  for label in s.labels:
    curve = iqm_curve(s.runs[label], s.tasks, s.ideal, reps, seed)
    if curve is None:
      continue
    steps, point, low, high = curve
    ax.plot(steps, point, **styles[label], label=label, lw=1.4)
    ax.fill_between(steps, low, high, color=styles[label]['color'], alpha=0.2, lw=0)
    drawn.append(label)
  ax.axhline(1.0, color='k', lw=0.8, ls=':')
  ax.set_xlabel('step (epochs; env steps for teachers)')
  ax.set_ylabel('IQM of return / Ideal return')
  ax.set_title(f'{s.benchmark}: IQM normalized score, 95% stratified-bootstrap CI', fontsize=10)
  ax.grid(alpha=0.3)
  if drawn:
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return sorted(drawn)
