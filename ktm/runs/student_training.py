"""Student runs: any method end to end for every sweep member, from validation through its teachers (loaded, or
trained first) and training to results.json and the printed table."""

import dataclasses
import os
from typing import Any, Dict, Optional

import jax
import numpy as np

from ktm import loop
from ktm import sweep as sweep_lib
from ktm import teachers as teachers_lib
from ktm.envs import make_suite
from ktm.methods import METHODS, TaskInfo
from ktm.runs import checks, reporting, run_config, sweep_members, teacher_training, training
from ktm.sweep import Sweep, config_fields


def run(method_name: str, benchmark: str, configs: Dict[str, Any], loop_cfg: loop.LoopConfig, workdir: str,
        teacher_dir: Optional[str] = None, teacher_preset: Optional[dict] = None, backend: str = 'auto',
        tensorboard: bool = True, progress_bar: bool = True, exit_after_checkpoint: Optional[int] = None,
        sweep: Optional[Sweep] = None, init_from: Optional[str] = None) -> dict:
  """Any student method end to end, for every member of `sweep` (default: one, with `loop_cfg.seed`): teachers
  (needed by KTM and A2C-MT; trained first in `teacher_dir` if the set is incomplete and a preset is given), then
  the method, resuming from WORKDIR/checkpoints. A member of seed `loop_cfg.seed + i` uses teacher set i (the
  teachers of the same seed, when TEACHER_DIR holds a teacher sweep of `--seeds` seeds), else all members use the
  first set (printed). With `init_from`, a new run starts from that run's first-stage end
  (`run_config.start_from_first_stage`).
  Writes results.json with the teachers' returns as the ratio's denominator (if `teacher_dir` holds teachers) and
  prints the table.

  `configs` maps each of the method's config fields to keyword arguments (TD3Config-like configs get the suite's
  padded obs/act sizes here)."""
  sweep = sweep or sweep_lib.single(loop_cfg.seed)
  suite = make_suite(benchmark, num_envs=loop_cfg.num_envs, backend=backend)
  tasks = TaskInfo.from_suite(suite)
  configs = {name: (dict(obs_size=suite.obs_size, act_size=suite.act_size, **kwargs)
                    if 'obs_size' in {f.name for f in dataclasses.fields(cls)} else kwargs)
             for name, cls in config_fields(METHODS[method_name]).items() for kwargs in [configs.get(name, {})]}
  method = run_config.build_method(method_name, tasks, configs)   # validates every config before any work
  members = sweep_lib.member_methods(method, sweep)               # and every member's values
  checks.check_workdir_writable(workdir)
  config = run_config.run_config(method, benchmark, loop_cfg, teacher_dir, sweep, init_from)
  if not run_config.check_config(workdir, config):                # before teachers are trained/loaded:
    uses_teachers = any(m.uses_teachers for m in members)
    checks.check_resources(method, suite, workdir, loop_cfg, sweep.size, len(jax.devices()),
                           *(checks.teacher_memory(teacher_dir, suite, sweep, loop_cfg.seed) if uses_teachers
                             else (0, False)))
    if init_from:
      run_config.first_stage_checkpoint(init_from, method, config)
  with checks.writing(workdir):
    return _run(method_name, benchmark, suite, tasks, configs, method, loop_cfg, workdir, teacher_dir,
                teacher_preset, backend, tensorboard, progress_bar, exit_after_checkpoint, sweep, init_from)


def _run(method_name, benchmark, suite, tasks, configs, method, loop_cfg, workdir, teacher_dir, teacher_preset,
         backend, tensorboard, progress_bar, exit_after_checkpoint, sweep, init_from) -> dict:
  """`run` once WORKDIR's lock is held."""
  uses_teachers = any(m.uses_teachers for m in sweep_lib.member_methods(method, sweep))
  metas = teachers = None
  if uses_teachers or (teacher_dir and teacher_preset is not None):
    metas = teacher_training.ensure_teachers(benchmark, suite, teacher_dir, teacher_preset, backend, tensorboard,
                                             progress_bar, loop_cfg.seed, len(set(sweep.seeds)))
  elif teachers_lib.complete(teacher_dir):
    metas = [teachers_lib.load_metas(sweep_members.member_dir(teacher_dir, m), suite)
             for m in range(sweep_members.teacher_members(teacher_dir))]
  index, per_member = sweep_members.teacher_sets_of_members(sweep, loop_cfg.seed, 0 if metas is None else len(metas))
  if metas is not None and sweep.size > 1:
    print(f'teachers: each member uses the teacher set of its seed in {teacher_dir}' if per_member else
          f'teachers: {teacher_dir} holds {len(metas)} teacher set(s) for seeds {min(sweep.seeds)}..'
          f'{max(sweep.seeds)}, so every member uses the first set (seed {loop_cfg.seed})')
  if uses_teachers:
    sets = {i: teachers_lib.load(sweep_members.member_dir(teacher_dir, i), suite) for i in sorted(set(index))}
    teachers = [sets[i] for i in index] if per_member else sets[0]
    method = run_config.build_method(method_name, tasks, configs, sets[0].cfg)
  state, history, wall, _, diverged = training.train(method, benchmark, suite, loop_cfg, workdir, teachers,
                                                     backend, tensorboard, progress_bar, exit_after_checkpoint,
                                                     teacher_dir=teacher_dir, sweep=sweep,
                                                     aux_axis=0 if uses_teachers and per_member else None,
                                                     init_from=init_from)
  del state
  reference = None
  if metas is not None:
    reference = np.array([reporting.teacher_returns(metas[i]) for i in index])
  results = dict(benchmark=benchmark, method=method.name, seed=loop_cfg.seed, wall_seconds=wall,
                 **reporting.sweep_results(suite.task_names, sweep, loop.best_returns(history), reference, diverged,
                                           history[-1].get('success')),
                 **reporting.provenance())
  if sweep.size == 1:
    results['tasks'] = results['members'][0]['tasks']
  reporting.write_results(workdir, results)
  if jax.process_index() == 0:
    if sweep.size == 1:
      reporting.print_table(results['tasks'])
    else:
      reporting.print_summary(results['summary'])
    print(f'{wall:.0f} s ({method.name}); results in {os.path.join(workdir, reporting.RESULTS_FILE)}')
  return results
