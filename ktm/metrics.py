"""Host-side metrics: CSV + JSONL + TensorBoard writers and a tqdm progress bar with per-task returns."""

import csv
import json
import math
import os
from typing import Dict, Mapping, Optional, Sequence

import numpy as np


def _scalar(v):
  v = float(np.asarray(v))
  return None if math.isnan(v) else v


class MetricsWriter:
  """Appends one row per `write(step, metrics)` to WORKDIR/metrics.csv, metrics.jsonl and TensorBoard events.

  The CSV header is fixed by the first row; later rows with new keys still reach JSONL and TensorBoard.
  """

  def __init__(self, workdir: str, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
    csv_path = os.path.join(workdir, 'metrics.csv')
    self._csv_header = None
    if os.path.exists(csv_path) and os.path.getsize(csv_path) > 0:
      with open(csv_path) as f:
        self._csv_header = next(csv.reader(f))
    self._csv = open(csv_path, 'a', newline='')
    self._tb = None
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int, metrics: Mapping[str, object]) -> None:
    row = {'step': int(step), **{k: _scalar(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(row) + '\n')
    self._jsonl.flush()
    if self._csv_header is None:
      self._csv_header = list(row)
      csv.writer(self._csv).writerow(self._csv_header)
    csv.writer(self._csv).writerow(['' if row.get(k) is None else row.get(k) for k in self._csv_header])
    self._csv.flush()
    if self._tb is not None:
      for k, v in row.items():
        if k != 'step' and v is not None:
          self._tb.add_scalar(k, v, step)
      self._tb.flush()

  def close(self) -> None:
    self._jsonl.close()
    self._csv.close()
    if self._tb is not None:
      self._tb.close()


def drop_rows_after(workdir: str, step: int) -> None:
  """Removes metrics.jsonl / metrics.csv rows logged after `step` (a resumed run logs those evaluations again)."""
  for name in ('metrics.jsonl', 'metrics.csv'):
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
      continue
    with open(path, newline='') as f:
      lines = f.readlines()
    if name.endswith('.jsonl'):
      kept = [l for l in lines if l.strip() and json.loads(l)['step'] <= step]
    else:
      kept = lines[:1] + [l for l in lines[1:] if l.strip() and int(next(csv.reader([l]))[0]) <= step]
    if len(kept) != len(lines):
      with open(path, 'w', newline='') as f:
        f.writelines(kept)


def per_task(prefix: str, names: Sequence[str], values) -> Dict[str, float]:
  """{'prefix/TaskName': value} for values [K]."""
  return {f'{prefix}/{n}': v for n, v in zip(names, np.asarray(values).tolist())}


class Progress:
  """A tqdm bar over env steps with ETA and the latest per-task evaluation returns in its postfix."""

  def __init__(self, total: int, desc: str, initial: int = 0, disable: Optional[bool] = None):
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    self._bar = tqdm(total=total, initial=initial, desc=desc, unit='step', dynamic_ncols=True,
                     disable=disable, mininterval=1.0)

  def update(self, n: int) -> None:
    self._bar.update(n)

  def show_returns(self, names: Sequence[str], returns) -> None:
    prefix = os.path.commonprefix(list(names)) if len(names) > 1 else ''
    short = {n[len(prefix):] or n: f'{r:.0f}' for n, r in zip(names, np.asarray(returns).tolist())}
    self._bar.set_postfix(short, refresh=True)

  def write(self, text: str) -> None:
    self._bar.write(text)

  def close(self) -> None:
    self._bar.close()


TRAIN_METRICS = ('train_return', 'critic_loss', 'actor_loss', 'q1', 'teacher_q1', 'teacher_q1_term', 'own_q1_term',
                 'teacher_trust', 'teacher_audit', 'eval_success')   # eval_success: loop.success_rates, if reported
# Metrics of the delayed actor update, zero on the epochs that skip it: logged as their mean over the epochs that
# took it (their chunk mean divided by the chunk mean of 'actor_updates', 1 where the actor updated, else 0).
PER_ACTOR_UPDATE = ('teacher_trust',)


def log_evaluation(writer: MetricsWriter, bar: Progress, step: int, task_names: Sequence[str], returns,
                   train_metrics: Mapping[str, object], extra: Optional[Mapping[str, float]] = None) -> None:
  """One metrics row (per-task mean eval return [K] from returns [K, E], and per-task training metrics) and the
  progress bar's returns."""
  means = np.asarray(returns).mean(axis=1)
  row = dict(extra or {})
  row.update(per_task('eval_return', task_names, means))
  for name in TRAIN_METRICS:
    if name in train_metrics and np.ndim(train_metrics[name]) == 1:
      values = np.asarray(train_metrics[name])
      if name in PER_ACTOR_UPDATE and 'actor_updates' in train_metrics:
        updates = np.asarray(train_metrics['actor_updates'])
        values = np.where(updates > 0, values / np.where(updates > 0, updates, 1), np.nan)
      row.update(per_task(name, task_names, values))
  writer.write(step, row)
  bar.show_returns(task_names, means)
