"""Host-side cost of one native env-step: the backend's step (mujoco.batch, solver warmstart carried) vs the
earlier one (mujoco.rollout from a zero warmstart), on the same models, states and controls.

  python -m benchmarks.native_step --suites halfcheetah_group,benchmark_b --envs 1,8,64 --repeats 30

Times `NativeGroup.step_np` (numpy in, numpy out: no JAX, no callback) for every group of a suite, N = G x E
envs per group. The two variants run interleaved (A B A B ...) so machine load hits both alike; the table gives
median env-steps/s by wall clock and by process CPU time (all threads; less sensitive to other processes on a
loaded machine) and new / old for each. Writes benchmarks/results/native_step.json.
"""

import argparse
import json
import os
import statistics
import time
import warnings

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from benchmarks.common import machine_info
from ktm.envs import make_suite

warnings.filterwarnings('ignore', message='.*settotalmass.*')
_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS


def old_step(g, pool, datas, state, ctrl):
  """The earlier step: rollout of frame_skip (- 1) substeps from a zero warmstart, then (tasks with extras) the
  last substep in Python with the warmstart zeroed again. state [N, nstate FULLPHYSICS]."""
  n = state.shape[0]
  models = g.model_list(n)
  n_roll = g.spec.frame_skip - (1 if g.spec.extras else 0)
  if n_roll > 0:
    traj = np.empty((n, n_roll, state.shape[1]))
    pool.rollout(models, datas, np.ascontiguousarray(state),
                 np.ascontiguousarray(np.repeat(ctrl[:, None], n_roll, 1)),
                 initial_warmstart=np.zeros((n, g.nv)), state=traj, sensordata=np.empty((n, n_roll, 0)),
                 nstep=n_roll, skip_checks=True)
    state = traj[:, -1]
  if g.spec.extras:
    out, d = np.empty_like(state), g.scratch
    for i in range(n):
      mujoco.mj_setState(models[i], d, state[i], _FULL)
      d.qacc_warmstart[:] = 0.0
      d.ctrl[:] = ctrl[i]
      mujoco.mj_step(models[i], d)
      if g.spec.rne_post:
        mujoco.mj_rnePostConstraint(models[i], d)
      mujoco.mj_getState(models[i], d, out[i], _FULL)
    state = out
  return state


def bench(name, num_envs, repeats, nthread, steps_per_call):
  suite = make_suite(name, num_envs=num_envs, backend='native', nthread=nthread)
  pool = mj_rollout.Rollout(nthread=nthread if nthread > 1 else 0)
  rng = np.random.default_rng(0)
  setups = []
  for g in suite.backend.groups:
    n = g.num_variants * num_envs
    datas = [mujoco.MjData(g.models[0]) for _ in range(max(nthread, 1))]
    ctrl = rng.uniform(-1, 1, (n, g.nu))
    setups.append((g, datas, np.tile(g.initial, (n, 1)), np.tile(g.template, (n, 1)), ctrl))
  env_steps = suite.num_tasks * num_envs * steps_per_call

  def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu

  def run_new():
    for g, _, state, _, ctrl in setups:
      for _ in range(steps_per_call):
        state = g.step_np(state, ctrl)[0]

  def run_old():
    for g, datas, _, state, ctrl in setups:
      for _ in range(steps_per_call):
        state = old_step(g, pool, datas, state, ctrl)

  run_new(), run_old()     # warm up (Batch and rollout thread pools)
  new, old = [], []
  for _ in range(repeats):
    new.append(timed(run_new))
    old.append(timed(run_old))
  rate = lambda times, i: env_steps / statistics.median(t[i] for t in times)
  return dict(new_env_steps_per_s=rate(new, 0), old_env_steps_per_s=rate(old, 0),
              new_env_steps_per_cpu_s=rate(new, 1), old_env_steps_per_cpu_s=rate(old, 1))


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--suites', default='halfcheetah_group,benchmark_b,pendulum_group')
  p.add_argument('--envs', default='1,8,64')
  p.add_argument('--repeats', type=int, default=30)
  p.add_argument('--steps_per_call', type=int, default=10)
  p.add_argument('--nthread', type=int, default=os.cpu_count())
  p.add_argument('--out', default='benchmarks/results/native_step.json')
  args = p.parse_args()
  rows = []
  print(f"{'suite':18s} {'E':>4s} {'new /s':>9s} {'old /s':>9s} {'new/old':>8s} {'new /cpu-s':>11s} "
        f"{'old /cpu-s':>11s} {'new/old':>8s}")
  for name in args.suites.split(','):
    for e in [int(x) for x in args.envs.split(',')]:
      r = bench(name, e, args.repeats, args.nthread, args.steps_per_call)
      wall = r['new_env_steps_per_s'] / r['old_env_steps_per_s']
      cpu = r['new_env_steps_per_cpu_s'] / r['old_env_steps_per_cpu_s']
      rows.append(dict(suite=name, num_envs=e, **r, new_over_old_wall=wall, new_over_old_cpu=cpu))
      print(f"{name:18s} {e:4d} {r['new_env_steps_per_s']:9.0f} {r['old_env_steps_per_s']:9.0f} {wall:8.2f} "
            f"{r['new_env_steps_per_cpu_s']:11.0f} {r['old_env_steps_per_cpu_s']:11.0f} {cpu:8.2f}", flush=True)
  os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(dict(machine=machine_info(), nthread=args.nthread, repeats=args.repeats,
                   load_average=os.getloadavg(), rows=rows), f, indent=1)
  print('wrote', args.out)


if __name__ == '__main__':
  main()
