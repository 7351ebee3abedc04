"""ktm.lock: one writer per directory; a second is refused naming the first, a dead holder's lock is free again,
and a refused or failed start leaves no directory behind. (Two real run_ktm processes: tests/test_run_ktm.py.)"""

import os
import signal
import subprocess
import sys

import pytest

from ktm import lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOLD = ('import sys, time; sys.path.insert(0, sys.argv[1]); from ktm import lock\n'
        'with lock.hold(sys.argv[2]):\n  print("held", flush=True); time.sleep(600)')


def holding(directory):
  """A child process holding DIRECTORY's lock (returned once it holds it)."""
  proc = subprocess.Popen([sys.executable, '-c', HOLD, ROOT, directory, 'run_x.py', '--flag'], stdout=subprocess.PIPE,
                          text=True)
  assert proc.stdout.readline() == 'held\n'
  return proc


def test_a_second_holder_is_refused_naming_the_first_and_a_killed_holders_lock_is_taken_over(tmp_path):
  directory = str(tmp_path / 'a' / 'run')
  child = holding(directory)
  try:
    before = sorted(os.listdir(directory))
    with pytest.raises(lock.DirectoryBusy, match=rf'{directory} is in use by another process: PID {child.pid} on '
                                                 r'\S+, running since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(-c '):
      with lock.hold(directory):
        pytest.fail('entered a held lock')
    with pytest.raises(lock.DirectoryBusy):       # a second directory under the held one is not created
      with lock.hold(directory):
        pass
    assert sorted(os.listdir(directory)) == before == ['.ktm-lock']
  finally:
    child.send_signal(signal.SIGKILL)
    child.wait()
  assert open(os.path.join(directory, '.ktm-lock')).read().startswith(f'{child.pid} ')   # the dead holder's file
  with lock.hold(directory):
    assert open(os.path.join(directory, '.ktm-lock')).read().startswith(f'{os.getpid()} ')
  assert open(os.path.join(directory, '.ktm-lock')).read() == ''       # released: nobody named


def test_a_start_that_fails_before_writing_removes_the_directories_it_created(tmp_path):
  directory = str(tmp_path / 'new' / 'deeper' / 'run')
  with pytest.raises(ValueError, match='bad setting'):
    with lock.hold(directory):
      raise ValueError('bad setting')
  assert os.listdir(tmp_path) == []
  with pytest.raises(ValueError):               # once something was written, it stays (the lock file it made goes)
    with lock.hold(directory):
      open(os.path.join(directory, 'config.json'), 'w').close()
      raise ValueError('later')
  assert sorted(os.listdir(directory)) == ['config.json']
  existing = str(tmp_path / 'existing')
  os.makedirs(existing)
  with pytest.raises(ValueError):               # a directory that existed before stays, as it was
    with lock.hold(existing):
      raise ValueError('x')
  assert os.listdir(existing) == []
  with lock.hold(existing):                     # a run that ends leaves its (free, emptied) lock file ...
    pass
  with pytest.raises(ValueError):               # ... which a later failing start keeps
    with lock.hold(existing):
      raise ValueError('y')
  assert os.listdir(existing) == ['.ktm-lock']


def test_a_lock_file_unlinked_by_its_last_holder_is_not_taken(tmp_path, monkeypatch):
  """The race flock on a path has: B opens the lock file, A (which created the directory and fails) unlinks it and
  lets go, B's flock then succeeds on a file no longer at the path. B must lock the file that is there."""
  directory = str(tmp_path / 'run')
  os.makedirs(directory)
  path = os.path.join(directory, '.ktm-lock')
  stale = os.open(path, os.O_RDWR | os.O_CREAT)
  os.unlink(path)
  real_open, opened = os.open, []

  def open_stale_first(p, flags, mode=0o777):
    if p == path and not opened:
      opened.append(p)
      return os.dup(stale)
    return real_open(p, flags, mode)

  monkeypatch.setattr(os, 'open', open_stale_first)
  with lock.hold(directory):
    assert opened and os.fstat(stale).st_nlink == 0
    assert open(path).read().startswith(f'{os.getpid()} ')
  os.close(stale)
