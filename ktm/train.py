"""Algorithm 1's host loop: offline then online stage in compiled chunks, evaluation, checkpoints and resume.

Chunk boundaries depend only on the configs and the epoch counters in the state, so a run resumed from any
checkpoint takes exactly the steps of an uninterrupted one (bit-identical on CPU).
"""

import dataclasses
import json
import os
import time
from typing import Callable, List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ktm import checkpoint, metrics, multi_td3, student, td3
from ktm import teachers as teachers_lib
from ktm.envs import Suite, make_suite
from ktm.teachers import Teachers

# progress(stage, epoch, metrics, eval_returns [K, E] or None)
ProgressFn = Callable[[str, int, dict, Optional[np.ndarray]], None]
STAGE_NAMES = {student.OFFLINE: 'offline', student.ONLINE: 'online'}


def stage_length(stage: int, ktm_cfg: student.KTMConfig) -> int:
  return ktm_cfg.offline_epochs if stage == student.OFFLINE else ktm_cfg.online_epochs


def global_epoch(stage: int, epoch: int, ktm_cfg: student.KTMConfig) -> int:
  return epoch if stage == student.OFFLINE else ktm_cfg.offline_epochs + epoch


def next_chunk(stage: int, epoch: int, ktm_cfg: student.KTMConfig) -> int:
  """Epochs in the next compiled call: up to the chunk size, stopping at eval/checkpoint boundaries and stage end."""
  chunk = ktm_cfg.offline_chunk if stage == student.OFFLINE else ktm_cfg.chunk_steps
  g = global_epoch(stage, epoch, ktm_cfg)
  boundary = min(epoch + ktm_cfg.eval_every - epoch % ktm_cfg.eval_every,
                 epoch + ktm_cfg.checkpoint_every - g % ktm_cfg.checkpoint_every,
                 stage_length(stage, ktm_cfg))
  return min(chunk, boundary - epoch)


def advance_stage(state: student.KTMState, ktm_cfg: student.KTMConfig) -> student.KTMState:
  """Moves past finished stages; leaving the offline stage syncs the targets (line 9)."""
  stage, epoch = int(state.stage), int(state.epoch)
  while stage != student.DONE and epoch >= stage_length(stage, ktm_cfg):
    if stage == student.OFFLINE:
      state = student.sync_targets(state)
    stage, epoch = stage + 1, 0
    state = state.replace(stage=jnp.asarray(stage, jnp.int32),
                          epoch=jnp.zeros((), jnp.int32))
  return state


def train(suite: Suite, eval_suite: Suite, teachers: Teachers, cfg: td3.TD3Config, ktm_cfg: student.KTMConfig,
          workdir: Optional[str] = None, progress: Optional[ProgressFn] = None,
          exit_after_checkpoint: Optional[int] = None):
  """Runs (or resumes from WORKDIR/checkpoints) Algorithm 1. Returns (final KTMState, eval history, wall seconds).

  History entries: {'stage', 'epoch', 'global_epoch', 'returns': [K][E]}. `exit_after_checkpoint=n` exits the
  process one chunk after the n-th checkpoint of this call (used by tests to simulate a kill).
  """
  key = jax.random.key(ktm_cfg.seed)
  state = student.init(jax.random.fold_in(key, 0), suite, cfg, ktm_cfg)
  eval_key = jax.random.fold_in(key, 1)
  history: List[dict] = []
  manager = checkpoint.CheckpointManager(os.path.join(workdir, 'checkpoints')) if workdir else None
  wall_before = 0.0
  if manager is not None and manager.latest_step() is not None:
    state, extra = manager.restore(state)
    history, wall_before = extra['history'], extra['wall_seconds']
  start = time.perf_counter()
  saves = 0
  teacher_critics = teachers.states.critic_params
  masks = jnp.asarray(suite.action_masks)
  state = advance_stage(state, ktm_cfg)
  while int(state.stage) != student.DONE:
    stage, epoch = int(state.stage), int(state.epoch)
    n = next_chunk(stage, epoch, ktm_cfg)
    if stage == student.OFFLINE:
      state, metrics = student.offline_chunk(state, teacher_critics, teachers.buffer, masks, cfg, teachers.cfg,
                                             ktm_cfg, n)
    else:
      state, metrics = student.online_chunk(state, teacher_critics, suite, cfg, teachers.cfg, ktm_cfg, n)
    epoch += n
    returns = None
    if epoch % ktm_cfg.eval_every == 0 or epoch == stage_length(stage, ktm_cfg):
      g = global_epoch(stage, epoch, ktm_cfg)
      returns = np.asarray(student.evaluate(state.student.actor_params, jax.random.fold_in(eval_key, g),
                                            eval_suite, cfg))
      history.append({'stage': STAGE_NAMES[stage], 'epoch': epoch, 'global_epoch': g, 'returns': returns.tolist()})
    if progress is not None:
      progress(STAGE_NAMES[stage], epoch, jax.device_get(metrics), returns)
    if exit_after_checkpoint is not None and saves >= exit_after_checkpoint:
      os._exit(3)   # simulated kill: nothing after the last checkpoint is kept
    state = advance_stage(state, ktm_cfg)
    done = int(state.stage) == student.DONE
    if manager is not None and (global_epoch(stage, epoch, ktm_cfg) % ktm_cfg.checkpoint_every == 0 or done):
      wall = wall_before + time.perf_counter() - start
      manager.save(global_epoch(stage, epoch, ktm_cfg), state, {'history': history, 'wall_seconds': wall})
      saves += 1
  if manager is not None:
    manager.close()
  return state, history, wall_before + time.perf_counter() - start


def best_returns(history: List[dict]) -> np.ndarray:
  """The paper's metric per task [K]: the max over evaluations of the average return over episodes."""
  if not history:
    raise ValueError('no evaluation was run')
  return np.max([np.mean(h['returns'], axis=1) for h in history], axis=0)


def check_config(workdir: str, config: dict) -> None:
  """Records the run's config in WORKDIR/config.json; a resumed run must use the same one."""
  path = os.path.join(workdir, 'config.json')
  config = json.loads(json.dumps(config))   # as it reads back (tuples become lists)
  if os.path.exists(path):
    saved = checkpoint.read_json(path)
    diff = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
    if diff:
      raise ValueError(f'{workdir} holds a run with another configuration (saved, requested): {diff}; '
                       'use a new --workdir')
  else:
    checkpoint.write_json(path, config)


def teacher_returns(metas) -> np.ndarray:
  """Each teacher's best average evaluation return during its training (the "Ideal" baseline), [K], from its
  teacher.json."""
  return np.array([max(np.mean(h['returns']) for h in m['eval_history']) for m in metas])


def results_table(task_names, student_returns, teacher_returns_) -> List[dict]:
  return [dict(name=n, student_return=float(s), teacher_return=float(t), ratio=float(s / t) if t else float('nan'))
          for n, s, t in zip(task_names, student_returns, teacher_returns_)]


def print_table(rows: List[dict]) -> None:
  print(f'{"task":<32} {"student":>9} {"teacher":>9} {"ratio":>7}')
  for r in rows:
    print(f'{r["name"]:<32} {r["student_return"]:>9.1f} {r["teacher_return"]:>9.1f} {r["ratio"]:>7.3f}')


def ensure_teachers(benchmark: str, task_names, teacher_dir: str, teacher_preset: dict, backend: str,
                    progress_bar: bool, seed: int) -> None:
  """Trains the suite's teachers into `teacher_dir` with `teacher_preset` unless some are there already."""
  if any(os.path.exists(teachers_lib.teacher_path(teacher_dir, n)) for n in task_names):
    return
  print(f'no teachers in {teacher_dir}: training them first')
  train_cfg = multi_td3.TrainConfig(**{**teacher_preset['train'], 'seed': seed})
  teachers_lib.train_and_save(benchmark, teacher_preset['td3'], train_cfg, teacher_dir, backend,
                              progress_bar=progress_bar)


def run(benchmark: str, td3_kwargs: dict, ktm_cfg: student.KTMConfig, workdir: str, teacher_dir: str,
        teacher_preset: Optional[dict] = None, backend: str = 'auto', tensorboard: bool = True,
        progress_bar: bool = True, exit_after_checkpoint: Optional[int] = None) -> dict:
  """KTM-DRL end to end: teachers (trained first if `teacher_dir` has none and a preset is given), then the
  student, resuming from WORKDIR/checkpoints if present. Prints and returns the per-task table (results.json)."""
  suite = make_suite(benchmark, backend=backend)
  if teacher_preset is not None:
    ensure_teachers(benchmark, suite.task_names, teacher_dir, teacher_preset, backend, progress_bar, ktm_cfg.seed)
  eval_suite = make_suite(benchmark, num_envs=ktm_cfg.eval_episodes, backend=backend)
  teachers = teachers_lib.load(teacher_dir, suite)
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, **td3_kwargs)
  check_config(workdir, dict(benchmark=benchmark, td3=dataclasses.asdict(cfg), ktm=dataclasses.asdict(ktm_cfg),
                             teacher_dir=os.path.abspath(teacher_dir)))
  print(f'KTM-DRL on {benchmark}: {suite.num_tasks} tasks on {suite.backend_name} physics, '
        f'{jax.devices()[0].platform}; {ktm_cfg.offline_epochs:,} offline + {ktm_cfg.online_epochs:,} online '
        f'epochs, student {cfg.hidden_sizes}, combine={ktm_cfg.combine}, replay={ktm_cfg.replay}')
  writer = metrics.MetricsWriter(workdir, tensorboard=tensorboard)
  bar = metrics.Progress(ktm_cfg.offline_epochs + ktm_cfg.online_epochs, 'ktm', disable=not progress_bar)
  done = [0]

  def progress(stage, epoch, train_metrics, returns):
    g = global_epoch(student.OFFLINE if stage == 'offline' else student.ONLINE, epoch, ktm_cfg)
    bar.update(g - done[0])
    done[0] = g
    if returns is not None:
      metrics.log_evaluation(writer, bar, g, suite.task_names, returns, train_metrics,
                             {'stage': float(stage == 'online')})

  state, history, wall = train(suite, eval_suite, teachers, cfg, ktm_cfg, workdir, progress, exit_after_checkpoint)
  bar.close()
  writer.close()
  rows = results_table(suite.task_names, best_returns(history), teacher_returns(teachers.meta))
  results = dict(benchmark=benchmark, tasks=rows, wall_seconds=wall)
  checkpoint.write_json(os.path.join(workdir, 'results.json'), results)
  print_table(rows)
  print(f'{wall:.0f} s (student); results in {os.path.join(workdir, "results.json")}')
  return results


def evaluate_checkpoint(workdir: str, episodes: Optional[int] = None, evaluate_teachers: bool = False,
                        backend: str = 'auto', seed: int = 0) -> List[dict]:
  """Restores the newest student checkpoint of a run_ktm WORKDIR and evaluates it (and, if asked, its teachers)
  over `episodes` deterministic episodes per task; returns the per-task table."""
  config_path = os.path.join(workdir, 'config.json')
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f'no run directory at {workdir}')
  config = checkpoint.read_json(config_path)
  try:
    ktm_cfg = student.KTMConfig(**config['ktm'])
    td3_cfg = td3.TD3Config(**{**config['td3'], 'hidden_sizes': tuple(config['td3']['hidden_sizes'])})
    benchmark, teacher_dir = config['benchmark'], config['teacher_dir']
  except (KeyError, TypeError) as e:
    raise checkpoint.CheckpointError(f'{config_path} is not a run_ktm config: {e}') from e
  suite = make_suite(benchmark, backend=backend)
  eval_suite = make_suite(benchmark, num_envs=episodes or ktm_cfg.eval_episodes, backend=backend)
  like = jax.eval_shape(lambda: student.init(jax.random.key(0), suite, td3_cfg, ktm_cfg))
  manager = checkpoint.CheckpointManager(os.path.join(workdir, 'checkpoints'))
  try:
    state, _ = manager.restore(like)
  finally:
    manager.close()
  key = jax.random.key(seed)
  student_returns = np.asarray(student.evaluate(state.student.actor_params, key, eval_suite, td3_cfg)).mean(axis=1)
  if evaluate_teachers:
    teachers = teachers_lib.load(teacher_dir, suite)
    reference = np.asarray(multi_td3.evaluate(teachers.states.actor_params, key, eval_suite, teachers.cfg)).mean(1)
  else:   # their training evaluations: teacher.json alone, no parameters or replay data
    reference = teacher_returns(teachers_lib.load_metas(teacher_dir, suite))
  return results_table(suite.task_names, student_returns, reference)
