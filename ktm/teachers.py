"""Task-specific TD3 teachers: train all K in one program, save each with its replay data D_k, load and validate.

On disk, one directory per teacher, written atomically:
  TEACHER_DIR/teachers/<TaskName>/teacher.json   task, dims, configs, evaluation history
  TEACHER_DIR/teachers/<TaskName>/state/         orbax: TD3State (actor, twin critics, targets, optimizer, step, key)
  TEACHER_DIR/teachers/<TaskName>/replay/        orbax: Transition rows [n, ...] (the teacher's own experience)
Teachers are stored at the suite's padded sizes (as trained); `raw_actor_params` / `raw_critic_params` give the
task's raw-size view.
"""

import dataclasses
import os
import time
from typing import Callable, List, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from ktm import checkpoint, metrics, multi_td3, replay, td3
from ktm.envs import Suite, make_suite

FORMAT_VERSION = 1
META_FILE = 'teacher.json'


@flax.struct.dataclass
class Teachers:
  """K loaded teachers, stacked: `states` [K], `buffer` [K, n] (D_k, padded sizes)."""
  states: td3.TD3State
  buffer: replay.ReplayBuffer
  cfg: td3.TD3Config = flax.struct.field(pytree_node=False)
  meta: tuple = flax.struct.field(pytree_node=False)


def teacher_path(teacher_dir: str, task_name: str) -> str:
  return os.path.join(teacher_dir, 'teachers', task_name)


def check_writable(teacher_dir: str, task_names: Sequence[str], overwrite: bool) -> None:
  """Fails before any training if a teacher directory exists and `overwrite` is off."""
  existing = [teacher_path(teacher_dir, n) for n in task_names if os.path.exists(teacher_path(teacher_dir, n))]
  if existing and not overwrite:
    raise FileExistsError(f'teacher directories already exist (pass --overwrite to replace them): {existing}')


ProgressFn = Callable[[int, dict, Optional[np.ndarray]], None]


def train(suite: Suite, eval_suite: Suite, cfg: td3.TD3Config, train_cfg: multi_td3.TrainConfig,
          progress: Optional[ProgressFn] = None):
  """Trains one TD3 teacher per task of `suite`, all K in each compiled call.

  `progress(env_steps, metrics, eval_returns)` is called on the host after every chunk; `eval_returns` [K, E] is
  given after each evaluation (every `eval_every` steps and at the end), else None.
  Returns (final TrainState, history: list of {'step', 'returns': [K][E]}, wall seconds).
  """
  start = time.perf_counter()
  key = jax.random.key(train_cfg.seed)
  state = multi_td3.init(jax.random.fold_in(key, 0), suite, cfg, train_cfg)
  eval_key = jax.random.fold_in(key, 1)
  history = []
  steps = 0
  while steps < train_cfg.steps:
    state, metrics = multi_td3.train_chunk(state, suite, cfg, train_cfg, update=steps >= train_cfg.start_steps)
    previous, steps = steps, steps + train_cfg.chunk_steps
    returns = None
    if steps // train_cfg.eval_every > previous // train_cfg.eval_every or steps >= train_cfg.steps:
      returns = np.asarray(multi_td3.evaluate(state.learners.actor_params, jax.random.fold_in(eval_key, steps),
                                              eval_suite, cfg))
      history.append({'step': steps, 'returns': returns.tolist()})
    if progress is not None:
      progress(steps, jax.device_get(metrics), returns)
  return state, history, time.perf_counter() - start


def summarize(task_names: Sequence[str], history: List[dict], steps: int, wall_seconds: float) -> List[dict]:
  """Per task: final and best average evaluation return, steps trained, wall seconds."""
  means = np.array([np.mean(h['returns'], axis=1) for h in history])  # [evals, K]
  return [dict(name=n, final_return=float(means[-1, k]), best_return=float(means[:, k].max()), steps=steps,
               wall_seconds=wall_seconds) for k, n in enumerate(task_names)]


def filled_rows(buffer: replay.ReplayBuffer, task: int) -> replay.Transition:
  """Task `task`'s filled rows [n, ...] (all of them once the ring has wrapped)."""
  n = int(buffer.size[task])
  return jax.tree.map(lambda x: np.asarray(x[task, :n]), buffer.data)


def save(teacher_dir: str, suite: Suite, state: multi_td3.TrainState, cfg: td3.TD3Config,
         train_cfg: multi_td3.TrainConfig, history: List[dict], overwrite: bool = False) -> List[str]:
  """Writes one teacher directory per task (atomically); returns their paths."""
  paths = []
  for k, name in enumerate(suite.task_names):
    path = teacher_path(teacher_dir, name)
    rows = filled_rows(state.buffer, k)
    meta = dict(format_version=FORMAT_VERSION, task_name=name, task_index=k, suite_tasks=list(suite.task_names),
                obs_dim=suite.obs_dims[k], act_dim=suite.act_dims[k], obs_size=suite.obs_size,
                act_size=suite.act_size, hidden_sizes=list(cfg.hidden_sizes), td3_config=dataclasses.asdict(cfg),
                train_config=dataclasses.asdict(train_cfg), replay_size=int(rows.reward.shape[0]),
                eval_history=[{'step': h['step'], 'returns': h['returns'][k]} for h in history])
    with checkpoint.atomic_directory(path, overwrite) as tmp:
      checkpoint.save_pytree(os.path.join(tmp, 'state'), jax.tree.map(lambda x: x[k], state.learners))
      checkpoint.save_pytree(os.path.join(tmp, 'replay'), rows)
      checkpoint.write_json(os.path.join(tmp, META_FILE), meta)
    paths.append(path)
  return paths


def train_and_save(benchmark: str, td3_kwargs: dict, train_cfg: multi_td3.TrainConfig, workdir: str,
                   backend: str = 'auto', overwrite: bool = False, tensorboard: bool = True,
                   progress_bar: bool = True) -> List[dict]:
  """Trains the teachers of suite `benchmark`, logs to WORKDIR (metrics.csv/jsonl, tensorboard/) and saves them
  under WORKDIR/teachers; returns the per-task results (also written to WORKDIR/results.json)."""
  suite = make_suite(benchmark, num_envs=train_cfg.num_envs, backend=backend)
  eval_suite = make_suite(benchmark, num_envs=train_cfg.eval_episodes, backend=backend)
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, **td3_kwargs)
  check_writable(workdir, suite.task_names, overwrite)
  checkpoint.write_json(os.path.join(workdir, 'config.json'), dict(
      benchmark=benchmark, backend=suite.backend_name, td3=dataclasses.asdict(cfg),
      train=dataclasses.asdict(train_cfg), jax=jax.__version__, device=str(jax.devices()[0])))
  print(f'{benchmark}: {suite.num_tasks} tasks {suite.task_names} on {suite.backend_name} physics, '
        f'{jax.devices()[0].platform}; {train_cfg.steps:,} steps each, networks {cfg.hidden_sizes}')
  writer = metrics.MetricsWriter(workdir, tensorboard=tensorboard)
  bar = metrics.Progress(train_cfg.steps, 'teachers', disable=not progress_bar)

  def progress(step, train_metrics, returns):
    bar.update(train_cfg.chunk_steps)
    if returns is not None:
      metrics.log_evaluation(writer, bar, step, suite.task_names, returns, train_metrics)

  state, history, wall = train(suite, eval_suite, cfg, train_cfg, progress)
  bar.close()
  writer.close()
  save(workdir, suite, state, cfg, train_cfg, history, overwrite=overwrite)
  results = summarize(suite.task_names, history, train_cfg.steps, wall)
  checkpoint.write_json(os.path.join(workdir, 'results.json'), dict(benchmark=benchmark, wall_seconds=wall,
                                                                    tasks=results))
  print(f'{"task":<32} {"final":>9} {"best":>9}')
  for r in results:
    print(f'{r["name"]:<32} {r["final_return"]:>9.1f} {r["best_return"]:>9.1f}')
  print(f'{wall:.0f} s; teachers in {os.path.join(workdir, "teachers")}')
  return results


def _check_meta(meta: dict, path: str, suite: Suite, k: int, hidden_sizes) -> None:
  name = suite.task_names[k]
  expected = dict(task_name=name, obs_dim=suite.obs_dims[k], act_dim=suite.act_dims[k], obs_size=suite.obs_size,
                  act_size=suite.act_size, hidden_sizes=list(hidden_sizes))
  for field, want in expected.items():
    if field not in meta:
      raise checkpoint.CheckpointError(f'{os.path.join(path, META_FILE)} has no {field!r}')
    if meta[field] != want:
      raise ValueError(f'teacher for task {name!r} ({path}) does not match: {field} is {meta[field]}, '
                       f'expected {want}')


def load_metas(teacher_dir: str, suite: Suite, hidden_sizes: Optional[Sequence[int]] = None) -> List[dict]:
  """The teacher.json of each of `suite`'s tasks (in suite order), validated: task names, obs/act dims and
  network sizes (all teachers must share `hidden_sizes`; by default the first teacher's)."""
  metas = []
  for k, name in enumerate(suite.task_names):
    path = teacher_path(teacher_dir, name)
    if not os.path.isdir(path):
      raise FileNotFoundError(f'no teacher for task {name!r}: {path} does not exist '
                              f'(train it with experiments/train_teachers.py)')
    meta = checkpoint.read_json(os.path.join(path, META_FILE))
    if hidden_sizes is None:
      hidden_sizes = tuple(meta.get('hidden_sizes', ()))
    _check_meta(meta, path, suite, k, hidden_sizes)
    metas.append(meta)
  return metas


def load(teacher_dir: str, suite: Suite, hidden_sizes: Optional[Sequence[int]] = None) -> Teachers:
  """Restores the teachers of `suite`'s tasks (in suite order), validated as in `load_metas`."""
  metas = load_metas(teacher_dir, suite, hidden_sizes)
  cfg = td3.TD3Config(**{**metas[0]['td3_config'], 'hidden_sizes': tuple(metas[0]['hidden_sizes'])})
  like_state = jax.eval_shape(lambda: td3.init(jax.random.key(0), cfg))
  states, rows = [], []
  for meta in metas:
    path = teacher_path(teacher_dir, meta['task_name'])
    states.append(checkpoint.restore_pytree(os.path.join(path, 'state'), like_state))
    n = meta['replay_size']
    like_rows = replay.Transition(**{f: jax.ShapeDtypeStruct((n,) + s, jnp.float32)
                                     for f, s in replay.field_shapes(suite.obs_size, suite.act_size).items()})
    rows.append(checkpoint.restore_pytree(os.path.join(path, 'replay'), like_rows))
  return Teachers(states=jax.tree.map(lambda *x: jnp.stack(x), *states), buffer=_stack_rows(rows),
                  cfg=cfg, meta=tuple(metas))


def _stack_rows(rows: List[replay.Transition]) -> replay.ReplayBuffer:
  """K row sets of possibly different lengths -> one [K, max_n] buffer with per-task sizes."""
  sizes = [int(r.reward.shape[0]) for r in rows]
  capacity = max(max(sizes), 1)
  padded = [jax.tree.map(lambda x: jnp.pad(x, [(0, capacity - x.shape[0])] + [(0, 0)] * (x.ndim - 1)), r)
            for r in rows]
  return replay.ReplayBuffer(data=jax.tree.map(lambda *x: jnp.stack(x), *padded),
                             position=jnp.asarray([s % capacity for s in sizes], jnp.int32),
                             size=jnp.asarray(sizes, jnp.int32))


def raw_actor_params(actor_params, obs_dim: int, act_dim: int):
  """The raw-size actor of a padded one: first-layer rows [:obs_dim], output units [:act_dim]."""
  mlp = dict(actor_params['MLP_0'])
  layers = sorted(mlp, key=lambda n: int(n.split('_')[-1]))
  first, last = layers[0], layers[-1]
  mlp[first] = {**mlp[first], 'kernel': mlp[first]['kernel'][:obs_dim]}
  mlp[last] = {'kernel': mlp[last]['kernel'][:, :act_dim], 'bias': mlp[last]['bias'][:act_dim]}
  return {**actor_params, 'MLP_0': mlp}


def raw_critic_params(critic_params, obs_dim: int, act_dim: int, obs_size: int):
  """The raw-size twin critics of padded ones: first-layer input rows for s[:obs_dim] and a[:act_dim]."""
  mlp = dict(critic_params['MLP_0'])
  kernel = mlp['Dense_0']['kernel']   # [2, obs_size + act_size, H]
  raw = jnp.concatenate([kernel[:, :obs_dim], kernel[:, obs_size:obs_size + act_dim]], axis=1)
  mlp['Dense_0'] = {**mlp['Dense_0'], 'kernel': raw}
  return {**critic_params, 'MLP_0': mlp}
