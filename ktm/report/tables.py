"""Per-benchmark summaries of runs (mean ± std over seeds, performance ratios, IQM with bootstrap CIs) and their
markdown tables in the style of the paper's Tables 1-3. A method or task without runs stays missing ('—')."""

import dataclasses
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ktm.report import stats
from ktm.report.runs import ABLATIONS, Run

MISSING = '—'
PAPER_ORDER = ('KTM', 'Ideal', 'TD3-MT', 'SAC-MT', 'SharedNet', 'G-Surgery', 'A2C-MT') + ABLATIONS
Stat = Tuple[float, float, int]        # (mean, std over seeds, number of seeds)
FINAL_EVALS = 5   # the final ratio averages each run's last evaluations: the paper's max hides a run that collapsed


def load_paper(path: Optional[str] = None) -> dict:
  """The paper's Tables 1-3 (paper_results.json next to this module)."""
  with open(path or os.path.join(os.path.dirname(__file__), 'paper_results.json')) as f:
    return json.load(f)


def paper_table(paper: dict, benchmark: str, kind: str) -> Optional[dict]:
  """The paper's table of `kind` ('return' or 'ratio') for `benchmark`, or None."""
  return next((t for t in paper['tables'].values() if t['benchmark'] == benchmark and t['kind'] == kind), None)


@dataclasses.dataclass(frozen=True)
class BenchmarkSummary:
  """Everything the tables and figures of one benchmark need."""
  benchmark: str
  tasks: List[str]
  labels: List[str]                              # methods with runs, in the paper's order, then the others
  runs: Dict[str, List[Run]]                     # label -> its runs (seeds)
  returns: Dict[str, Dict[str, Stat]]            # label -> task -> paper metric over seeds
  ideal: Dict[str, float]                        # task -> Ideal return (nan: unknown)
  ideal_source: str
  ratios: Dict[str, Dict[str, Stat]]             # label -> task -> (return / Ideal) over seeds; valid tasks only
  aggregate: Dict[str, dict]                     # label -> mean_ratio, final_ratio, tasks, iqm, ci_low, ci_high
  paper_returns: Optional[dict]                  # the paper's Table 1 / 2 for this benchmark
  paper_ratios: Optional[dict]                   # the paper's Table 3 for this benchmark
  final_evals: int = FINAL_EVALS                 # evaluations per run averaged in aggregate['final_ratio']


def order_labels(labels: Sequence[str]) -> List[str]:
  known = [l for l in PAPER_ORDER if l in labels]
  return known + [l for l in dict.fromkeys(labels) if l not in known]


def ideal_returns(runs: Sequence[Run], tasks: Sequence[str]) -> Tuple[Dict[str, float], str]:
  """task -> Ideal return: the mean over Ideal (teacher) runs of their best return; without teacher runs, the
  mean of the distinct teacher returns that the student runs recorded."""
  teachers = [r for r in runs if r.method == 'ideal']
  if teachers:
    return ({t: stats.mean_std([r.returns.get(t) for r in teachers])[0] for t in tasks},
            f'mean best return of the {len(teachers)} Ideal (teacher) run(s)')
  recorded = {t: sorted({r.teacher_returns[t] for r in runs if t in r.teacher_returns}) for t in tasks}
  return ({t: float(np.mean(v)) if v else float('nan') for t, v in recorded.items()},
          "the teacher_return recorded in the student runs' results.json (no teacher run given)")


def valid_ideal(value: float) -> bool:
  """Ratios and normalized scores are only meaningful against a positive Ideal return."""
  return bool(np.isfinite(value) and value > 0)


def final_ratios(runs: Sequence[Run], ideal: Dict[str, float], tasks: Sequence[str],
                 final_evals: int = FINAL_EVALS) -> Dict[str, List[float]]:
  """task -> per run (that has the task's curve): the mean of its last `final_evals` evaluation returns / Ideal."""
  return {t: [float(np.mean(r.curves[t][1][-final_evals:])) / ideal[t] for r in runs if t in r.curves]
          for t in tasks}


def summarize(runs: Sequence[Run], benchmark: str, paper: dict, reps: int = 2000, seed: int = 0,
              final_evals: int = FINAL_EVALS) -> BenchmarkSummary:
  """Tables' numbers for the runs of `benchmark`."""
  runs = [r for r in runs if r.benchmark == benchmark]
  paper_returns, paper_ratios = paper_table(paper, benchmark, 'return'), paper_table(paper, benchmark, 'ratio')
  seen = [t for r in runs for t in list(r.returns) + list(r.curves)]
  paper_tasks = list((paper_returns or paper_ratios or {}).get('task_labels', {}))
  tasks = paper_tasks + [t for t in dict.fromkeys(seen) if t not in paper_tasks]
  by_label: Dict[str, List[Run]] = {}
  for r in runs:
    by_label.setdefault(r.label, []).append(r)
  labels = order_labels(list(by_label))
  ideal, ideal_source = ideal_returns(runs, tasks)
  returns = {l: {t: stats.mean_std([r.returns.get(t) for r in by_label[l]]) for t in tasks} for l in labels}
  valid = [t for t in tasks if valid_ideal(ideal[t])]
  per_run_ratio = {l: {t: [r.returns[t] / ideal[t] for r in by_label[l] if t in r.returns] for t in valid}
                   for l in labels}
  ratios = {l: {t: stats.mean_std(per_run_ratio[l][t]) for t in valid} for l in labels}
  aggregate = {}
  for l in labels:
    scored = {t: v for t, v in per_run_ratio[l].items() if v}
    finals = [np.mean(v) for v in final_ratios(by_label[l], ideal, valid, final_evals).values() if v]
    agg = dict(runs=len(by_label[l]), tasks=len(scored), valid_tasks=len(valid), mean_ratio=float('nan'),
               final_ratio=float(np.mean(finals)) if finals else float('nan'),
               iqm=float('nan'), ci_low=float('nan'), ci_high=float('nan'))
    if scored:
      agg['mean_ratio'] = float(np.mean([ratios[l][t][0] for t in scored]))
      agg['iqm'], agg['ci_low'], agg['ci_high'] = stats.iqm_with_ci(list(scored.values()), reps, seed)
    aggregate[l] = agg
  return BenchmarkSummary(benchmark, tasks, labels, by_label, returns, ideal, ideal_source, ratios, aggregate,
                          paper_returns, paper_ratios, final_evals)


def fmt_stat(stat: Stat, digits: int, runs: int) -> str:
  """'mean ± std', 'mean' for one seed, '—' for none; '(n=k)' when fewer seeds than the method has have it."""
  mean, std, n = stat
  if n == 0:
    return MISSING
  text = f'{mean:.{digits}f}' + (f' ± {std:.{digits}f}' if n > 1 else '')
  return text + (f' (n={n})' if n < runs else '')


def fmt_value(value, digits: int) -> str:
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return MISSING
  return f'{value:.{digits}f}'


def _paper_value(table: Optional[dict], label: str, task: str):
  return None if table is None else table['methods'].get(label, {}).get(task)


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  cell = lambda text: str(text).replace('|', '\\|').replace('\n', ' ')
  lines = ['| ' + ' | '.join(map(cell, header)) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(map(cell, row)) + ' |' for row in rows]
  return '\n'.join(lines)


def returns_table(s: BenchmarkSummary) -> str:
  """Tables 1-2 style: tasks x methods, mean ± std over seeds of the max average return, the paper's beside."""
  paper_methods = list(s.paper_returns['methods']) if s.paper_returns else []
  labels = order_labels(s.labels + paper_methods)
  header, columns = ['Task'], []
  for l in labels:
    header.append(l)
    columns.append((l, False))
    if l in paper_methods:
      header.append(f'{l} (paper)')
      columns.append((l, True))
  rows = []
  for t in s.tasks:
    row = [t]
    for l, is_paper in columns:
      if is_paper:
        row.append(fmt_value(_paper_value(s.paper_returns, l, t), 0))
      elif l in s.returns:
        row.append(fmt_stat(s.returns[l][t], 1, len(s.runs[l])))
      else:
        row.append(MISSING)
    rows.append(row)
  return _markdown(header, rows)


def ratio_labels(s: BenchmarkSummary) -> List[str]:
  paper = list(s.paper_ratios['methods']) if s.paper_ratios else []
  return order_labels([l for l in s.labels if l == 'KTM' or l in ABLATIONS or l.startswith('KTM ')] + paper)


def ratio_table(s: BenchmarkSummary) -> str:
  """Table 3 style: performance ratio (method / Ideal) per task for KTM and its ablations, with an Average row
  (mean over tasks of the per-task mean ratio)."""
  labels = ratio_labels(s)
  paper = set(s.paper_ratios['methods']) if s.paper_ratios else set()
  header = ['Task']
  for l in labels:
    header += [l] + ([f'{l} (paper)'] if l in paper else [])
  rows = []
  for t in s.tasks:
    row = [t]
    for l in labels:
      if not valid_ideal(s.ideal[t]):
        row.append(f'n/a (Ideal {fmt_value(s.ideal[t], 1)})')
      else:
        row.append(fmt_stat(s.ratios[l][t], 3, len(s.runs[l])) if l in s.ratios else MISSING)
      if l in paper:
        row.append(fmt_value(_paper_value(s.paper_ratios, l, t), 4))
    rows.append(row)
  row = ['Average']
  for l in labels:
    row.append(_average_cell(s, l))
    if l in paper:
      row.append(fmt_value(paper_mean_ratio(s.paper_ratios, l), 4))
  rows.append(row)
  return _markdown(header, rows)


def _average_cell(s: BenchmarkSummary, label: str) -> str:
  if label not in s.aggregate or s.aggregate[label]['tasks'] == 0:
    return MISSING
  agg = s.aggregate[label]
  tasks = '' if agg['tasks'] == agg['valid_tasks'] else f' ({agg["tasks"]}/{agg["valid_tasks"]} tasks)'
  return f'{agg["mean_ratio"]:.3f}{tasks}'


def paper_mean_ratio(table: Optional[dict], label: str, ideal_label: str = 'Ideal') -> Optional[float]:
  """The mean over tasks of the paper's ratio: Table 3's values, or a Table 1-2 return over the paper's Ideal
  (tasks where either is N/A are left out)."""
  if table is None or label not in table['methods']:
    return None
  values = table['methods'][label]
  if table['kind'] == 'ratio':
    ratios = [v for v in values.values() if v is not None]
  else:
    ideal = table['methods'][ideal_label]
    ratios = [v / ideal[t] for t, v in values.items() if v is not None and ideal.get(t)]
  return float(np.mean(ratios)) if ratios else None


def aggregate_table(s: BenchmarkSummary) -> str:
  """One row per method: seeds, tasks covered, mean performance ratio, IQM of normalized scores [95% CI], the
  paper's mean ratio, and the final ratio (the same mean over each run's last evaluations instead of its best)."""
  header = ['Method', 'runs', 'tasks', 'mean ratio', 'IQM normalized score [95% CI]', 'paper mean ratio',
            f'final ratio (last {s.final_evals} evaluations)']
  paper_methods = list(s.paper_returns['methods']) if s.paper_returns else []
  rows = []
  for l in order_labels(s.labels + paper_methods):
    paper = paper_mean_ratio(s.paper_returns, l)
    if paper is None:
      paper = paper_mean_ratio(s.paper_ratios, l)
    if l not in s.aggregate or s.aggregate[l]['tasks'] == 0:
      rows.append([l, str(len(s.runs.get(l, []))), MISSING, MISSING, MISSING, fmt_value(paper, 3), MISSING])
      continue
    a = s.aggregate[l]
    rows.append([l, str(a['runs']), f'{a["tasks"]}/{a["valid_tasks"]}', f'{a["mean_ratio"]:.3f}',
                 f'{a["iqm"]:.3f} [{a["ci_low"]:.3f}, {a["ci_high"]:.3f}]', fmt_value(paper, 3),
                 fmt_value(a['final_ratio'], 3)])
  return _markdown(header, rows)


def to_json(s: BenchmarkSummary) -> dict:
  """The summary's numbers as plain JSON (nan -> None)."""
  def clean(x):
    if isinstance(x, float):
      return x if math.isfinite(x) else None
    if isinstance(x, dict):
      return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
      return [clean(v) for v in x]
    return x
  stat = lambda st: dict(mean=st[0], std=st[1], n=st[2])
  return clean(dict(
      benchmark=s.benchmark, tasks=s.tasks, labels=s.labels, ideal=s.ideal, ideal_source=s.ideal_source,
      final_evals=s.final_evals,
      runs={l: [dict(path=r.path, seed=r.seed, complete=r.complete) for r in rs] for l, rs in s.runs.items()},
      returns={l: {t: stat(v) for t, v in d.items()} for l, d in s.returns.items()},
      ratios={l: {t: stat(v) for t, v in d.items()} for l, d in s.ratios.items()},
      aggregate=s.aggregate))

