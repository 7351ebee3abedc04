"""`write_report`: run directories -> OUT/REPORT.md, OUT/summary.json and the PNG figures."""

import datetime
import json
import os
from typing import List, Optional, Sequence

from ktm.report import figures, tables
from ktm.report.runs import Run, load_runs

BENCHMARK_NAMES = {'halfcheetah_group': 'Benchmark A (halfcheetah_group)',
                   'benchmark_b': 'Benchmark B (benchmark_b)'}
SETTINGS = ('preset', 'hidden_sizes', 'steps', 'updates_per_step', 'offline_epochs', 'online_epochs', 'alpha',
            'beta', 'replay', 'combine', 'target_noise', 'online_start_steps')
SECTIONS = ('td3', 'cfg', 'train', 'schedule', 'ktm', 'loop')


def settings_summary(config: dict) -> str:
  """The key settings of a run's config (any of its sections), e.g. 'hidden_sizes=[64, 64], steps=15000'."""
  found = {k: config[k] for k in SETTINGS if k in config and not isinstance(config[k], dict)}
  for section in SECTIONS:
    if isinstance(config.get(section), dict):
      found.update({k: v for k, v in config[section].items() if k in SETTINGS and k not in found})
  return ', '.join(f'{k}={found[k]}' for k in SETTINGS if k in found)


def runs_table(runs: Sequence[Run]) -> str:
  header = ['label', 'method', 'benchmark', 'seed', 'run', 'status', 'wall', 'command or settings', 'machine']
  rows = []
  for r in runs:
    wall = '—' if r.wall_seconds is None else f'{r.wall_seconds / 60:.1f} min'
    status = 'done' if r.complete else 'no results.json: from metrics.jsonl'
    what = f'`{r.command}`' if r.command else settings_summary(r.config)
    rows.append([r.label, r.method, r.benchmark, str(r.seed), f'`{r.path}`', status, wall,
                 what + (f'; swept {r.swept}' if r.swept else ''), r.machine or '—'])
  return tables._markdown(header, rows)  # pylint: disable=protected-access


NOTES = """\
## How the numbers are made
- Per run and task, the paper's metric: the max over evaluations of the average return of the evaluation
  episodes (results.json's `student_return` / `best_return`; read from metrics.jsonl for a run that has not
  finished). Cells are mean ± sample std (ddof = 1) over seeds; one seed shows the mean alone; `(n=k)` marks a
  task that fewer of the method's runs have. `—` is a method or task with no run: nothing is filled in.
- Performance ratio = a run's return / the Ideal return of the task; the Ideal return is {ideal_source}. Tasks
  whose Ideal return is not positive get no ratio (n/a) and are left out of the aggregates.
- Aggregates: mean ratio = mean over tasks of the per-task mean ratio; IQM = interquartile mean (25% trimmed
  from each end, scipy's `trim_mean` rule) of all (run, task) normalized scores pooled, with a 95% percentile
  interval from a stratified bootstrap ({reps} resamples of the runs within each task, 500 for the curves;
  numpy seed {seed}), as in rliable (implemented in `ktm/report/stats.py`: rliable does not import with our pins).
  With 2 seeds per task the interval is narrow only because there is little to resample: read it as a floor.
- Final ratio: the mean ratio again, with each run's mean of its last {final_evals} evaluations in place of its best
  one (runs with learning curves only): the paper's max over evaluations hides a run that collapsed after its peak.
- "paper" columns: {source}
- Curves: mean ± std over the seeds at the steps every seed evaluated; x is the global epoch for students
  (offline + online for KTM-DRL) and env steps for teachers.
"""


def benchmark_section(s: tables.BenchmarkSummary, out: str, reps: int, seed: int) -> List[str]:
  name = BENCHMARK_NAMES.get(s.benchmark, s.benchmark)
  lines = [f'## {name}', '', f'Ideal return per task: {s.ideal_source}.', '']
  source = f'paper Table {_table_no(s.paper_returns)}' if s.paper_returns else 'no paper table'
  lines += [f'### Max average return ({source})', '', tables.returns_table(s), '']
  if tables.ratio_labels(s):
    lines += [f'### Performance ratio, KTM-DRL and ablations '
              f'({"paper Table 3" if s.paper_ratios else "no paper table"})', '', tables.ratio_table(s), '']
  lines += ['### Aggregate per method', '', tables.aggregate_table(s), '']
  left_out = [t for t in s.tasks if not tables.valid_ideal(s.ideal[t])]
  if left_out:
    lines += ['Left out of the ratios and aggregates (Ideal return unknown or not positive): '
              + ', '.join(f'{t} ({tables.fmt_value(s.ideal[t], 1)})' for t in left_out) + '.', '']
  returns_png, iqm_png = f'fig_{s.benchmark}_returns.png', f'fig_{s.benchmark}_iqm.png'
  if figures.plot_returns(s, os.path.join(out, returns_png)):
    lines += [f'![{s.benchmark} learning curves]({returns_png})', '']
  if figures.plot_iqm(s, os.path.join(out, iqm_png), reps=min(reps, 500), seed=seed):
    lines += [f'![{s.benchmark} IQM normalized score]({iqm_png})', '']
  return lines


def _table_no(table: dict) -> str:
  return table['title'].split(':')[0].replace('Table ', '')


def write_report(specs: Sequence[str], out: str, reps: int = 2000, seed: int = 0, command: Optional[str] = None,
                 auto_teachers: bool = True, paper_path: Optional[str] = None) -> dict:
  """Reads the run directories `specs` ('DIR' or 'DIR=LABEL'), writes OUT/REPORT.md, OUT/summary.json and
  OUT/fig_<benchmark>_{returns,iqm}.png; returns the summary dict."""
  os.makedirs(out, exist_ok=True)
  paper = tables.load_paper(paper_path)
  runs = load_runs(specs, auto_teachers=auto_teachers)
  benchmarks = list(dict.fromkeys(r.benchmark for r in runs))
  summaries = [tables.summarize(runs, b, paper, reps, seed) for b in benchmarks]
  lines = ['# KTM-DRL reproduction report', '',
           f'Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC'
           + (f' by `{command}`' if command else '') + '.', '', '## Runs', '', runs_table(runs), '']
  for s in summaries:
    lines += benchmark_section(s, out, reps, seed)
  ideal_sources = '; '.join(f'{s.benchmark}: {s.ideal_source}' for s in summaries)
  lines.append(NOTES.format(ideal_source=ideal_sources or '—', reps=reps, seed=seed, source=paper['source'],
                            final_evals=tables.FINAL_EVALS))
  with open(os.path.join(out, 'REPORT.md'), 'w') as f:
    f.write('\n'.join(lines))
  summary = dict(command=command, bootstrap=dict(reps=reps, seed=seed),
                 benchmarks={s.benchmark: tables.to_json(s) for s in summaries})
  with open(os.path.join(out, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return summary

