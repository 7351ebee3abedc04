"""Per-run task scores of three kinds, and their normalizations.

- 'max' (the paper's metric): per task, the max over evaluations of the average evaluation return; one run's tasks
  may come from different checkpoints ("stitched").
- 'checkpoint': every task from ONE evaluation, the run's best single evaluation: the step s* (among the steps at
  which every task of the run was evaluated) maximizing the mean over those tasks (with a positive Ideal) of
  return_t(s) / Ideal_t; ties go to the earliest step.
- 'final': per task, the mean of the run's last `final_evals` evaluation returns.

Normalizations of a return x on task t: ratio = x / Ideal_t (the paper's; Ideal_t > 0), and rliable's
normalized score = (x - random_t) / (Ideal_t - random_t) with random_t the uniform-random policy's return
(Ideal_t > random_t).
"""

from typing import Dict, List, Optional, Sequence

import numpy as np

from ktm.report.runs import Run

KINDS = ('max', 'checkpoint', 'final')
KIND_NAMES = {'max': 'max per task (paper)', 'checkpoint': 'best checkpoint', 'final': 'final'}


def normalized(x: float, random: float, ideal: float) -> float:
  """(x - random) / (ideal - random): 0 for the random policy, 1 for the Ideal."""
  return (x - random) / (ideal - random)


def common_evaluations(run: Run, tasks: Sequence[str]) -> Optional[tuple]:
  """(steps [T], returns [T, len(tasks)]) at the steps where every task in `tasks` was evaluated; None if a task
  has no curve or no step is shared."""
  if not tasks or any(t not in run.curves for t in tasks):
    return None
  steps = run.curves[tasks[0]][0]
  for t in tasks[1:]:
    steps = np.intersect1d(steps, run.curves[t][0])
  if steps.size == 0:
    return None
  values = [run.curves[t][1][np.searchsorted(run.curves[t][0], steps)] for t in tasks]
  return steps, np.stack(values, axis=1)


def best_checkpoint(run: Run, tasks: Sequence[str], ideal: Dict[str, float]) -> Optional[int]:
  """s*: the evaluation step with the highest mean over `tasks` of return / Ideal (earliest on ties)."""
  found = common_evaluations(run, tasks)
  if found is None:
    return None
  steps, values = found
  means = (values / np.array([ideal[t] for t in tasks])).mean(axis=1)
  return int(steps[int(np.argmax(means))])


def run_scores(run: Run, kind: str, tasks: Sequence[str], ideal: Dict[str, float], final_evals: int,
               rank_tasks: Optional[Sequence[str]] = None) -> Dict[str, float]:
  """task -> the run's return of `kind` on `tasks` (tasks without one are left out). 'checkpoint' picks its
  step by those of `rank_tasks` (default: `tasks`; each with a positive Ideal) that the run has curves for."""
  if kind == 'max':
    return {t: run.returns[t] for t in tasks if t in run.returns}
  if kind == 'final':
    return {t: float(np.mean(run.curves[t][1][-final_evals:])) for t in tasks if t in run.curves}
  if kind != 'checkpoint':
    raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
  step = best_checkpoint(run, [t for t in (rank_tasks or tasks) if t in run.curves], ideal)
  if step is None:
    return {}
  return {t: float(r[np.searchsorted(s, step)]) for t, (s, r) in run.curves.items()
          if t in tasks and np.any(s == step)}


def per_run(runs_by_label: Dict[str, Sequence[Run]], kind: str, tasks: Sequence[str], ideal: Dict[str, float],
            final_evals: int, rank_tasks: Sequence[str]) -> Dict[str, List[Dict[str, float]]]:
  """label -> one {task: return of `kind`} per run of the label (`run_scores`)."""
  return {label: [run_scores(r, kind, tasks, ideal, final_evals, rank_tasks) for r in runs]
          for label, runs in runs_by_label.items()}


def per_task(runs: Sequence[Dict[str, float]], tasks: Sequence[str], fn=lambda t, x: x) -> Dict[str, List[float]]:
  """task -> [fn(task, score) of each run that has the task] from one {task: score} per run."""
  return {t: [fn(t, r[t]) for r in runs if t in r] for t in tasks}
