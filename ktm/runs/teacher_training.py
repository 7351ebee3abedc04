"""Teacher runs: the 'ideal' method (one TD3 learner per task) trained in WORKDIR and saved as teacher sets
(ktm.teachers: WORKDIR/teachers/<Task>/, member m > 0 of a teacher sweep in WORKDIR/member_<m>/teachers/), complete
as a set; and the sets a student run needs, trained first when missing."""

import os
from typing import List, Optional

import jax

from ktm import loop, resources
from ktm import sweep as sweep_lib
from ktm import teachers as teachers_lib
from ktm.envs import Suite, make_suite
from ktm.methods import TaskInfo
from ktm.runs import checks, reporting, run_config, sweep_members, training
from ktm.sweep import Sweep


def ensure_teachers(benchmark: str, suite: Suite, teacher_dir: str, teacher_preset: Optional[dict], backend: str,
                    tensorboard: bool, progress_bar: bool, seed: int, num_seeds: int = 1) -> List[List[dict]]:
  """The validated teacher.json files of each available teacher member ([members][K]); trains (or resumes) a
  teacher run of `num_seeds` seeds with `teacher_preset` when TEACHER_DIR holds no complete set yet."""
  if not teachers_lib.complete(teacher_dir):
    if teacher_preset is None:
      raise FileNotFoundError(f'no complete teacher set in {teacher_dir} (train it with '
                              'experiments/train_teachers.py)')
    print(f'no complete teacher set in {teacher_dir}: training the teachers first ({num_seeds} seed(s))')
    train_teachers(benchmark, teacher_preset['cfg'], teacher_preset['schedule'],
                   loop.LoopConfig(**{**teacher_preset.get('loop', {}), 'seed': seed}), teacher_dir, backend,
                   tensorboard=tensorboard, progress_bar=progress_bar, sweep=sweep_lib.grid(seed, num_seeds, ()))
  return [teachers_lib.load_metas(sweep_members.member_dir(teacher_dir, m), suite)
          for m in range(sweep_members.teacher_members(teacher_dir))]


def train_teachers(benchmark: str, td3_kwargs: dict, schedule_kwargs: dict, loop_cfg: loop.LoopConfig,
                   workdir: str, backend: str = 'auto', tensorboard: bool = True, progress_bar: bool = True,
                   exit_after_checkpoint: Optional[int] = None, sweep: Optional[Sweep] = None) -> List[dict]:
  """Trains (or resumes) one TD3 teacher per task of `benchmark` for every member of `sweep` (default: one, with
  `loop_cfg.seed`) in WORKDIR, all in one program, and saves member m's set to member_dir(WORKDIR, m)/teachers
  (ktm.runs.sweep_members); returns the per-task rows of a one-member run, else one row per member (all in
  WORKDIR/results.json)."""
  sweep = sweep or sweep_lib.single(loop_cfg.seed)
  suite = make_suite(benchmark, num_envs=loop_cfg.num_envs, backend=backend)
  method = run_config.build_method('ideal', TaskInfo.from_suite(suite),
                                   dict(cfg=dict(obs_size=suite.obs_size, act_size=suite.act_size, **td3_kwargs),
                                        schedule=schedule_kwargs))
  resources.check_chunk_fits_replay(method, loop_cfg)
  checks.check_workdir_writable(workdir)
  with checks.writing(workdir, 'teacher directory'):
    return _train_teachers(method, benchmark, suite, loop_cfg, workdir, backend, tensorboard, progress_bar,
                           exit_after_checkpoint, sweep)


def _train_teachers(method, benchmark, suite, loop_cfg, workdir, backend, tensorboard, progress_bar,
                    exit_after_checkpoint, sweep) -> List[dict]:
  """`train_teachers` once WORKDIR's lock is held."""
  if teachers_lib.complete(workdir):
    raise FileExistsError(f'{teachers_lib.set_path(workdir)} already holds a complete teacher set; use a new '
                          '--workdir (or delete it)')
  state, history, wall, mesh, diverged = training.train(method, benchmark, suite, loop_cfg, workdir, None,
                                                        backend, tensorboard, progress_bar, exit_after_checkpoint,
                                                        desc='teachers', sweep=sweep)
  learners, buffers = loop.host_members((state.learner, state.buffer))   # across processes: gathered from all
  # member 0 last: its complete set marks the whole run's teachers saved; process 0 writes every member's set
  for m in reversed(range(sweep.size)):
    if m not in diverged and jax.process_index() == 0:
      teachers_lib.save(sweep_members.member_dir(workdir, m), suite, loop.member(learners, m),
                        loop.member(buffers, m), method.cfg, run_config.run_config(method, benchmark, loop_cfg, None,
                                                                                   sweep),
                        loop.member_history(history, m))
  best = loop.best_returns(history)
  success = history[-1].get('success') if history else None   # where the envs report info['success']
  results = dict(benchmark=benchmark, method='ideal', seed=loop_cfg.seed, wall_seconds=wall,
                 **reporting.sweep_results(suite.task_names, sweep, best, None, diverged, success),
                 **reporting.provenance())
  if sweep.size == 1:
    results['tasks'] = teachers_lib.summarize(suite.task_names, loop.member_history(history, 0),
                                              method.schedule.steps, wall, suite.num_envs)
    for row, rate in zip(results['tasks'], success[0] if success else ()):
      row['success_rate'] = rate
  reporting.write_results(workdir, results)
  if jax.process_index() == 0:
    if sweep.size == 1:
      print(f'{"task":<32} {"final":>9} {"best":>9}')
      for r in results['tasks']:
        print(f'{r["name"]:<32} {r["final_return"]:>9.1f} {r["best_return"]:>9.1f}')
    else:
      reporting.print_summary(results['summary'])
    print(f'{wall:.0f} s; teachers in {teachers_lib.set_path(workdir)}'
          + (f' (member m > 0: {os.path.join(workdir, "member_<m>", "teachers")})' if sweep.size > 1 else ''))
  return results['tasks'] if sweep.size == 1 else results['members']
