r"""Videos of a trained run: one MP4 (or GIF) per task of the student, its teachers side by side if asked.

  python experiments/render.py --checkpoint=/tmp/ktm/quick                       # WORKDIR/videos/<Task>_student<R>.mp4
  python experiments/render.py --checkpoint=/tmp/ktm/quick --teachers --episode_length=300 --out=/tmp/videos

Each video is one deterministic episode per task from the same initial state and key as the trainer's evaluation
(`--seed`), `--episode_length` frames: frame t shows the state in which action t was taken. The return in the file
name is the first episode's, as evaluate.py counts it; if the episode ends earlier, the env restarts (as in the
evaluation) and the video goes on. MuJoCo renders offscreen through OpenGL: MUJOCO_GL=egl on a GPU machine,
MUJOCO_GL=osmesa on a headless CPU machine (Debian: `apt-get install libosmesa6`); chosen this way unless set.
"""

import os

from absl import app, flags, logging

from experiments import config_flags

# No MuJoCo (nor anything importing it) at module level: --help works on a machine without any OpenGL library.
flags.DEFINE_string('checkpoint', None, 'A run directory (config.json and checkpoints/).', required=True)
flags.DEFINE_boolean('teachers', False, "Put the run's teachers next to the student in each video.")
flags.DEFINE_integer('episode_length', 1000, 'Env steps (= frames) per video.')
flags.DEFINE_string('out', None, 'Output directory (default: CHECKPOINT/videos).')
flags.DEFINE_enum('format', 'auto', ['auto', 'mp4', 'gif'], 'auto: MP4 if imageio-ffmpeg is installed, else GIF.')
flags.DEFINE_integer('width', 480, 'Frame width of each policy, pixels.')
flags.DEFINE_integer('height', 360, 'Frame height, pixels.')
flags.DEFINE_integer('seed', 0, "Episode seed (the key of the trainer's evaluation).")
flags.DEFINE_enum('backend', 'auto', ['auto', 'mjx', 'native'], 'Physics backend (auto: native on CPU).')
FLAGS = flags.FLAGS


def choose_gl() -> None:
  """MUJOCO_GL must be set before mujoco is imported: EGL where an NVIDIA GPU is visible, else OSMesa."""
  if 'MUJOCO_GL' not in os.environ:
    os.environ['MUJOCO_GL'] = 'egl' if os.path.exists('/dev/nvidia0') else 'osmesa'
  os.environ.setdefault('PYOPENGL_PLATFORM', os.environ['MUJOCO_GL'])


def import_mujoco() -> None:
  """Imports MuJoCo, which loads the OpenGL library MUJOCO_GL names (libOSMesa, libEGL) at once: a missing one is
  one error line naming the fix, not a traceback. (Without any library: `ktm.video.NoOpenGL` when rendering.)"""
  try:
    import mujoco  # pylint: disable=import-outside-toplevel,unused-import
  except Exception as e:  # pylint: disable=broad-except  (PyOpenGL / ctypes raise many types)
    reason = ' '.join(f'{type(e).__name__}: {e}'.split())[:300]
    raise OSError(f'MuJoCo cannot load the OpenGL library of MUJOCO_GL={os.environ.get("MUJOCO_GL")} ({reason}); on '
                  'a headless CPU machine install OSMesa (Debian: apt-get install libosmesa6) and use '
                  'MUJOCO_GL=osmesa, on a GPU use MUJOCO_GL=egl') from e


@config_flags.user_errors_exit
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from ktm import validate  # pylint: disable=import-outside-toplevel  (imports no MuJoCo)
  validate.check_values(dict(episode_length=validate.AT_LEAST_1, width=validate.AT_LEAST_1,
                             height=validate.AT_LEAST_1, seed=validate.SEED), episode_length=FLAGS.episode_length,
                        width=FLAGS.width, height=FLAGS.height, seed=FLAGS.seed)
  choose_gl()
  import_mujoco()
  from ktm import video  # pylint: disable=import-outside-toplevel
  video.render_run(FLAGS.checkpoint, FLAGS.out or os.path.join(FLAGS.checkpoint, 'videos'), FLAGS.episode_length,
                   FLAGS.teachers, FLAGS.format, FLAGS.width, FLAGS.height, FLAGS.seed, FLAGS.backend)


if __name__ == '__main__':
  app.run(main, flags_parser=config_flags.parse_flags)
