"""One run of any method in a run directory: validated (the directory, the sweep, memory), then trained on the
shared loop (ktm.loop) with its metrics and checkpoints in WORKDIR."""

import os
import sys
from typing import Optional

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils

from ktm import checkpoint, loop, resources
from ktm import sweep as sweep_lib
from ktm.envs import Suite, make_suite
from ktm.methods import Method
from ktm.runs import checks, reporting, run_config, sweep_members
from ktm.sweep import Sweep


def train(method: Method, benchmark: str, suite: Suite, loop_cfg: loop.LoopConfig, workdir: str, teachers,
          backend: str, tensorboard: bool, progress_bar: bool, exit_after_checkpoint: Optional[int],
          desc: Optional[str] = None, teacher_dir: Optional[str] = None, sweep: Optional[Sweep] = None,
          aux_axis: Optional[int] = None, init_from: Optional[str] = None):
  """Validates the run directory, the sweep and memory, then trains all members on the shared loop; config.json
  is written when the first chunk is about to run. `teachers` is one set, or with aux_axis=0 a list of one set per
  member; `init_from`: a run to start from the first-stage end of (`run_config.start_from_first_stage`). Returns (final
  RunState [S, ...], history, wall seconds, mesh, diverged members {m: epoch})."""
  sweep = sweep or sweep_lib.single(loop_cfg.seed)
  sweep_lib.member_methods(method, sweep)                     # every member's values validated
  checks.check_workdir_writable(workdir)
  config = run_config.run_config(method, benchmark, loop_cfg, teacher_dir, sweep, init_from)
  resuming = run_config.check_config(workdir, config)
  mesh = sweep_members.member_mesh(sweep.size, suite.backend_name == 'gym')
  if not resuming:
    per_member = aux_axis == 0
    checks.check_resources(method, suite, workdir, loop_cfg, sweep.size, 1 if mesh is None else mesh.devices.size,
                           resources.tree_bytes(teachers[0] if per_member else teachers), per_member)
    warning = resources.evaluation_warning(method, suite, loop_cfg)
    if warning and jax.process_index() == 0:
      print(warning, file=sys.stderr)
    if init_from:
      if jax.process_index() == 0:
        boundary = run_config.start_from_first_stage(init_from, workdir, method, config)
        print(f'starting from {init_from} at the end of its first stage (epoch {boundary:,})')
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices('ktm init_from copied')
  eval_suite = make_suite(benchmark, num_envs=loop_cfg.eval_episodes, backend=backend)
  if aux_axis is None:
    aux = method.make_aux(teachers)
  else:
    aux = jax.tree.map(lambda *x: jnp.stack(x), *[method.make_aux(t) for t in teachers])
  stages = method.stages()
  print(f'{method.name} on {benchmark}: {suite.num_tasks} tasks on {suite.backend_name} physics, '
        f'{jax.devices()[0].platform}; ' + ' + '.join(f'{s.epochs:,} {s.name}' for s in stages if s.epochs)
        + ' epochs' + (f'; {sweep.size} sweep members in one program' if sweep.size > 1 else ''))
  reporter = reporting.RunReporter(workdir, int(loop.stage_offsets(stages)[-1]), desc or method.name,
                                   suite.task_names, tensorboard, progress_bar,
                                   extra_fn=(lambda name: {'stage': float(name == 'online')}) if len(stages) > 1
                                   else None,
                                   sweep=sweep, members=sweep_members.local_members(sweep, mesh))

  def on_start():
    os.makedirs(workdir, exist_ok=True)
    if not resuming and jax.process_index() == 0:
      checkpoint.write_json(os.path.join(workdir, run_config.CONFIG_FILE), config)

  try:
    state, history, wall = loop.train(method, suite, eval_suite, aux, loop_cfg, workdir, reporter,
                                      exit_after_checkpoint, on_start, sweep, aux_axis, mesh)
  finally:
    reporter.close()
  return state, history, wall, mesh, reporter.diverged_members
