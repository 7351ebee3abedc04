"""Task-specific TD3 teachers: train all K in one program, save each with its replay data D_k, load and validate.

Training runs on the shared loop as the 'ideal' method (`ktm.runs.teacher_training.train_teachers`: checkpoints,
resume). On disk, one directory per teacher, the whole set appearing at once (written to a temporary sibling, then
renamed):
  TEACHER_DIR/teachers/set.json             the task list, written last
  TEACHER_DIR/teachers/<TaskName>/teacher.json   task, dims, configs, evaluation history
  TEACHER_DIR/teachers/<TaskName>/state/         orbax: TD3State (actor, twin critics, targets, optimizer, step, key)
  TEACHER_DIR/teachers/<TaskName>/replay/        orbax: Transition rows [n, ...] (the teacher's own experience)
Teachers are stored at the suite's padded sizes (as trained); `raw_actor_params` / `raw_critic_params` give the
task's raw-size view.
"""

import dataclasses
import functools
import os
import shutil
from typing import List, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from ktm import checkpoint, replay, rollout, td3
from ktm.envs import Suite
from ktm.methods import ideal

FORMAT_VERSION = 2
META_FILE = 'teacher.json'
SET_FILE = 'set.json'     # written last into the set: its presence means the set is complete


@flax.struct.dataclass
class Teachers:
  """K loaded teachers, stacked: `states` [K], `buffer` [K, n] (D_k, padded sizes)."""
  states: td3.TD3State
  buffer: replay.ReplayBuffer
  cfg: td3.TD3Config = flax.struct.field(pytree_node=False)
  meta: tuple = flax.struct.field(pytree_node=False)


def set_path(teacher_dir: str) -> str:
  """Where a complete teacher set lives: TEACHER_DIR/teachers."""
  return os.path.join(teacher_dir, 'teachers')


def teacher_path(teacher_dir: str, task_name: str) -> str:
  return os.path.join(set_path(teacher_dir), task_name)


def complete(teacher_dir: Optional[str]) -> bool:
  """Whether TEACHER_DIR holds a complete teacher set (the set directory appears whole, by one rename). A set
  written before format 2 (one directory per teacher, no set.json) counts when every entry has its teacher.json;
  `load_metas` then checks that every task of the suite is there."""
  if not teacher_dir or not os.path.isdir(set_path(teacher_dir)):
    return False
  if os.path.isfile(os.path.join(set_path(teacher_dir), SET_FILE)):
    return True
  entries = os.listdir(set_path(teacher_dir))
  return bool(entries) and all(os.path.isfile(os.path.join(teacher_path(teacher_dir, e), META_FILE)) for e in entries)


def summarize(task_names: Sequence[str], history: List[dict], steps: int, wall_seconds: float,
              num_envs: int = 1) -> List[dict]:
  """Per task: final and best average evaluation return, steps (epochs) trained, env steps (steps x E envs per
  task), wall seconds."""
  means = np.array([np.mean(h['returns'], axis=1) for h in history])  # [evals, K]
  return [dict(name=n, final_return=float(means[-1, k]), best_return=float(means[:, k].max()), steps=steps,
               env_steps=steps * num_envs, wall_seconds=wall_seconds) for k, n in enumerate(task_names)]


def filled_rows(buffer: replay.ReplayBuffer, task: int) -> replay.Transition:
  """Task `task`'s filled rows [n, ...] (all of them once the ring has wrapped)."""
  n = int(buffer.size[task])
  return jax.tree.map(lambda x: np.asarray(x[task, :n]), buffer.data)


def save(teacher_dir: str, suite: Suite, learners: td3.TD3State, buffer: replay.ReplayBuffer, cfg: td3.TD3Config,
         run_config: dict, history: List[dict]) -> str:
  """Writes the K teachers (learners [K], replay [K, capacity]) as ONE set: every task's directory is written into a
  temporary sibling, which then becomes TEACHER_DIR/teachers in one rename. Returns the set's path."""
  remove_leftovers(teacher_dir)
  # An existing set directory here is incomplete (no set.json: `runs` never saves over a complete one).
  with checkpoint.atomic_directory(set_path(teacher_dir), overwrite=True) as tmp:
    for k, name in enumerate(suite.task_names):
      path = os.path.join(tmp, name)
      rows = filled_rows(buffer, k)
      meta = dict(format_version=FORMAT_VERSION, task_name=name, task_index=k, suite_tasks=list(suite.task_names),
                  obs_dim=suite.obs_dims[k], act_dim=suite.act_dims[k], obs_size=suite.obs_size,
                  act_size=suite.act_size, hidden_sizes=list(cfg.hidden_sizes), td3_config=dataclasses.asdict(cfg),
                  run_config=run_config, replay_size=int(rows.reward.shape[0]),
                  eval_history=[{'step': h['global_epoch'], 'returns': h['returns'][k]} for h in history])
      checkpoint.save_pytree(os.path.join(path, 'state'), jax.tree.map(lambda x, k=k: x[k], learners))
      checkpoint.save_pytree(os.path.join(path, 'replay'), rows)
      checkpoint.write_json(os.path.join(path, META_FILE), meta)
    checkpoint.write_json(os.path.join(tmp, SET_FILE), dict(tasks=list(suite.task_names)))
  return set_path(teacher_dir)


def remove_leftovers(teacher_dir: str) -> None:
  """Deletes temporary set directories left by a save that was killed."""
  if os.path.isdir(teacher_dir):
    for name in os.listdir(teacher_dir):
      if name.startswith(f'.{os.path.basename(set_path(teacher_dir))}.tmp-'):
        shutil.rmtree(os.path.join(teacher_dir, name), ignore_errors=True)


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
      hint = ('it holds teachers for other tasks' if complete(teacher_dir) else
              'train them with experiments/train_teachers.py')
      raise FileNotFoundError(f'no teacher for task {name!r} in {teacher_dir}: {path} does not exist ({hint})')
    meta = checkpoint.read_json(os.path.join(path, META_FILE))
    if hidden_sizes is None:
      hidden_sizes = tuple(meta.get('hidden_sizes', ()))
    _check_meta(meta, path, suite, k, hidden_sizes)
    metas.append(meta)
  return metas


def _config(meta: dict) -> td3.TD3Config:
  return td3.TD3Config(**{**meta['td3_config'], 'hidden_sizes': tuple(meta['hidden_sizes'])})


def load_config(teacher_dir: str) -> td3.TD3Config:
  """The teachers' TD3Config (shared by the set) from the first teacher.json."""
  first = sorted(e for e in os.listdir(set_path(teacher_dir)) if e != SET_FILE)[0]
  return _config(checkpoint.read_json(os.path.join(teacher_path(teacher_dir, first), META_FILE)))


def load(teacher_dir: str, suite: Suite, hidden_sizes: Optional[Sequence[int]] = None) -> Teachers:
  """Restores the teachers of `suite`'s tasks (in suite order), validated as in `load_metas`."""
  metas = load_metas(teacher_dir, suite, hidden_sizes)
  cfg = _config(metas[0])
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


def evaluate(teachers: Teachers, key: jax.Array, eval_suite: Suite) -> jnp.ndarray:
  """Deterministic returns [K, E] of the K teachers, teacher k in task k, one episode per env."""
  return _evaluate(teachers.states.actor_params, key, eval_suite, teachers.cfg)


@functools.partial(jax.jit, static_argnames=('eval_suite', 'cfg'))
def _evaluate(actor_params, key: jax.Array, eval_suite: Suite, cfg: td3.TD3Config) -> jnp.ndarray:
  masks = jnp.asarray(eval_suite.action_masks)
  return rollout.evaluate(lambda params, obs, _: ideal.greedy(params, obs, cfg, masks), actor_params, key,
                          eval_suite)


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
