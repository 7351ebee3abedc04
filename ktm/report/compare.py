"""Which differences between methods the seeds resolve (Agarwal et al. 2021, "Deep RL at the Edge of the
Statistical Precipice"), on the random-normalized scores of one benchmark.

For methods X, Y and a kind of score (scores.KINDS), over the tasks both have a normalized score for:
- diff = mean over tasks of X's mean over runs - the same for Y, with a 95% stratified-bootstrap interval
  (`stats.compare`);
- P(X > Y), the probability of improvement, with its interval;
- every seed pair: each run's mean normalized score over those tasks; X > Y on every (X run, Y run) pair.
The ordering is resolved ('X > Y') when every seed pair agrees or the interval of diff excludes 0 (the project's
rule), and at least one side has 2 runs or more; else 'unresolved'.
"""

import itertools
from typing import List, Sequence, Tuple

import numpy as np

from ktm.report import scores, stats
from ktm.report.runs import ABLATIONS
from ktm.report.tables import MISSING, BenchmarkSummary, markdown

TABLE2 = ('KTM', 'Ideal', 'TD3-MT', 'SAC-MT', 'SharedNet', 'G-Surgery', 'A2C-MT')


def pairs(s: BenchmarkSummary) -> List[Tuple[str, str]]:
  """The pairs compared: every pair of Table 2's methods present, then KTM against each ablation present, then
  every other label (e.g. 'KTM+', runs with corrupted teachers, user labels) against Table 2's methods and against
  each other."""
  table2 = [l for l in s.labels if l in TABLE2]
  ablations = [l for l in s.labels if l in ABLATIONS]
  others = [l for l in s.labels if l not in TABLE2 and l not in ABLATIONS]
  return (list(itertools.combinations(table2, 2)) + [('KTM', a) for a in ablations if 'KTM' in s.labels]
          + [(o, t) for o in others for t in table2] + list(itertools.combinations(others, 2)))


def seed_means(runs: Sequence[dict], tasks: Sequence[str]) -> List[float]:
  """Each run's mean score over `tasks` (runs missing one of them are left out)."""
  return [float(np.mean([r[t] for t in tasks])) for r in runs if all(t in r for t in tasks)]


def verdict(x: str, y: str, result: dict) -> str:
  """'X > Y' / 'Y > X' with how it is resolved ('every seed pair', 'CI'), or 'unresolved' (always with one run on
  each side: one pair, and a bootstrap with nothing to resample)."""
  xs, ys = result['seed_means_x'], result['seed_means_y']
  if len(xs) < 2 and len(ys) < 2:
    return 'unresolved'
  how = []
  for sign, (a, b) in ((1, (x, y)), (-1, (y, x))):
    if xs and ys and all(sign * (p - q) > 0 for p in xs for q in ys):
      how.append((a, b, 'every seed pair'))
    if sign * result['diff_low'] > 0 and sign * result['diff_high'] > 0:
      how.append((a, b, 'CI'))
  if not how:
    return 'unresolved'
  winner, loser = how[0][0], how[0][1]
  return f'{winner} > {loser} (' + ', '.join(h[2] for h in how) + ')'


def compare_pair(s: BenchmarkSummary, x: str, y: str, kind: str, reps: int, seed: int) -> dict:
  """`stats.compare` of X and Y's normalized scores of `kind` on their common tasks, plus seed means and verdict."""
  runs_x, runs_y = s.normalized_runs(kind, x), s.normalized_runs(kind, y)
  x_tasks, y_tasks = scores.per_task(runs_x, s.norm_tasks), scores.per_task(runs_y, s.norm_tasks)
  tasks = [t for t in s.norm_tasks if x_tasks[t] and y_tasks[t]]
  if not tasks:
    return dict(x=x, y=y, kind=kind, tasks=[], verdict='unresolved')
  result = stats.compare([x_tasks[t] for t in tasks], [y_tasks[t] for t in tasks], reps, seed)
  result.update(x=x, y=y, kind=kind, tasks=tasks, seed_means_x=seed_means(runs_x, tasks),
                seed_means_y=seed_means(runs_y, tasks))
  result['verdict'] = verdict(x, y, result)
  return result


def comparisons(s: BenchmarkSummary, reps: int, seed: int) -> List[dict]:
  """`compare_pair` for every pair of `pairs` and every kind of score."""
  return [compare_pair(s, x, y, kind, reps, seed) for x, y in pairs(s) for kind in scores.KINDS]


def comparison_table(results: Sequence[dict]) -> str:
  """One row per pair: per kind of score, diff [95% CI], P(X > Y) and the verdict."""
  header = ['X vs Y']
  for kind in scores.KINDS:
    name = scores.KIND_NAMES[kind]
    header += [f'diff, {name} [95% CI]', f'P(X > Y), {name}', f'ordering, {name}']
  rows = {}
  for r in results:
    row = rows.setdefault((r['x'], r['y']), [f'{r["x"]} vs {r["y"]}'])
    if not r['tasks']:
      row += [MISSING, MISSING, r['verdict']]
      continue
    row += [f'{r["diff"]:+.3f} [{r["diff_low"]:+.3f}, {r["diff_high"]:+.3f}]',
            f'{r["poi"]:.2f} [{r["poi_low"]:.2f}, {r["poi_high"]:.2f}]', r['verdict']]
  return markdown(header, list(rows.values()))


def resolved_table(results: Sequence[dict]) -> str:
  """The short table the READMEs quote: per kind of score, the resolved orderings and the count unresolved."""
  rows = []
  for kind in scores.KINDS:
    of_kind = [r for r in results if r['kind'] == kind]
    resolved = [r['verdict'] for r in of_kind if r['verdict'] != 'unresolved']
    rows.append([scores.KIND_NAMES[kind], '; '.join(resolved) or 'none',
                 f'{len(of_kind) - len(resolved)} of {len(of_kind)}'])
  return markdown(['score', 'resolved orderings', 'unresolved pairs'], rows)
