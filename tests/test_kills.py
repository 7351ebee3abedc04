"""Runs never lose work: SIGKILL at random moments (during teacher training, teacher-set saves, student training and
checkpoint writes) and SIGTERM; every resumed run ends bit-identical to an uninterrupted one.

CI kills twice (once at a random moment, once during a write), then sends one SIGTERM to the same run (one test:
the SIGTERM's run and resume cost no run from scratch of their own); the full torture is
`KTM_KILLS=20 python -m pytest -q -s tests/test_kills.py`, and `KTM_KILL_SEEDS=2` makes every run a 2-member sweep
(`--seeds=2`: each member's teacher set, checkpoints and metrics files). With -s it prints where each kill landed.
"""

import collections
import glob
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from ktm import teachers
from ktm.envs import make_suite
from ktm.runs import restore, sweep_members
from tests.test_td3 import tree_equal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLS = int(os.environ.get('KTM_KILLS', '2'))   # one at a random moment, one during a write
SEEDS = int(os.environ.get('KTM_KILL_SEEDS', '1'))
ARGS = ['--preset=tiny', '--progress_bar=false', '--tensorboard=false'] + ([f'--seeds={SEEDS}'] if SEEDS > 1 else [])
# Paths whose appearance marks a write in progress: orbax's temporary checkpoint directories, the teacher set's.
WRITING = ('checkpoints/*tmp*', 'teachers_run/checkpoints/*tmp*', 'teachers_run/.teachers.tmp-*')
# Files whose new modification time marks training progress: the teachers', the student's.
TEACHER_PROGRESS = ('teachers_run/metrics.jsonl', 'teachers_run/checkpoints/*', 'teachers_run/teachers/*')
STUDENT_PROGRESS = ('metrics.jsonl', 'checkpoints/*')
# Where the i-th kill is aimed (cycled): 0-2 s after the run's first progress, whatever it trains then; during a
# checkpoint or teacher-set write; in the student before its first checkpoint (0-0.5 s after its config.json);
# 0-2 s after the student's progress once it has a checkpoint. A kill aimed at a phase the run has passed lands in
# the next one.
AIMS = ('random', 'write', 'student before its first checkpoint', 'write', 'student')


def start(workdir):
  return subprocess.Popen([sys.executable, os.path.join(ROOT, 'experiments', 'run_ktm.py'), f'--workdir={workdir}']
                          + ARGS, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def progressed_since(workdir, began, patterns):
  """Whether the run wrote any of `patterns` (metrics, checkpoints, the teacher set) after `began`."""
  for pattern in patterns:
    for path in glob.glob(os.path.join(workdir, pattern)):
      try:
        if os.path.getmtime(path) >= began:
          return True
      except FileNotFoundError:     # a temporary checkpoint directory renamed meanwhile
        pass
  return False


def student_checkpointed(workdir):
  return bool(glob.glob(os.path.join(workdir, 'checkpoints', '[0-9]*')))


def kill_at_some_moment(workdir, rng, aim):
  """Starts the run and SIGKILLs it where `aim` (one of AIMS) says, at a random moment after the progress it waits
  for (so the kill lands in the training, however fast this machine and its compile cache make the start-up), or
  as soon as a checkpoint or teacher set is being written. Returns the exit code (0: the run finished before the
  kill), or where the kill landed: 'teachers' (the student had not started), 'student before its first
  checkpoint', 'during a write' or 'student'."""
  began = time.time()
  proc = start(workdir)
  config = os.path.join(workdir, 'config.json')
  if aim == 'student before its first checkpoint' and student_checkpointed(workdir):
    aim = 'student'
  delay = rng.uniform(0.0, 0.5 if aim == 'student before its first checkpoint' else 2.0)
  ready = {'random': lambda: progressed_since(workdir, began, TEACHER_PROGRESS + STUDENT_PROGRESS),
           'write': lambda: False,
           'student before its first checkpoint': lambda: progressed_since(workdir, began, ('config.json',)),
           'student': lambda: student_checkpointed(workdir) and progressed_since(workdir, began, STUDENT_PROGRESS)}
  deadline = None
  while proc.poll() is None:
    writing = aim == 'write' and any(glob.glob(os.path.join(workdir, p)) for p in WRITING)
    if deadline is None and ready[aim]():
      deadline = time.time() + delay
    if writing or (deadline is not None and time.time() > deadline):
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      if writing:
        return 'during a write'
      if student_checkpointed(workdir):
        return 'student'
      return 'student before its first checkpoint' if os.path.exists(config) else 'teachers'
    time.sleep(0.005)
  return proc.returncode


def final(workdir):
  """The student (every member) and each member's teacher set."""
  _, learner, _ = restore.restore(workdir)
  suite = make_suite('pendulum_group')
  teacher_run = os.path.join(workdir, 'teachers_run')
  sets = [teachers.load(sweep_members.member_dir(teacher_run, m), suite) for m in range(SEEDS)]
  return [learner] + [x for s in sets for x in (s.states, s.buffer)]


def metrics_files(workdir):
  """Every metrics file of the student's and the teachers' members, byte for byte (their rows hold no wall times): a
  resumed run logs each evaluation once, as an uninterrupted one does."""
  paths = glob.glob(os.path.join(workdir, '**', 'metrics.*'), recursive=True)
  files = {os.path.relpath(p, workdir): open(p, 'rb').read() for p in paths}
  assert len(files) == 4 * SEEDS, sorted(files)      # jsonl + csv, student + teachers, per member
  return files


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('full'))
  proc = start(workdir)
  _, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-3000:]
  return final(workdir), metrics_files(workdir)


def sigterm_once_the_student_checkpoints(workdir):
  """Starts the run and sends SIGTERM once the student has written a checkpoint since the start (its signal handlers
  are installed then). Returns (exit code, stderr); 0 if the run finished first."""
  began = time.time()
  proc = start(workdir)
  while proc.poll() is None and not progressed_since(workdir, began, ('checkpoints/[0-9]*',)):
    time.sleep(0.01)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=600)
  return proc.returncode, err


def test_sigkills_and_a_sigterm_then_resume_end_bit_identical(uninterrupted, tmp_path):
  """SIGKILLs (AIMS), then a SIGTERM once the student checkpointed (exit 130, one line saying where it stopped), then
  the same command finishes the run: the student, every member's teacher set and metrics files equal the
  uninterrupted run's."""
  rng = random.Random(0)
  workdir = str(tmp_path / 'killed')
  landed = []
  while len(landed) < KILLS:
    where = kill_at_some_moment(workdir, rng, AIMS[len(landed) % len(AIMS)])
    if isinstance(where, int):     # finished before the kill came
      assert where == 0
      break
    landed.append(where)
  print(f'{len(landed)} kills landed: ' + ', '.join(f'{n} {w}' for w, n in collections.Counter(landed).items()))
  assert len(landed) >= min(KILLS, 2), f'only {len(landed)} kill(s) landed before the run ended'   # one of each kind
  terminated = len(landed) == KILLS      # a longer torture may end the run with its kills
  if terminated:
    code, err = sigterm_once_the_student_checkpoints(workdir)
    assert code == 130, f'exit {code}: the SIGTERM did not stop the run\n{err[-3000:]}'
    last = err.strip().splitlines()[-1]
    assert last.startswith('error: SIGTERM received: stopped at epoch') and 're-run the same command' in last
    stopped = int(re.search(r'stopped at epoch ([\d,]+)', last).group(1).replace(',', ''))
    assert os.path.isdir(os.path.join(workdir, 'checkpoints', str(stopped))), last    # the checkpoint it names
  proc = start(workdir)                   # the same command finishes the run
  out, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-3000:]
  assert 'resuming' in out or not terminated
  assert not glob.glob(os.path.join(workdir, 'teachers_run', '.teachers.tmp-*'))   # leftovers cleaned up
  for got, want in zip(final(workdir), uninterrupted[0]):
    assert tree_equal(got, want)
  assert metrics_files(workdir) == uninterrupted[1]
