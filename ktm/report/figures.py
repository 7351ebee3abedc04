"""Figures 2-3 style learning curves (per task: average evaluation return vs env steps per task, one line per
method, mean ± std over seeds shaded) and the aggregate curve (IQM of random-normalized scores with its 95%
bootstrap CI), Table 2's methods and Table 3's ablations in separate figures.

x axis 'env_steps' (default): env steps per task (`budget.env_steps`); KTM-DRL's offline epochs, which take no env
step, are drawn at x <= 0 (x = epoch - offline_epochs) in a shaded band. x axis 'epochs': the logged step (global
epoch; env steps for teachers).
"""

import os
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ktm.report import budget, stats
from ktm.report.runs import ABLATIONS, CORRUPTED, Run
from ktm.report.tables import BenchmarkSummary

X_LABELS = {'env_steps': 'env steps per task (x <= 0, shaded: offline epochs, no env step)',
            'epochs': 'step (epochs; env steps for teachers)'}


def file_name(benchmark: str, what: str) -> str:
  """'fig_<benchmark>_<what>.png' with the benchmark made a file name: a user suite 'DIR/name.py:SUITE' becomes
  'name_SUITE', any other character that is not a letter, digit, '.', '_' or '-' an underscore."""
  if ':' in benchmark:
    path, _, suite = benchmark.rpartition(':')
    benchmark = f'{os.path.splitext(os.path.basename(path))[0]}_{suite}'
  return f'fig_{re.sub(r"[^A-Za-z0-9._-]", "_", benchmark)}_{what}.png'


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def curve_x(run: Run, steps: np.ndarray, x_axis: str) -> np.ndarray:
  """A run's logged steps -> the figure's x ('env_steps' or 'epochs')."""
  if x_axis not in X_LABELS:
    raise ValueError(f'x_axis must be one of {sorted(X_LABELS)}, got {x_axis!r}')
  return budget.env_steps(run.config, steps) if x_axis == 'env_steps' else np.asarray(steps)


def aligned(runs: Sequence[Run], task: str, x_axis: str = 'epochs',
            field: str = 'curves') -> Optional[Tuple[np.ndarray, np.ndarray]]:
  """(x [T], values [n_runs, T]) of the runs' `field` curves ('curves': returns, 'trust': teacher trust) at the x
  that every run with a curve for `task` logged; None if no run has one. Runs without the task's curve are left
  out (a curve is never filled in)."""
  curves = [(curve_x(r, getattr(r, field)[task][0], x_axis), getattr(r, field)[task][1]) for r in runs
            if task in getattr(r, field)]
  if not curves:
    return None
  common = curves[0][0]
  for steps, _ in curves[1:]:
    common = np.intersect1d(common, steps)
  if common.size == 0:
    return None
  return common, np.stack([returns[np.searchsorted(steps, common)] for steps, returns in curves])


def iqm_curve(runs: Sequence[Run], tasks: Sequence[str], normalize: Callable[[str, np.ndarray], np.ndarray],
              reps: int = 500, seed: int = 0, x_axis: str = 'epochs'
              ) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
  """(x, IQM, CI low, CI high) of the normalized scores normalize(task, returns) over `tasks` and the runs with
  their curve, at the x every such (run, task) curve has; None if there are none."""
  per_task = {t: aligned(runs, t, x_axis) for t in tasks}
  per_task = {t: v for t, v in per_task.items() if v is not None}
  if not per_task:
    return None
  common = None
  for steps, _ in per_task.values():
    common = steps if common is None else np.intersect1d(common, steps)
  if common.size == 0:
    return None
  scores = [normalize(t, values[:, np.searchsorted(steps, common)]) for t, (steps, values) in per_task.items()]
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


def figure_groups(s: BenchmarkSummary) -> List[Tuple[str, List[str]]]:
  """[(name, labels)]: 'table2' (the Ideal, KTM and the baselines: every label that is no ablation) and, when the
  benchmark has ablations, 'table3' (KTM and its ablations), as the paper's Figures 2 and 3; runs with corrupted
  teachers (issue 24) in a figure of their own, 'corrupted', beside TD3-MT (which uses no teacher) if present."""
  corrupted = lambda l: l.endswith(CORRUPTED)
  ablation = lambda l: l in ABLATIONS or (l.startswith('KTM ') and l != 'KTM')
  groups = [('table2', [l for l in s.labels if not ablation(l) and not corrupted(l)])]
  table3 = [l for l in s.labels if (l == 'KTM' or ablation(l)) and not corrupted(l)]
  bad = [l for l in s.labels if corrupted(l)]
  return (groups + ([('table3', table3)] if len(table3) > 1 else [])
          + ([('corrupted', bad + [l for l in s.labels if l == 'TD3-MT'])] if bad else []))


def _mark_offline(ax, s: BenchmarkSummary, labels: Sequence[str], styles: dict, x_axis: str) -> None:
  """env_steps: a shaded band over x <= 0 if a drawn run has an offline stage; epochs: a dotted line per method at
  the start of its online stage. Ticks in thousands ('25k')."""
  from matplotlib.ticker import FuncFormatter  # pylint: disable=import-outside-toplevel
  ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f'{x / 1000:g}k' if x else '0'))
  if x_axis == 'env_steps':
    offline = [budget.offline_epochs(r.config) for l in labels for r in s.runs[l]]
    if max(offline, default=0) > 0:
      ax.axvspan(-max(offline), 0, color='0.85', alpha=0.5, lw=0)
    return
  for label in labels:
    for boundary in offline_end(s.runs[label]):
      ax.axvline(boundary, color=styles[label]['color'], lw=0.8, ls=':')


def plot_returns(s: BenchmarkSummary, path: str, labels: Optional[Sequence[str]] = None,
                 x_axis: str = 'epochs') -> List[str]:
  """One subplot per task, one line per label (default: all); returns the labels drawn (sorted). Writes a PNG."""
  return _plot_per_task(s, path, list(s.labels if labels is None else labels), x_axis, 'curves',
                        'average evaluation return', f'{s.benchmark}: mean ± std over seeds')


def plot_trust(s: BenchmarkSummary, path: str, x_axis: str = 'epochs') -> List[str]:
  """One subplot per task: each teacher's logged trust (`Run.trust`: ktm/trust.py's weights, in [0, 1]) for every
  label that logged it; returns the labels drawn (none: no file written)."""
  labels = [l for l in s.labels if any(r.trust for r in s.runs[l])]
  return _plot_per_task(s, path, labels, x_axis, 'trust', 'teacher trust',
                        f"{s.benchmark}: each teacher's trust, mean ± std over seeds", ylim=(-0.05, 1.05)) \
      if labels else []


def _plot_per_task(s: BenchmarkSummary, path: str, labels: List[str], x_axis: str, field: str, ylabel: str,
                   title: str, ylim: Optional[Tuple[float, float]] = None) -> List[str]:
  """One subplot per task, one line per label of the runs' `field` curves (mean ± std over seeds); a PNG."""
  plt = _pyplot()
  cols = min(4, max(1, len(s.tasks)))
  rows = -(-len(s.tasks) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
  styles, drawn = line_styles(labels), []
  for ax, task in zip(axes.ravel(), s.tasks):
    _mark_offline(ax, s, labels, styles, x_axis)
    for label in labels:
      curve = aligned(s.runs[label], task, x_axis, field)
      if curve is None:
        continue
      steps, values = curve
      mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
      ax.plot(steps, mean, **styles[label], label=f'{label} (n={len(values)})', lw=1.4)
      ax.fill_between(steps, mean - std, mean + std, color=styles[label]['color'], alpha=0.15, lw=0)
      drawn.append(label)
    ax.set_title(task, fontsize=10)
    if ylim:
      ax.set_ylim(*ylim)
    ax.set_xlabel(X_LABELS[x_axis], fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  for ax in axes.ravel()[len(s.tasks):]:
    ax.axis('off')
  handles = {h.get_label(): h for ax in axes.ravel() for h in ax.get_lines() if not h.get_label().startswith('_')}
  fig.legend(list(handles.values()), list(handles), loc='lower center', ncol=min(7, max(1, len(handles))),
             fontsize=8, frameon=False)
  fig.suptitle(title, fontsize=11)
  fig.tight_layout(rect=(0, 0.07, 1, 0.97))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return sorted(set(drawn))


def plot_iqm(s: BenchmarkSummary, path: str, reps: int = 500, seed: int = 0, labels: Optional[Sequence[str]] = None,
             x_axis: str = 'epochs') -> List[str]:
  """IQM of random-normalized scores vs x per label (default: all) with its 95% stratified-bootstrap CI band;
  returns the labels drawn (sorted). Writes a PNG to `path`; the legend sits right of the axes."""
  plt = _pyplot()
  labels = list(s.labels if labels is None else labels)
  fig, ax = plt.subplots(figsize=(7.6, 4.2))
  styles, drawn = line_styles(labels), []
  _mark_offline(ax, s, labels, styles, x_axis)
  for label in labels:
    curve = iqm_curve(s.runs[label], s.norm_tasks, s.normalized_of, reps, seed, x_axis)
    if curve is None:
      continue
    steps, point, low, high = curve
    ax.plot(steps, point, **styles[label], label=label, lw=1.4)
    ax.fill_between(steps, low, high, color=styles[label]['color'], alpha=0.15, lw=0)
    drawn.append(label)
  ax.axhline(1.0, color='k', lw=0.8, ls=':')
  ax.set_xlabel(X_LABELS[x_axis], fontsize=8)
  ax.set_ylabel('IQM of (return - random) / (Ideal - random)', fontsize=8)
  ax.set_title(f'{s.benchmark}: IQM normalized score, 95% stratified-bootstrap CI', fontsize=10)
  ax.grid(alpha=0.3)
  if drawn:
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0), frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return sorted(drawn)

