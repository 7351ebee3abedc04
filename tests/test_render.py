"""experiments/render.py: one video per task of a tiny trained run, frames = episode length, returns in the names;
without OpenGL one error line (its other bad inputs: test_bad_inputs.py's render_* cases)."""

import ctypes.util
import os
import re
import subprocess
import sys

import imageio.v2 as imageio
import jax
import numpy as np
import pytest

from ktm import loop, teachers
from ktm.envs import make_suite
from ktm.runs import restore
from tests.test_policy import shared_tiny_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'experiments', 'render.py')
EPISODE_LENGTH, WIDTH, HEIGHT, SEED = 30, 160, 120, 5

if not ctypes.util.find_library('OSMesa') and not os.environ.get('CI'):
  pytest.skip('OSMesa is not installed (apt-get install libosmesa6; .ci/run installs it)', allow_module_level=True)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  return shared_tiny_run(tmp_path_factory)


def _render(args, gl='osmesa'):
  env = {k: v for k, v in os.environ.items() if k not in ('MUJOCO_GL', 'PYOPENGL_PLATFORM', 'DISPLAY',
                                                           'WAYLAND_DISPLAY')}
  env['MUJOCO_GL'] = gl
  return subprocess.run([sys.executable, SCRIPT] + args, cwd=ROOT, capture_output=True, text=True, timeout=900,
                        env=env)


def test_one_video_per_task_with_the_evaluation_returns_and_episode_length_frames(tiny_run, tmp_path):
  out = tmp_path / 'videos'
  proc = _render([f'--checkpoint={tiny_run}', '--teachers', f'--episode_length={EPISODE_LENGTH}', f'--out={out}',
                  f'--width={WIDTH}', f'--height={HEIGHT}', f'--seed={SEED}', '--format=mp4'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  # The trainer's own evaluation of the same episodes (same key, E = 1, the same episode length).
  method, learner, config = restore.restore(tiny_run)
  suite = make_suite(config['benchmark'], num_envs=1, episode_length=EPISODE_LENGTH)
  key = jax.random.key(SEED)
  student = np.asarray(loop.evaluate(learner, key, method, suite))[:, 0]
  teacher = np.asarray(teachers.evaluate(teachers.load(config['teacher_dir'], suite), key, suite))[:, 0]
  files = sorted(os.listdir(out))
  assert len(files) == suite.num_tasks
  for k, name in enumerate(suite.task_names):
    [path] = [f for f in files if f.startswith(name + '_')]
    match = re.fullmatch(rf'{name}_student(-?[\d.]+)_teacher(-?[\d.]+)\.mp4', path)
    assert match, path
    assert float(match.group(1)) == pytest.approx(student[k], abs=0.05)
    assert float(match.group(2)) == pytest.approx(teacher[k], abs=0.05)
    assert os.path.getsize(out / path) > 1000
    reader = imageio.get_reader(str(out / path))
    assert reader.count_frames() == EPISODE_LENGTH
    first = reader.get_data(0)
    assert first.shape == (HEIGHT, 2 * WIDTH, 3)       # student | teacher
    assert first.std() > 5                             # something is drawn
    reader.close()


def test_no_opengl_backend_is_one_error_line(tiny_run, tmp_path):
  """GLFW without a display has no OpenGL context: one `error:` line naming the fix, no traceback."""
  proc = _render([f'--checkpoint={tiny_run}', '--episode_length=3', f'--out={tmp_path}', '--width=32',
                  '--height=32'], gl='glfw')
  last = proc.stderr.strip().splitlines()[-1]
  assert proc.returncode == 1 and last.startswith('error: no OpenGL backend for offscreen rendering (MUJOCO_GL=glfw')
  assert 'apt-get install libosmesa6' in last and 'Traceback' not in proc.stderr
