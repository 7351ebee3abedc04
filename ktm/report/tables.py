"""Per-benchmark summaries of runs (mean ± std over seeds, performance ratios, IQM with bootstrap CIs) and their
markdown tables in the style of the paper's Tables 1-3. A method or task without runs stays missing ('—')."""

import dataclasses
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ktm.report import scores, stats
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
  aggregate: Dict[str, dict]                     # label -> see `aggregate_of`
  paper_returns: Optional[dict]                  # the paper's Table 1 / 2 for this benchmark
  paper_ratios: Optional[dict]                   # the paper's Table 3 for this benchmark
  final_evals: int = FINAL_EVALS                 # evaluations per run averaged in the 'final' scores
  random: Dict[str, float] = dataclasses.field(default_factory=dict)   # task -> uniform-random return (absent: unknown)
  ideal_spread: Dict[str, Stat] = dataclasses.field(default_factory=dict)  # task -> Ideal over teacher seeds
  by_kind: Dict[str, Dict[str, List[Dict[str, float]]]] = dataclasses.field(default_factory=dict)
  # ^ kind ('max', 'checkpoint', 'final') -> label -> one {task: return} per run
  norm_tasks: List[str] = dataclasses.field(default_factory=list)  # tasks with a normalized score

  def ratio_stats(self, kind: str) -> Dict[str, Dict[str, Stat]]:
    """label -> valid task -> (return of `kind` / Ideal) over seeds."""
    valid = [t for t in self.tasks if valid_ideal(self.ideal[t])]
    return {l: {t: stats.mean_std(v) for t, v in scores.per_task(runs, valid, self.ratio_of).items()}
            for l, runs in self.by_kind[kind].items()}

  def ratio_of(self, task: str, x: float) -> float:
    return x / self.ideal[task]

  def normalized_of(self, task: str, x: float) -> float:
    return scores.normalized(x, self.random[task], self.ideal[task])

  def normalized_runs(self, kind: str, label: str) -> List[Dict[str, float]]:
    """One {task: normalized score} per run of `label`, over `norm_tasks`."""
    return [{t: self.normalized_of(t, r[t]) for t in self.norm_tasks if t in r} for r in self.by_kind[kind][label]]


def order_labels(labels: Sequence[str]) -> List[str]:
  known = [l for l in PAPER_ORDER if l in labels]
  return known + [l for l in dict.fromkeys(labels) if l not in known]


def ideal_returns(runs: Sequence[Run], tasks: Sequence[str]) -> Tuple[Dict[str, Stat], str]:
  """task -> Ideal return (mean, std, n) over the Ideal (teacher) runs' best returns (one per teacher seed);
  without teacher runs, over the distinct teacher returns that the student runs recorded."""
  teachers = [r for r in runs if r.method == 'ideal']
  if teachers:
    return ({t: stats.mean_std([r.returns.get(t) for r in teachers]) for t in tasks},
            f'mean best return of the {len(teachers)} Ideal (teacher) run(s)')
  recorded = {t: sorted({r.teacher_returns[t] for r in runs if t in r.teacher_returns}) for t in tasks}
  return ({t: stats.mean_std(v) for t, v in recorded.items()},
          "the teacher_return recorded in the student runs' results.json (no teacher run given)")


def valid_ideal(value: float) -> bool:
  """Ratios are only meaningful against a positive Ideal return."""
  return bool(np.isfinite(value) and value > 0)


def aggregate_of(s: BenchmarkSummary, label: str, reps: int, seed: int) -> dict:
  """runs; tasks / valid_tasks (with a ratio); norm_tasks; '<kind>_ratio' = mean over tasks of the per-task mean
  ratio of that kind of score (kind 'max' is also 'mean_ratio'); 'iqm', 'ci_low', 'ci_high' = IQM of the pooled
  (run, task) normalized max scores with its stratified-bootstrap CI; 'iqm_<kind>' = [IQM, low, high] per kind."""
  valid = [t for t in s.tasks if valid_ideal(s.ideal[t])]
  agg = dict(runs=len(s.runs[label]), valid_tasks=len(valid), norm_tasks=len(s.norm_tasks))
  for kind in scores.KINDS:
    per_task = {t: v for t, v in scores.per_task(s.by_kind[kind][label], valid, s.ratio_of).items() if v}
    agg[f'{kind}_ratio'] = float(np.mean([np.mean(v) for v in per_task.values()])) if per_task else float('nan')
    if kind == 'max':
      agg['tasks'] = len(per_task)
    normed = [v for v in scores.per_task(s.normalized_runs(kind, label), s.norm_tasks).values() if v]
    agg[f'iqm_{kind}'] = list(stats.iqm_with_ci(normed, reps, seed)) if normed else [float('nan')] * 3
  agg['mean_ratio'] = agg['max_ratio']
  agg['iqm'], agg['ci_low'], agg['ci_high'] = agg['iqm_max']
  return agg


def summarize(runs: Sequence[Run], benchmark: str, paper: dict, reps: int = 2000, seed: int = 0,
              final_evals: int = FINAL_EVALS, random: Optional[Dict[str, float]] = None) -> BenchmarkSummary:
  """Tables' numbers for the runs of `benchmark`; `random`: task -> the uniform-random policy's return (tasks
  without one get no normalized score)."""
  runs = [r for r in runs if r.benchmark == benchmark]
  paper_returns, paper_ratios = paper_table(paper, benchmark, 'return'), paper_table(paper, benchmark, 'ratio')
  seen = [t for r in runs for t in list(r.returns) + list(r.curves)]
  paper_tasks = list((paper_returns or paper_ratios or {}).get('task_labels', {}))
  tasks = paper_tasks + [t for t in dict.fromkeys(seen) if t not in paper_tasks]
  by_label: Dict[str, List[Run]] = {}
  for r in runs:
    by_label.setdefault(r.label, []).append(r)
  labels = order_labels(list(by_label))
  ideal_spread, ideal_source = ideal_returns(runs, tasks)
  ideal = {t: v[0] for t, v in ideal_spread.items()}
  random = {t: float(v) for t, v in (random or {}).items() if t in tasks}
  valid = [t for t in tasks if valid_ideal(ideal[t])]
  norm_tasks = [t for t in valid if t in random and ideal[t] > random[t]]
  returns = {l: {t: stats.mean_std([r.returns.get(t) for r in by_label[l]]) for t in tasks} for l in labels}
  by_kind = {k: scores.per_run({l: by_label[l] for l in labels}, k, tasks, ideal, final_evals, valid)
             for k in scores.KINDS}
  s = BenchmarkSummary(benchmark, tasks, labels, by_label, returns, ideal, ideal_source, {}, {}, paper_returns,
                       paper_ratios, final_evals, random, ideal_spread, by_kind, norm_tasks)
  s = dataclasses.replace(s, ratios=s.ratio_stats('max'))
  return dataclasses.replace(s, aggregate={l: aggregate_of(s, l, reps, seed) for l in labels})


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


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
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
  return markdown(header, rows)


def success_table(s: BenchmarkSummary) -> Optional[str]:
  """Tasks x methods, mean ± std over seeds of the final evaluation's success rate (info['success'] at any step of
  an episode, the Meta-World protocol), for tasks whose envs report it; None when no run has one."""
  tasks = [t for t in s.tasks if any(t in r.success for runs in s.runs.values() for r in runs)]
  if not tasks:
    return None
  rows = [[t] + [fmt_stat(stats.mean_std([r.success.get(t) for r in s.runs[l]]), 2, len(s.runs[l]))
                 for l in s.labels] for t in tasks]
  return markdown(['Task'] + s.labels, rows)


def ratio_labels(s: BenchmarkSummary) -> List[str]:
  paper = list(s.paper_ratios['methods']) if s.paper_ratios else []
  return order_labels([l for l in s.labels if l == 'KTM' or l in ABLATIONS or l.startswith('KTM ')] + paper)


def ratio_table(s: BenchmarkSummary, kind: str = 'max') -> str:
  """Table 3 style: performance ratio (method's score of `kind` / Ideal) per task for KTM and its ablations, with an
  Average row (mean over tasks of the per-task mean ratio); the paper's columns beside kind 'max' only."""
  labels = ratio_labels(s)
  paper = set(s.paper_ratios['methods']) if s.paper_ratios and kind == 'max' else set()
  ratios = s.ratios if kind == 'max' else s.ratio_stats(kind)
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
        row.append(fmt_stat(ratios[l][t], 3, len(s.runs[l])) if l in ratios else MISSING)
      if l in paper:
        row.append(fmt_value(_paper_value(s.paper_ratios, l, t), 4))
    rows.append(row)
  row = ['Average']
  for l in labels:
    row.append(_average_cell(s, l, kind))
    if l in paper:
      row.append(fmt_value(paper_mean_ratio(s.paper_ratios, l), 4))
  rows.append(row)
  return markdown(header, rows)


def _average_cell(s: BenchmarkSummary, label: str, kind: str = 'max') -> str:
  if label not in s.aggregate or s.aggregate[label]['tasks'] == 0:
    return MISSING
  agg = s.aggregate[label]
  tasks = '' if agg['tasks'] == agg['valid_tasks'] else f' ({agg["tasks"]}/{agg["valid_tasks"]} tasks)'
  return fmt_value(agg[f'{kind}_ratio'], 3) + tasks


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


def _iqm_cell(triple) -> str:
  point, low, high = triple
  return MISSING if not math.isfinite(point) else f'{point:.3f} [{low:.3f}, {high:.3f}]'


def aggregate_table(s: BenchmarkSummary) -> str:
  """One row per method: seeds, tasks covered, the mean performance ratio of each kind of score (the paper's
  stitched max per task, the best single checkpoint, the final evaluations), the paper's mean ratio, and the IQM of
  the random-normalized scores [95% CI] of each kind."""
  kinds = [('max', 'max per task'), ('checkpoint', 'best checkpoint'), ('final', f'final (last {s.final_evals})')]
  header = (['Method', 'runs', 'tasks'] + [f'mean ratio, {name}' for _, name in kinds] + ['paper mean ratio']
            + [f'IQM normalized, {name} [95% CI]' for _, name in kinds])
  paper_methods = list(s.paper_returns['methods']) if s.paper_returns else []
  rows = []
  for l in order_labels(s.labels + paper_methods):
    paper = paper_mean_ratio(s.paper_returns, l)
    if paper is None:
      paper = paper_mean_ratio(s.paper_ratios, l)
    if l not in s.aggregate or s.aggregate[l]['tasks'] == 0:
      rows.append([l, str(len(s.runs.get(l, []))), MISSING] + [MISSING] * 3 + [fmt_value(paper, 3)] + [MISSING] * 3)
      continue
    a = s.aggregate[l]
    rows.append([l, str(a['runs']), f'{a["tasks"]}/{a["valid_tasks"]}']
                + [fmt_value(a[f'{k}_ratio'], 3) for k, _ in kinds] + [fmt_value(paper, 3)]
                + [_iqm_cell(a[f'iqm_{k}']) for k, _ in kinds])
  return markdown(header, rows)


def clean(x):
  """x with every non-finite float (nested in dicts, lists, tuples) replaced by None: plain JSON."""
  if isinstance(x, float):
    return x if math.isfinite(x) else None
  if isinstance(x, dict):
    return {k: clean(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [clean(v) for v in x]
  return x


def to_json(s: BenchmarkSummary) -> dict:
  """The summary's numbers as plain JSON (nan -> None)."""
  stat = lambda st: dict(mean=st[0], std=st[1], n=st[2])
  return clean(dict(
      benchmark=s.benchmark, tasks=s.tasks, labels=s.labels, ideal=s.ideal, ideal_source=s.ideal_source,
      final_evals=s.final_evals,
      runs={l: [dict(path=r.path, seed=r.seed, complete=r.complete, best_checkpoint=scores.best_checkpoint(
          r, [t for t in s.tasks if valid_ideal(s.ideal[t])], s.ideal)) for r in rs] for l, rs in s.runs.items()},
      returns={l: {t: stat(v) for t, v in d.items()} for l, d in s.returns.items()},
      ratios={k: {l: {t: stat(v) for t, v in d.items()} for l, d in s.ratio_stats(k).items()} for k in scores.KINDS},
      aggregate=s.aggregate))

