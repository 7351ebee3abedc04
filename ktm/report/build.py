"""`write_report`: run directories -> OUT/REPORT.md, OUT/summary.json, the PNG figures and (optionally) the
README's headline block."""

import json
import os
from typing import List, Optional, Sequence

from ktm.report import budget, compare, figures, headline, random_policy, scores, tables
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
  header = ['label', 'method', 'benchmark', 'seed', 'run', 'teachers', 'status', 'wall', 'command or settings',
            'machine']
  rows = []
  for r in runs:
    wall = '—' if r.wall_seconds is None else f'{r.wall_seconds / 60:.1f} min'
    status = 'done' if r.complete else 'no results.json: from metrics.jsonl'
    what = f'`{r.command}`' if r.command else settings_summary(r.config)
    rows.append([r.label, r.method, r.benchmark, str(r.seed), f'`{r.path}`', budget.teachers_of(r.config), status,
                 wall, what + (f'; swept {r.swept}' if r.swept else ''), r.machine or '—'])
  return tables.markdown(header, rows)


NOTES = """\
## How the numbers are made
- Three scores per run and task: **max per task** (the paper's metric: the max over evaluations of the average
  return of the evaluation episodes, results.json's `student_return` / `best_return`; one run's tasks may come from
  different checkpoints), **best checkpoint** (every task from ONE evaluation: the evaluation step with the highest
  mean over tasks of return / Ideal, earliest on ties) and **final** (the mean of the run's last {final_evals}
  evaluations). Cells are mean ± sample std (ddof = 1) over seeds; one seed shows the mean alone; `(n=k)` marks a
  task that fewer of the method's runs have. `—` is a method or task with no run: nothing is filled in.
- Performance ratio (the paper's) = return / Ideal return of the task; the Ideal return is {ideal_source}. Tasks
  whose Ideal return is not positive get no ratio (n/a) and are left out of the aggregates.
- Normalized score (rliable's) = (return - random) / (Ideal - random), with `random` the uniform-random policy's
  mean return per task ({random_how}); a task without a measured random return, or whose Ideal is not above it,
  gets none.
- Aggregates: mean ratio = mean over tasks of the per-task mean ratio; IQM = interquartile mean (25% trimmed
  from each end, scipy's `trim_mean` rule) of all (run, task) normalized scores pooled, with a 95% percentile
  interval from a stratified bootstrap ({reps} resamples of the runs within each task, 500 for the curves;
  numpy seed {seed}), as in rliable (implemented in `ktm/report/stats.py`: rliable does not import with our pins).
  With 2 seeds per task the interval is narrow only because there is little to resample: read it as a floor.
- Orderings: for each pair, diff = mean over tasks of X's mean normalized score minus Y's, with a 95% interval
  from a stratified bootstrap resampling X's and Y's runs within each task independently, and P(X > Y), the
  probability of improvement (Agarwal et al. 2021: the mean over tasks of the fraction of (X run, Y run) pairs
  with X's score higher, ties 1/2). An ordering is resolved when every seed pair agrees (each run's mean normalized
  score over the common tasks) or the interval of diff excludes 0, and one of the two has 2 runs or more;
  otherwise it is "unresolved". The bootstrap resamples each task's runs independently: where a seed is good or
  bad on every task at once (near-identical tasks), an interval-only ("CI") ordering understates the seed spread.
- Budget: from each method's config.json (`ktm/report/budget.py`): optimizer steps count critic steps.
- "paper" columns: {source}
- Curves: mean ± std over the seeds at the x every seed evaluated; x is {x_axis}.
"""


def benchmark_section(s: tables.BenchmarkSummary, out: str, reps: int, seed: int, results: List[dict],
                      x_axis: str) -> List[str]:
  name = BENCHMARK_NAMES.get(s.benchmark, s.benchmark)
  spread = [t for t in s.tasks if s.ideal_spread[t][2] > 1]
  lines = [f'## {name}', '', f'Ideal return per task: {s.ideal_source}'
           + (f' (std over teacher seeds: {", ".join(f"{t} {s.ideal_spread[t][1]:.1f}" for t in spread)})'
              if spread else '') + '.',
           'Uniform-random return per task: ' + (', '.join(f'{t} {s.random[t]:.1f}' for t in s.tasks if t in s.random)
                                                 or 'not measured') + '.', '']
  source = f'paper Table {_table_no(s.paper_returns)}' if s.paper_returns else 'no paper table'
  lines += [f'### Max average return ({source})', '', tables.returns_table(s), '']
  success = tables.success_table(s)
  if success:
    lines += ['### Success rate (final evaluation; success at any step of an episode)', '', success, '']
  if tables.ratio_labels(s):
    lines += [f'### Performance ratio, KTM-DRL and ablations '
              f'({"paper Table 3" if s.paper_ratios else "no paper table"})', '', tables.ratio_table(s), '']
    for kind in ('checkpoint', 'final'):
      lines += [f'### Performance ratio, KTM-DRL and ablations: {scores.KIND_NAMES[kind]} (one evaluation per run)'
                if kind == 'checkpoint' else f'### Performance ratio, KTM-DRL and ablations: final (last '
                f'{s.final_evals} evaluations)', '', tables.ratio_table(s, kind), '']
  lines += ['### Aggregate per method', '', tables.aggregate_table(s), '']
  left_out = [t for t in s.tasks if not tables.valid_ideal(s.ideal[t])]
  if left_out:
    lines += ['Left out of the ratios and aggregates (Ideal return unknown or not positive): '
              + ', '.join(f'{t} ({tables.fmt_value(s.ideal[t], 1)})' for t in left_out) + '.', '']
  no_norm = [t for t in s.tasks if t not in s.norm_tasks and t not in left_out]
  if no_norm:
    lines += ['Left out of the normalized scores (random return not measured, or Ideal not above it): '
              + ', '.join(no_norm) + '.', '']
  if results:
    lines += ['### Resolved orderings', '', compare.resolved_table(results), '',
              '### Pairwise differences of mean normalized score', '', compare.comparison_table(results), '']
  lines += ['### Budget per method', '', budget.budget_table(s.runs, len(s.tasks)), '']
  for group, labels in figures.figure_groups(s):
    returns_png, iqm_png = (figures.file_name(s.benchmark, f'{what}_{group}') for what in ('returns', 'iqm'))
    if figures.plot_returns(s, os.path.join(out, returns_png), labels, x_axis):
      lines += [f'![{s.benchmark} learning curves, {group}]({returns_png})', '']
    if figures.plot_iqm(s, os.path.join(out, iqm_png), min(reps, 500), seed, labels, x_axis):
      lines += [f'![{s.benchmark} IQM normalized score, {group}]({iqm_png})', '']
  trust_png = figures.file_name(s.benchmark, 'trust')
  if figures.plot_trust(s, os.path.join(out, trust_png), x_axis):
    lines += ["Each teacher's trust (KTM+, ktm/trust.py): the fraction of its samples whose teacher term counted "
              '(the audit gate offline), mean over the epochs before each evaluation:', '',
              f'![{s.benchmark} teacher trust]({trust_png})', '']
  return lines


def _table_no(table: dict) -> str:
  return table['title'].split(':')[0].replace('Table ', '')


def write_report(specs: Sequence[str], out: str, reps: int = 2000, seed: int = 0, command: Optional[str] = None,
                 auto_teachers: bool = True, paper_path: Optional[str] = None,
                 random_path: Optional[str] = None, x_axis: str = 'env_steps', readme: Optional[str] = None) -> dict:
  """Reads the run directories `specs` ('DIR' or 'DIR=LABEL'), writes OUT/REPORT.md, OUT/summary.json and
  OUT/fig_<benchmark>_{returns,iqm}_<table2|table3>.png, and, with `readme`, rewrites each benchmark's headline
  block there; returns the summary dict. random_path: the JSON cache of the uniform-random returns
  (`random_policy.load_or_measure`: benchmarks missing there are measured once and added); None: no normalized
  scores."""
  paper = tables.load_paper(paper_path)
  runs = load_runs(specs, auto_teachers=auto_teachers)
  os.makedirs(out, exist_ok=True)               # once the inputs have been read: a refused report creates nothing
  benchmarks = list(dict.fromkeys(r.benchmark for r in runs))
  random, random_how = {}, 'not measured'
  if random_path:
    random = random_policy.load_or_measure(random_path, benchmarks, command=command)
    random_how = random_policy.describe(random_path)
  summaries = [tables.summarize(runs, b, paper, reps, seed, random=random_policy.means(random.get(b, {})))
               for b in benchmarks]
  results = {s.benchmark: compare.comparisons(s, reps, seed) for s in summaries}
  lines = ['# KTM-DRL reproduction report', '', 'Generated' + (f' by `{command}`' if command else '') + '.', '',
           '## Runs', '', runs_table(runs), '']
  for s in summaries:
    lines += benchmark_section(s, out, reps, seed, results[s.benchmark], x_axis)
  ideal_sources = '; '.join(f'{s.benchmark}: {s.ideal_source}' for s in summaries)
  lines.append(NOTES.format(ideal_source=ideal_sources or '—', reps=reps, seed=seed, source=paper['source'],
                            final_evals=tables.FINAL_EVALS, random_how=random_how, x_axis=figures.X_LABELS[x_axis]))
  with open(os.path.join(out, 'REPORT.md'), 'w') as f:
    f.write('\n'.join(lines))
  summary = dict(command=command, bootstrap=dict(reps=reps, seed=seed),
                 benchmarks={s.benchmark: dict(tables.to_json(s), comparisons=tables.clean(results[s.benchmark]))
                             for s in summaries})
  with open(os.path.join(out, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  if readme:
    write_headline(readme, summary, out)
  return summary


def write_headline(readme: str, summary: dict, out: str) -> None:
  """Rewrites each benchmark's block between its markers in `readme` (`headline.snippet`)."""
  with open(readme) as f:
    text = f.read()
  for name, b in summary['benchmarks'].items():
    text = headline.replace_block(text, name, headline.snippet(b, summary['command'],
                                                               headline.figure_path(readme, out, name)))
  with open(readme, 'w') as f:
    f.write(text)
