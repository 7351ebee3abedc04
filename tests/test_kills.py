"""Runs never lose work: SIGKILL at random moments (during teacher training, teacher-set saves, student training and
checkpoint writes) and SIGTERM; every resumed run ends bit-identical to an uninterrupted one.

CI kills twice (once at a random moment, once during a write) and sends one SIGTERM; the full torture is
`KTM_KILLS=20 python -m pytest -q tests/test_kills.py`.
"""

import glob
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from ktm import teachers
from ktm.envs import make_suite
from ktm.runs import restore
from tests.test_td3 import tree_equal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ['--preset=tiny', '--progress_bar=false', '--tensorboard=false']
KILLS = int(os.environ.get('KTM_KILLS', '2'))   # one at a random moment, one during a write
# Paths whose appearance marks a write in progress: orbax's temporary checkpoint directories, the teacher set's.
WRITING = ('checkpoints/*tmp*', 'teachers_run/checkpoints/*tmp*', 'teachers_run/.teachers.tmp-*')
# Files whose new modification time marks training progress (teachers', then the student's).
PROGRESS = ('teachers_run/metrics.jsonl', 'teachers_run/checkpoints/*', 'teachers_run/teachers/*', 'metrics.jsonl',
            'checkpoints/*')


def start(workdir):
  return subprocess.Popen([sys.executable, os.path.join(ROOT, 'experiments', 'run_ktm.py'), f'--workdir={workdir}']
                          + ARGS, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def progressed_since(workdir, began):
  """Whether the run wrote training progress (metrics, checkpoints, the teacher set) after `began`."""
  for pattern in PROGRESS:
    for path in glob.glob(os.path.join(workdir, pattern)):
      try:
        if os.path.getmtime(path) >= began:
          return True
      except FileNotFoundError:     # a temporary checkpoint directory renamed meanwhile
        pass
  return False


def kill_at_some_moment(workdir, rng, during_write):
  """Starts the run and SIGKILLs it at a random moment: 0-2 s after its first progress (so the kill lands in the
  training, however fast this machine and its compile cache make the start-up), or (if `during_write`) as soon as
  a checkpoint or teacher set is being written. Returns the exit code (0: the run finished before the kill), or None
  after a kill."""
  began = time.time()
  proc = start(workdir)
  delay, deadline = rng.uniform(0.0, 2.0), None
  while proc.poll() is None:
    writing = during_write and any(glob.glob(os.path.join(workdir, p)) for p in WRITING)
    if deadline is None and not during_write and progressed_since(workdir, began):
      deadline = time.time() + delay
    if writing or (deadline is not None and time.time() > deadline):
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      return None
    time.sleep(0.005)
  return proc.returncode


def final(workdir):
  _, learner, _ = restore.restore(workdir)
  teacher_set = teachers.load(os.path.join(workdir, 'teachers_run'), make_suite('pendulum_group'))
  return learner, teacher_set.states, teacher_set.buffer


def metrics_files(workdir):
  """The student's and the teachers' metrics files, byte for byte (their rows hold no wall times): a resumed run
  logs each evaluation once, as an uninterrupted one does."""
  return {os.path.join(d, name): open(os.path.join(workdir, d, name), 'rb').read()
          for d in ('.', 'teachers_run') for name in ('metrics.jsonl', 'metrics.csv')}


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('full'))
  proc = start(workdir)
  _, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-3000:]
  return final(workdir), metrics_files(workdir)


def test_random_sigkills_then_resume_end_bit_identical(uninterrupted, tmp_path):
  rng = random.Random(0)
  workdir = str(tmp_path / 'killed')
  kills = 0
  while kills < KILLS:
    rc = kill_at_some_moment(workdir, rng, during_write=kills % 2 == 1)
    if rc is not None:     # finished before the kill came
      assert rc == 0
      break
    kills += 1
  assert kills >= min(KILLS, 2), f'only {kills} kill(s) landed before the run ended'   # one of each kind at least
  proc = start(workdir)                   # the same command finishes the run
  _, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-3000:]
  assert not glob.glob(os.path.join(workdir, 'teachers_run', '.teachers.tmp-*'))   # leftovers cleaned up
  for got, want in zip(final(workdir), uninterrupted[0]):
    assert tree_equal(got, want)
  assert metrics_files(workdir) == uninterrupted[1]


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_is_bit_identical(uninterrupted, tmp_path):
  workdir = str(tmp_path / 'term')
  proc = start(workdir)
  while proc.poll() is None and not glob.glob(os.path.join(workdir, 'checkpoints', '[0-9]*')):
    time.sleep(0.01)                    # the student is training: its signal handlers are installed
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=600)
  if proc.returncode == 0:
    pytest.skip('the run finished before SIGTERM arrived')
  assert proc.returncode == 130
  last = err.strip().splitlines()[-1]
  assert last.startswith('error: SIGTERM received: stopped at epoch') and 're-run the same command' in last
  proc = start(workdir)
  out, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-3000:]
  assert 'resuming' in out
  for got, want in zip(final(workdir), uninterrupted[0]):
    assert tree_equal(got, want)
  assert metrics_files(workdir) == uninterrupted[1]
