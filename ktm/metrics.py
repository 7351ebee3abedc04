"""Host-side metrics: CSV + JSONL + TensorBoard writers and a tqdm progress bar with per-task returns."""

import csv
import json
import math
import os
import sys
import time
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np


def _scalar(v):
  v = float(np.asarray(v))
  return None if math.isnan(v) else v


class MetricsWriter:
  """Appends one row per `write(step, metrics)` to WORKDIR/metrics.csv, metrics.jsonl and TensorBoard events.

  The CSV header is fixed by the first row; later rows with new keys still reach JSONL and TensorBoard.
  `restart_step`: a resumed run's first new step; TensorBoard then hides the events that earlier event files hold
  from that step on (tensorboardX's purge_step), which the resumed run logs again.
  """

  def __init__(self, workdir: str, tensorboard: bool = True, restart_step: Optional[int] = None):
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
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'), purge_step=restart_step,
                               filename_suffix=f'.{time.time_ns()}')   # a name's time is in seconds only

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


def _rows(path: str, header: list, body: list, step_of) -> list:
  """(step, line) per row of a metrics file's lines after its header: a repeat of the CSV header (two processes
  wrote the run before runs were locked) is dropped with a warning; anything else unreadable, a header with other
  columns included, is refused, naming the file and line."""
  rows = []
  for number, line in enumerate(body, len(header) + 1):
    if not line.strip():
      continue
    if header and line == header[0]:
      print(f'warning: {path}, line {number}: dropped a repeated header (two processes wrote this run before runs '
            'were locked)', file=sys.stderr)
      continue
    try:
      rows.append((step_of(line), line))
    except (ValueError, KeyError, TypeError, IndexError) as e:
      raise ValueError(f'{path}, line {number}: not a metrics row ({e}); fix or delete the file') from None
  return rows


def _complete_lines(path: str, lines: List[str], what: str) -> List[str]:
  """`lines` without a last line that has no newline (a write cut off, or still going), with one warning naming
  the file and `what` was done with it."""
  if lines and not lines[-1].endswith('\n'):
    print(f'warning: {path}: {what}', file=sys.stderr)
    return lines[:-1]
  return lines


def drop_rows_after(workdir: str, step: int) -> None:
  """Makes WORKDIR's metrics.jsonl / metrics.csv hold exactly the rows logged up to `step` (the checkpoint a run
  resumes from; 0 for a fresh start), so that the evaluations after it, which the resumed run logs again, appear
  once: a last line cut off by a kill is dropped with one warning naming the file, a repeated CSV header is dropped,
  and a file left with no row is removed (its writer starts it afresh). Each file is rewritten atomically."""
  for name in ('metrics.jsonl', 'metrics.csv'):
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
      continue
    with open(path, newline='') as f:
      lines = f.readlines()
    complete = _complete_lines(path, lines, 'dropped its last line, cut off when the run was stopped while writing it')
    header, body = ([], complete) if name.endswith('.jsonl') else (complete[:1], complete[1:])
    step_of = (lambda l: int(json.loads(l)['step'])) if name.endswith('.jsonl') else \
        (lambda l: int(next(csv.reader([l]))[0]))
    kept = [line for s, line in _rows(path, header, body, step_of) if s <= step]
    if not kept:
      os.remove(path)
    elif header + kept != lines:
      tmp = path + '.tmp'
      with open(tmp, 'w', newline='') as f:
        f.writelines(header + kept)
      os.replace(tmp, path)


def read_rows(path: str) -> List[dict]:
  """The rows of a metrics.jsonl, [] if it is absent. A reader may meet the file while its run writes it (or after a
  kill cut the last write short): a last line without its newline is skipped with one warning naming the file, as
  the run itself drops it when it resumes (`drop_rows_after`)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = _complete_lines(path, f.readlines(), 'skipped its last line, not yet complete (the run is writing it, '
                            'or was stopped while writing it)')
  return [json.loads(line) for line in lines if line.strip()]


def first_stage_end(workdir: str) -> Optional[int]:
  """The global epoch where the first stage of the run logged in WORKDIR/metrics.jsonl ended (its last evaluation
  with 'stage' 0, once an evaluation of a later stage follows), or None while it has not (or the run has one
  stage). For stages that may end early (ktm/plateau.py)."""
  rows = read_rows(os.path.join(workdir, 'metrics.jsonl'))
  first = [int(row['step']) for row in rows if row.get('stage') == 0]
  later = any(row.get('stage', 0) > 0 for row in rows)
  return max(first) if first and later else None


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
                 'teacher_trust', 'teacher_audit', 'value_scale',
                 'eval_success')   # eval_success: loop.success_rates, if reported
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
