"""Videos of a trained run (experiments/render.py): one deterministic episode per task, rendered offscreen by MuJoCo.

Import this module only after MUJOCO_GL is chosen (experiments/render.py does): MuJoCo picks its OpenGL backend
when it is first imported.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from ktm import policy
from ktm.envs import Suite, make_suite
from ktm.envs import models as models_lib
from ktm.methods import ideal
from ktm.runs import checks, run_config

MAX_FPS = 60   # faster tasks (Hopper's dt is 8 ms) play in slow motion


class NoOpenGL(RuntimeError):
  """MuJoCo's offscreen renderer has no working OpenGL backend (`user_errors_exit` prints it as one line)."""
  exit_code = 1


def record(policy_fn, key: jax.Array, suite: Suite):
  """One deterministic episode per task (E = 1), with `rollout.evaluate`'s keys and return: (returns [K], per group
  (qpos [T, G, nq], qvel [T, G, nv]) of the state each action was taken in). policy_fn: obs [K, E, O] -> [K, E, A]."""
  def body(carry, _):
    env_state, total, alive = carry
    frame = tuple((r.qpos[:, 0], r.qvel[:, 0]) for r in env_state.physics.readout)
    env_state, out = suite.step(env_state, policy_fn(env_state.obs))
    total = total + jnp.where(alive, out.reward, 0.0)
    return (env_state, total, alive & ~out.done), frame

  reset_key, key = jax.random.split(key)
  env_state = suite.reset(reset_key)
  shape = (suite.num_tasks, suite.num_envs)
  init = (env_state, jnp.zeros(shape), jnp.ones(shape, bool))
  (_, total, _), frames = jax.lax.scan(body, init, jax.random.split(key, suite.episode_length))
  return total[:, 0], frames


def _renderer(model, width: int, height: int):
  import mujoco   # pylint: disable=import-outside-toplevel
  backend = os.environ.get('MUJOCO_GL')
  try:
    if not hasattr(mujoco, 'GLContext'):
      raise RuntimeError('MuJoCo found no OpenGL context library')
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    return mujoco.Renderer(model, height, width)
  except Exception as e:  # pylint: disable=broad-except  (PyOpenGL / EGL / OSMesa raise many types)
    reason = ' '.join(f'{type(e).__name__}: {e}'.split())[:300]
    raise NoOpenGL(f'no OpenGL backend for offscreen rendering (MUJOCO_GL={backend}; {reason}); on a headless CPU '
                   'machine install OSMesa (Debian: apt-get install libosmesa6) and use MUJOCO_GL=osmesa, on a GPU '
                   'use MUJOCO_GL=egl') from e


def render_task(model, qpos: np.ndarray, qvel: np.ndarray, width: int, height: int) -> np.ndarray:
  """Frames [T, height, width, 3] uint8 of `model` at the states qpos [T, nq], qvel [T, nv] (its first camera, else
  the free camera)."""
  import mujoco   # pylint: disable=import-outside-toplevel
  renderer = _renderer(model, width, height)
  data = mujoco.MjData(model)
  camera = 0 if model.ncam > 0 else -1
  frames = np.empty((qpos.shape[0], height, width, 3), np.uint8)
  try:
    for t in range(qpos.shape[0]):
      data.qpos[:], data.qvel[:] = qpos[t], qvel[t]
      mujoco.mj_forward(model, data)
      renderer.update_scene(data, camera=camera)
      frames[t] = renderer.render()
  finally:
    renderer.close()
  return frames


def write_video(path: str, frames: np.ndarray, fps: float) -> str:
  """Writes frames [T, H, W, 3] as MP4 (libx264 through imageio-ffmpeg) or GIF by `path`'s extension."""
  import imageio.v2 as imageio   # pylint: disable=import-outside-toplevel
  if path.endswith('.mp4'):
    # macro_block_size 1: no resizing of sizes that are not multiples of 16.
    with imageio.get_writer(path, fps=fps, codec='libx264', quality=7, macro_block_size=1) as writer:
      for frame in frames:
        writer.append_data(frame)
  else:
    imageio.mimsave(path, list(frames), duration=1000.0 / fps, loop=0)
  return path


def _video_format(choice: str) -> str:
  if choice != 'auto':
    return choice
  try:
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel,unused-import
    return 'mp4'
  except ImportError:
    return 'gif'


def _teacher_policy(teacher_dir: str, suite: Suite):
  """obs [K, E, O] -> [K, E, A]: the K stored teachers (padded sizes, as trained), actor k on task k."""
  params, cfgs = zip(*[policy.restore_teacher_actor(teacher_dir, name)[:2] for name in suite.task_names])
  stacked = jax.tree.map(lambda *x: jnp.stack(x), *params)
  masks = jnp.asarray(suite.action_masks)
  return lambda obs: ideal.greedy(stacked, obs, cfgs[0], masks)


def render_run(run_dir: str, out_dir: str, episode_length: int, teachers: bool = False, video_format: str = 'auto',
               width: int = 480, height: int = 360, seed: int = 0, backend: str = 'auto') -> list:
  """Writes one video per task; returns [(path, student return, teacher return or None)]."""
  if episode_length < 1:
    raise ValueError(f'--episode_length must be >= 1, got {episode_length}')
  checks.check_workdir_writable(out_dir, '--out')
  student_fn, _ = policy.restore_student(run_dir, backend)
  config = run_config.load_run_config(run_dir)
  suite = make_suite(config['benchmark'], num_envs=1, episode_length=episode_length, backend=backend)
  key = jax.random.key(seed)
  episodes = [jax.jit(functools.partial(record, student_fn, suite=suite))(key)]   # [(returns, frames)]
  if teachers:
    if not config.get('teacher_dir'):
      raise FileNotFoundError(f'run {run_dir} names no teacher directory')
    teacher_fn = _teacher_policy(config['teacher_dir'], suite)
    episodes.append(jax.jit(functools.partial(record, teacher_fn, suite=suite))(key))
  ext = _video_format(video_format)
  os.makedirs(out_dir, exist_ok=True)
  written = []
  k = 0
  for g, group in enumerate(suite.groups):
    for i, name in enumerate(group.names):
      model = models_lib.build_model(name, group.spec.xml)
      frames = np.concatenate([render_task(model, np.asarray(states[g][0][:, i], np.float64),
                                           np.asarray(states[g][1][:, i], np.float64), width, height)
                               for _, states in episodes], axis=2)   # side by side: student | teacher
      returns = [float(r[k]) for r, _ in episodes]
      label = f'{name}_student{returns[0]:.1f}' + (f'_teacher{returns[1]:.1f}' if teachers else '')
      fps = min(1.0 / group.dt, MAX_FPS)
      written.append((write_video(os.path.join(out_dir, f'{label}.{ext}'), frames, fps), returns[0],
                      returns[1] if teachers else None))
      print(f'{name:<32} student {returns[0]:9.1f}' + (f'  teacher {returns[1]:9.1f}' if teachers else '')
            + f'  -> {written[-1][0]}')
      k += 1
  return written
