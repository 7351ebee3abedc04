"""Trained policies outside the trainer: `load(RUN_DIR, task)` and `load_teacher(TEACHER_DIR, task)` give a jitted
`obs -> action` at the task's raw sizes, for gymnasium's own envs or any other code.

  from ktm import policy
  act = policy.load('/tmp/ktm/quick', 'InvertedPendulumLongPole')   # the student (any method's run directory)
  action = act(obs)        # obs [..., obs_dim] (numpy or JAX, any float dtype) -> action [..., act_dim]

The padding of the observation to the suite's size, the task's row of the multi-task policy, f^k (the first act_dim
outputs) and the map from [-1, 1] onto the actuators' ctrlrange (what a gymnasium MuJoCo env's `step` takes) all
happen inside. `ctrl_units=False` returns the policy's raw [-1, 1] action instead.
"""

import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ktm import checkpoint, padding, td3
from ktm import teachers as teachers_lib
from ktm.envs import Suite, make_suite
from ktm.envs.suite import scale_action
from ktm.runs import restore, run_config


@dataclasses.dataclass(frozen=True)
class TaskSlot:
  """Where task `name` sits in a suite: its row k of K, raw and padded sizes, its actuators' ctrl range [act_dim]."""
  name: str
  index: int
  num_tasks: int
  obs_dim: int
  act_dim: int
  obs_size: int
  act_size: int
  ctrl_lo: np.ndarray
  ctrl_hi: np.ndarray


def task_slot(suite: Suite, task: str) -> TaskSlot:
  if task not in suite.task_names:
    raise ValueError(f'no task {task!r} in this run; its tasks: {", ".join(suite.task_names)}')
  if suite.backend_name == 'gym' or getattr(suite, 'inner', None) is not None:
    raise ValueError('a policy of a gymnasium suite or of a suite with the task-id input cannot be exported yet '
                     '(ktm/policy.py maps MuJoCo tasks\' raw observations without a task id)')
  k = suite.task_names.index(task)
  group = next(g for g in suite.groups if task in g.names)
  i = group.names.index(task)
  return TaskSlot(task, k, suite.num_tasks, suite.obs_dims[k], suite.act_dims[k], suite.obs_size, suite.act_size,
                  group.ctrl_lo[i], group.ctrl_hi[i])


def restore_student(run_dir: str, backend: str = 'auto') -> tuple[Callable, Suite]:
  """The ONE place that reads a run directory: (greedy policy `obs [K, E, obs_size] -> [K, E, act_size]` in
  [-1, 1], the run's suite). Relies on `ktm.runs.restore.restore(run_dir)` -> (method, learner, config) and
  `method.act(learner, obs, key, explore=False)`, and on config['benchmark'] naming the suite."""
  method, learner, config = restore.restore(run_dir, backend)
  suite = make_suite(config['benchmark'], backend=backend)
  return (lambda obs: method.act(learner, obs, jax.random.key(0), False)), suite


def _single_task_fn(multi_fn: Callable, slot: TaskSlot, ctrl_units: bool) -> Callable:
  """obs [..., obs_dim] -> action [..., act_dim] through a K-task policy on padded [K, B, obs_size] inputs."""
  def act(obs):
    obs = jnp.asarray(obs, jnp.float32)
    lead = obs.shape[:-1]
    rows = padding.pad(obs.reshape(-1, slot.obs_dim), slot.obs_size)       # [B, obs_size]
    full = jnp.zeros((slot.num_tasks, rows.shape[0], slot.obs_size), jnp.float32).at[slot.index].set(rows)
    action = padding.slice_action(multi_fn(full)[slot.index], slot.act_dim)  # f^k: [B, act_dim]
    if ctrl_units:
      action = scale_action(action, slot.ctrl_lo, slot.ctrl_hi)
    return action.reshape(lead + (slot.act_dim,))
  return jax.jit(act)


def load(run_dir: str, task: str, ctrl_units: bool = True, backend: str = 'auto') -> Callable:
  """Jitted `obs [..., obs_dim] -> action [..., act_dim]` of the newest checkpoint of RUN_DIR (run_ktm.py or any
  method's run) on `task`: in the actuators' ctrlrange (gymnasium's action) unless `ctrl_units=False`."""
  multi_fn, suite = restore_student(run_dir, backend)
  return _single_task_fn(multi_fn, task_slot(suite, task), ctrl_units)


def teacher_suite(teacher_dir: str, task: str, backend: str = 'auto') -> Suite:
  """The suite a teacher was trained in (its teacher.json's run_config), else the task alone."""
  meta = checkpoint.read_json(os.path.join(teachers_lib.teacher_path(teacher_dir, task), teachers_lib.META_FILE))
  benchmark = (meta.get('run_config') or {}).get('benchmark') or f'single:{task}'
  return make_suite(benchmark, backend=backend)


def restore_teacher_actor(teacher_dir: str, task: str) -> tuple[Any, td3.TD3Config, dict]:
  """(padded actor params, TD3Config, teacher.json) of TEACHER_DIR/teachers/<task>/."""
  path = teachers_lib.teacher_path(teacher_dir, task)
  if not os.path.isdir(path):
    raise FileNotFoundError(f'no teacher for task {task!r}: {path} does not exist')
  meta = checkpoint.read_json(os.path.join(path, teachers_lib.META_FILE))
  cfg = td3.TD3Config(**{**meta['td3_config'], 'hidden_sizes': tuple(meta['hidden_sizes'])})
  like = jax.eval_shape(lambda: td3.init(jax.random.key(0), cfg))
  state = checkpoint.restore_pytree(os.path.join(path, 'state'), like)
  return state.actor_params, cfg, meta


def load_teacher(teacher_dir: str, task: str, ctrl_units: bool = True, backend: str = 'auto') -> Callable:
  """Jitted `obs [..., obs_dim] -> action [..., act_dim]` of task `task`'s teacher in TEACHER_DIR (a teacher
  directory, or a run directory whose config names one), at the raw sizes (`teachers.raw_actor_params`)."""
  if not os.path.isdir(teachers_lib.set_path(teacher_dir)) and os.path.isfile(
      os.path.join(teacher_dir, run_config.CONFIG_FILE)):
    teacher_dir = (checkpoint.read_json(os.path.join(teacher_dir, run_config.CONFIG_FILE)).get('teacher_dir')
                   or teacher_dir)
  actor_params, cfg, meta = restore_teacher_actor(teacher_dir, task)
  slot = task_slot(teacher_suite(teacher_dir, task, backend), task)
  raw = teachers_lib.raw_actor_params(actor_params, meta['obs_dim'], meta['act_dim'])
  raw_cfg = dataclasses.replace(cfg, obs_size=meta['obs_dim'], act_size=meta['act_dim'])

  def act(obs):
    action = td3.policy(raw, jnp.asarray(obs, jnp.float32), raw_cfg)
    return scale_action(action, slot.ctrl_lo, slot.ctrl_hi) if ctrl_units else action
  return jax.jit(act)
