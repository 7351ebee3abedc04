"""What a run reports: while it trains, per member and evaluation, metrics files, TensorBoard and the progress bar
(RunReporter); when it ends, results.json and the printed table.

results.json = {'benchmark', 'method', 'members': [{'member', 'seed', 'values', 'tasks': [{'name', 'student_return',
'teacher_return', 'ratio'}]}], 'summary': per setting and task, mean and std over seeds, ...}; a one-member run also
keeps 'tasks' (its rows) at the top.
"""

import os
import platform
import sys
from typing import Dict, List, Optional

import jax
import numpy as np

from ktm import checkpoint, loop, metrics
from ktm import sweep as sweep_lib
from ktm.runs import sweep_members
from ktm.sweep import Sweep

RESULTS_FILE = 'results.json'


class RunReporter(loop.Reporter):
  """Progress bar (returns averaged over members), and per member: metrics files and TensorBoard."""

  def __init__(self, workdir: str, total: int, desc: str, task_names, tensorboard: bool, progress_bar: bool,
               extra_fn=None, sweep: Optional[Sweep] = None, members: Optional[List[int]] = None):
    self.workdir, self.total, self.desc, self.task_names = workdir, total, desc, task_names
    self.tensorboard, self.progress_bar, self.extra_fn = tensorboard, progress_bar, extra_fn
    self.sweep = sweep or sweep_lib.single(0)
    self.members = list(range(self.sweep.size)) if members is None else members   # whose files this process writes
    self.writers, self.bar = {}, None
    self.done = 0
    self.diverged_members = {}   # member -> global epoch by which it diverged

  def resumed(self, global_epoch, restored_from):
    if restored_from is not None and jax.process_index() == 0:
      print(f'resuming {self.workdir} from its checkpoint at epoch {restored_from:,} of {self.total:,}')
    for m in self.members:     # also without a checkpoint: a run killed before its first leaves rows to drop
      directory = sweep_members.member_dir(self.workdir, m)
      metrics.drop_rows_after(directory, global_epoch)
      restart = global_epoch + 1 if os.path.isdir(os.path.join(directory, 'tensorboard')) else None
      self.writers[m] = metrics.MetricsWriter(directory, tensorboard=self.tensorboard, restart_step=restart)
    self.done = global_epoch
    self.bar = metrics.Progress(self.total, self.desc, initial=global_epoch,
                                disable=not self.progress_bar or jax.process_index() > 0)

  def chunk(self, stage_name, global_epoch, train_metrics, returns):
    self.bar.update(global_epoch - self.done)
    self.done = global_epoch
    if returns is None:
      return
    extra = self.extra_fn(stage_name) if self.extra_fn else None
    for m, writer in self.writers.items():
      metrics.log_evaluation(writer, self.bar, global_epoch, self.task_names, returns[m],
                             loop.member(train_metrics, m), extra)
    with np.errstate(invalid='ignore'):
      self.bar.show_returns(self.task_names, np.nanmean(np.mean(returns, axis=-1), axis=0))

  def diverged(self, m, global_epoch, task):
    self.diverged_members[m] = global_epoch
    where = f', task {task}' if task else ''
    self.bar.write(f'warning: sweep member {m} ({self.sweep.describe(m)}) diverged (NaN/Inf) by epoch '
                   f'{global_epoch:,}{where}: it is left out of the results; the other members train on')

  def stage_ended(self, stage_name, global_epoch, planned, next_stage):
    then = f'; its epochs left go to the {next_stage} stage' if next_stage else ''
    self.bar.write(f'the {stage_name} stage ended at epoch {global_epoch:,} of its {planned:,}: its evaluations '
                   f'stopped improving (ktm/plateau.py){then}')

  def close(self):
    if self.bar is not None:
      self.bar.close()
    for writer in self.writers.values():
      writer.close()


def provenance() -> dict:
  """The command line and the machine, for results.json (the report shows them)."""
  device = jax.devices()[0]
  return dict(command=' '.join([os.path.basename(sys.executable)] + sys.argv),
              machine=f'{platform.node() or "?"}: {platform.processor() or platform.machine()}, {os.cpu_count()} '
                      f'cores; jax {jax.__version__} on {device.platform} ({device.device_kind})')


def results_table(task_names, student_returns, teacher_returns=None) -> List[dict]:
  """Rows {name, student_return, teacher_return, ratio}; teacher_return and ratio are None without teachers, and
  the ratio is None where the teacher's return is not positive (a ratio of two negative returns says nothing; the
  report leaves such tasks out of its ratios too)."""
  teacher_returns = [None] * len(task_names) if teacher_returns is None else teacher_returns
  return [dict(name=n, student_return=_number(s), teacher_return=None if t is None else float(t),
               ratio=float(s / t) if t is not None and t > 0 and np.isfinite(s) else None)
          for n, s, t in zip(task_names, student_returns, teacher_returns)]


def _number(x) -> Optional[float]:
  return float(x) if np.isfinite(x) else None


def sweep_results(task_names, sweep: Sweep, best: np.ndarray, teacher_returns: Optional[np.ndarray],
                  diverged: Dict[int, int], success: Optional[list] = None) -> dict:
  """{'members': one row per member, 'summary': per setting and task, mean and std over its finite seeds}.
  best [S, K]; teacher_returns [S, K] (each member's own teachers) or None; success [S][K]: the final evaluation's
  success rates (loop.success_rates), rows get 'success_rate' when given."""
  members = []
  for m in range(sweep.size):
    rows = results_table(task_names, best[m], None if teacher_returns is None else teacher_returns[m])
    for k, row in enumerate(rows if success is not None else []):
      row['success_rate'] = success[m][k]
    members.append(dict(member=m, seed=sweep.seeds[m], values=sweep.member(m), tasks=rows,
                        diverged_at_epoch=diverged.get(m)))
  summary = []
  for setting in dict.fromkeys(sweep.setting(m) for m in range(sweep.size)):
    group = [r for r in members if sweep.setting(r['member']) == setting and r['diverged_at_epoch'] is None]
    tasks = []
    for k, name in enumerate(task_names):
      entry = dict(name=name)
      for field in ('student_return', 'ratio') + (('success_rate',) if success is not None else ()):
        vals = [r['tasks'][k][field] for r in group if r['tasks'][k][field] is not None]
        entry[f'{field}_mean'] = float(np.mean(vals)) if vals else None
        entry[f'{field}_std'] = float(np.std(vals)) if vals else None
      entry['seeds'] = len(group)
      tasks.append(entry)
    summary.append(dict(values=dict(setting), tasks=tasks))
  return dict(members=members, summary=summary)


def print_table(rows: List[dict]) -> None:
  """The per-task table; a success column where the rows have success rates (envs reporting info['success'])."""
  success = any('success_rate' in r for r in rows)
  print(f'{"task":<32} {"student":>9} {"teacher":>9} {"ratio":>7}' + (f' {"success":>8}' if success else ''))
  for r in rows:
    student = '—' if r['student_return'] is None else f'{r["student_return"]:.1f}'
    teacher = '—' if r['teacher_return'] is None else f'{r["teacher_return"]:.1f}'
    ratio = '—' if r['ratio'] is None else f'{r["ratio"]:.3f}'
    rate = '' if not success else f' {"—" if r.get("success_rate") is None else format(r["success_rate"], ".2f"):>8}'
    print(f'{r["name"]:<32} {student:>9} {teacher:>9} {ratio:>7}{rate}')


def print_summary(summary: List[dict]) -> None:
  """Per setting and task: mean ± std over seeds of the return (and ratio)."""
  print(f'{"setting":<28} {"task":<28} {"return (mean ± std)":>22} {"ratio":>15} {"seeds":>5}')
  for s in summary:
    setting = ' '.join(f'{k}={v:g}' for k, v in s['values'].items()) or '—'
    for t in s['tasks']:
      ret = '—' if t['student_return_mean'] is None else f'{t["student_return_mean"]:.1f} ± {t["student_return_std"]:.1f}'
      ratio = '—' if t['ratio_mean'] is None else f'{t["ratio_mean"]:.3f} ± {t["ratio_std"]:.3f}'
      print(f'{setting:<28} {t["name"]:<28} {ret:>22} {ratio:>15} {t["seeds"]:>5}')


def write_results(workdir: str, results: dict) -> None:
  """WORKDIR/results.json (process 0 alone writes it)."""
  if jax.process_index() == 0:
    checkpoint.write_json(os.path.join(workdir, RESULTS_FILE), results)


def teacher_returns(metas) -> np.ndarray:
  """Each teacher's best average evaluation return during its training (the "Ideal" baseline) [K]."""
  return np.array([max(np.mean(h['returns']) for h in m['eval_history']) for m in metas])
