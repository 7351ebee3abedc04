"""A finished (or running) run read back: the members' learners from its newest valid checkpoint, and their
evaluation (with their teachers') over deterministic episodes."""

import os
from typing import List, Optional

import jax
import numpy as np

from ktm import checkpoint, loop
from ktm import sweep as sweep_lib
from ktm import teachers as teachers_lib
from ktm.envs import make_suite
from ktm.methods import TaskInfo
from ktm.runs import reporting, run_config, sweep_members


def restore(workdir: str, backend: str = 'auto', member: int = 0):
  """(method, learner, config) of sweep member `member` (default: the only one of a plain run) in the newest valid
  checkpoint of any run directory; the method carries the member's swept values."""
  method, learners, config, sweep = restore_members(workdir, backend)
  if not 0 <= member < sweep.size:
    raise ValueError(f'--member={member} is not allowed: {workdir} has members 0..{sweep.size - 1}')
  return sweep_lib.member_methods(method, sweep)[member], loop.member(learners, member), config


def restore_members(workdir: str, backend: str = 'auto'):
  """(method, learners [S, ...], config, sweep) of the newest valid checkpoint of any run directory."""
  config = run_config.load_run_config(workdir)
  suite = make_suite(config['benchmark'], backend=backend)
  sweep = sweep_members.config_sweep(config)
  teacher_cfg = None
  if config.get('teacher_dir') and teachers_lib.complete(config['teacher_dir']):
    teacher_cfg = teachers_lib.load_config(config['teacher_dir'])
  try:
    method = run_config.build_method(config['method'], TaskInfo.from_suite(suite), config, teacher_cfg)
  except (KeyError, TypeError) as e:
    raise checkpoint.CheckpointError(f'{os.path.join(workdir, run_config.CONFIG_FILE)} is not a complete run '
                                     f'config: {e}') from e
  like = jax.eval_shape(lambda: loop.init_members(sweep, method, suite))
  manager = checkpoint.CheckpointManager(os.path.join(workdir, 'checkpoints'))
  try:
    state, _ = manager.restore(like)
  finally:
    manager.close()
  return method, state.learner, config, sweep


def evaluate_checkpoint(workdir: str, episodes: Optional[int] = None, evaluate_teachers: bool = False,
                        backend: str = 'auto', seed: int = 0, member: Optional[int] = None) -> List[dict]:
  """Restores the newest checkpoint of any method's WORKDIR and evaluates its members (all, or `member`) and, if
  asked, their teachers over `episodes` deterministic episodes per task; returns one table per member
  [{'member', 'seed', 'values', 'tasks': rows}]."""
  if episodes is not None and episodes < 1:
    raise ValueError(f'--episodes must be >= 1, got {episodes}')
  method, learners, config, sweep = restore_members(workdir, backend)
  members = range(sweep.size) if member is None else [member]
  if member is not None and not 0 <= member < sweep.size:
    raise ValueError(f'--member={member} is not allowed: {workdir} has members 0..{sweep.size - 1}')
  member_methods = sweep_lib.member_methods(method, sweep)
  episodes = episodes or config['loop']['eval_episodes']
  eval_suite = make_suite(config['benchmark'], num_envs=episodes, backend=backend)
  key = jax.random.key(seed)
  out = []
  for m in members:
    returns, success = (np.asarray(x) for x in loop.evaluate_with_success(loop.member(learners, m), key,
                                                                          member_methods[m], eval_suite))
    returns, rates = returns.mean(axis=1), loop.success_rates(success[None], {})
    reference = None
    m_dir = sweep_members.member_teacher_dir(config, m)
    if m_dir:
      if evaluate_teachers:
        teachers = teachers_lib.load(m_dir, eval_suite)
        reference = np.asarray(teachers_lib.evaluate(teachers, key, eval_suite)).mean(axis=1)
      else:   # their training evaluations: teacher.json alone, no parameters or replay data
        reference = reporting.teacher_returns(teachers_lib.load_metas(m_dir, eval_suite))
    elif evaluate_teachers:
      raise FileNotFoundError(f'run {workdir} has no teachers to evaluate')
    rows = reporting.results_table(eval_suite.task_names, returns, reference)
    for row, rate in zip(rows, rates[0] if rates is not None else ()):   # where the envs report info['success']
      row['success_rate'] = None if np.isnan(rate) else float(rate)
    out.append(dict(member=m, seed=sweep.seeds[m], values=sweep.member(m), tasks=rows))
  return out
