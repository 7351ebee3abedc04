"""ktm.metrics on a restart: the metrics files keep exactly the rows up to the checkpoint resumed from, repaired or
refused in one line; TensorBoard gets the marker that hides the events logged again. (Whole runs that are killed and
resumed: tests/test_run_ktm.py, tests/test_kills.py.)"""

import glob
import os
import struct

import pytest

from ktm import metrics


def write(directory, name, text):
  with open(os.path.join(directory, name), 'w', newline='') as f:
    f.write(text)


def read(directory, name):
  path = os.path.join(directory, name)
  return open(path, newline='').read() if os.path.exists(path) else None


def test_rows_after_the_step_a_torn_line_and_a_repeated_header_are_dropped(tmp_path, capsys):
  d = str(tmp_path)
  write(d, 'metrics.jsonl', '{"step": 25, "a": 1.0}\n{"step": 50, "a": 2.0}\n{"step": 75, "a": 3.0}\n{"step": 10')
  write(d, 'metrics.csv', 'step,a\n25,1.0\nstep,a\n50,2.0\n75,3.0\n')
  metrics.drop_rows_after(d, 50)
  assert read(d, 'metrics.jsonl') == '{"step": 25, "a": 1.0}\n{"step": 50, "a": 2.0}\n'
  assert read(d, 'metrics.csv') == 'step,a\n25,1.0\n50,2.0\n'
  assert capsys.readouterr().err.splitlines() == [
      f'warning: {d}/metrics.jsonl: dropped its last line, cut off when the run was stopped while writing it',
      f'warning: {d}/metrics.csv, line 3: dropped a repeated header (two processes wrote this run before runs were '
      'locked)']
  metrics.drop_rows_after(d, 50)                          # consistent files are left alone, silently
  assert read(d, 'metrics.csv') == 'step,a\n25,1.0\n50,2.0\n' and capsys.readouterr().err == ''
  metrics.drop_rows_after(d, 0)                           # a fresh start (no checkpoint): no row is kept
  assert read(d, 'metrics.jsonl') is None and read(d, 'metrics.csv') is None


def test_a_torn_header_leaves_no_file_and_an_unreadable_row_is_refused_naming_file_and_line(tmp_path):
  d = str(tmp_path)
  write(d, 'metrics.csv', 'step,eval_ret')
  metrics.drop_rows_after(d, 0)
  assert read(d, 'metrics.csv') is None
  write(d, 'metrics.csv', 'step,a\n25,1.0\nstep,b\n50,2.0\n')      # a second header with other columns
  with pytest.raises(ValueError, match=rf'^{d}/metrics.csv, line 3: not a metrics row \(invalid literal'):
    metrics.drop_rows_after(d, 50)
  os.remove(os.path.join(d, 'metrics.csv'))
  write(d, 'metrics.jsonl', '{"step": 25}\n{"step": 50}{"step": 75}\n')    # the join an unrepaired torn line left
  with pytest.raises(ValueError, match=rf'^{d}/metrics.jsonl, line 2: not a metrics row'):
    metrics.drop_rows_after(d, 50)


def _events(path):
  """[(step, kind, session status)] of a TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=import-outside-toplevel
  data, i, out = open(path, 'rb').read(), 0, []
  while i < len(data):
    n = struct.unpack('<Q', data[i:i + 8])[0]
    event = event_pb2.Event()
    event.ParseFromString(data[i + 12:i + 12 + n])
    out.append((event.step, event.WhichOneof('what'), event.session_log.status))
    i += 12 + n + 4
  return out


def test_a_restarted_writer_marks_its_restart_step_for_tensorboard_in_a_file_of_its_own(tmp_path):
  d = str(tmp_path)
  first = metrics.MetricsWriter(d)
  for step in (25, 50, 75):
    first.write(step, {'a': float(step)})
  first.close()
  again = metrics.MetricsWriter(d, restart_step=51)     # resumed from the checkpoint at 50, in the same second
  again.write(75, {'a': 75.5})
  again.close()
  files = sorted(glob.glob(os.path.join(d, 'tensorboard', 'events.*')), key=lambda f: int(f.rsplit('.', 1)[1]))
  assert len(files) == 2
  assert [e for e in _events(files[0]) if e[1] == 'summary'] == [(25, 'summary', 0), (50, 'summary', 0),
                                                                  (75, 'summary', 0)]
  # SessionLog.START (status 1) at 51: TensorBoard's loader drops the earlier files' events from step 51 on
  assert [e for e in _events(files[1]) if e[1] != 'file_version'] == [(51, 'session_log', 1), (75, 'summary', 0)]
