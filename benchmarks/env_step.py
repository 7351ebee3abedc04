"""Env-steps/s of each suite and backend vs plain native `mujoco.rollout` on the same models.

  python benchmarks/env_step.py --envs 1,8,64 --steps 200 --mjx_steps 20 \
      --backends native,mjx --out benchmarks/results/env_step.json

One env-step = frame_skip physics substeps of one env of one task. The suite is timed as
`jit(lax.scan(suite.step))` over --steps steps (compile excluded); the baseline chains
`mujoco.rollout.Rollout.rollout` calls (nstep=frame_skip) with the same threads and no JAX.
"""

import argparse
import json
import os
import time
import warnings

import jax
import numpy as np
import mujoco
from mujoco import rollout as mj_rollout

from ktm.envs import make_suite

warnings.filterwarnings('ignore', message='.*settotalmass.*')


def time_suite(name, backend, num_envs, steps, nthread):
  suite = make_suite(name, num_envs=num_envs, backend=backend, nthread=nthread)
  key = jax.random.PRNGKey(0)
  actions = jax.random.uniform(key, (steps, suite.num_tasks, num_envs, suite.act_size),
                               minval=-1.0, maxval=1.0)
  run = jax.jit(lambda s, a: jax.lax.scan(suite.step, s, a))
  state = jax.jit(suite.reset)(key)
  jax.block_until_ready(run(state, actions))  # compile + warm up
  start = time.perf_counter()
  jax.block_until_ready(run(state, actions))
  return suite.num_tasks * num_envs * steps / (time.perf_counter() - start)


def time_plain_rollout(name, num_envs, steps, nthread):
  """Plain mujoco.rollout on the suite's models: states chained over `steps` env-steps."""
  suite = make_suite(name, num_envs=num_envs, backend='native', nthread=nthread)
  pool = mj_rollout.Rollout(nthread=nthread if nthread > 1 else 0)
  rng = np.random.default_rng(0)
  groups = []
  for g in suite.backend.groups:
    n = g.num_variants * num_envs
    datas = [mujoco.MjData(g.models[0]) for _ in range(max(nthread, 1))]
    state = np.tile(g.template, (n, 1))
    ctrl = rng.uniform(-1, 1, (n, g.spec.frame_skip, g.nu))
    groups.append((g, g.model_list(n), datas, state, ctrl))
  start = time.perf_counter()
  for _ in range(steps):
    for j, (g, models, datas, state, ctrl) in enumerate(groups):
      out, _ = pool.rollout(models, datas, state, ctrl, nstep=g.spec.frame_skip,
                            initial_warmstart=np.zeros((state.shape[0], g.nv)))
      groups[j] = (g, models, datas, out[:, -1], ctrl)
  return suite.num_tasks * num_envs * steps / (time.perf_counter() - start)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--suites', default='halfcheetah_group,benchmark_b,pendulum_group')
  p.add_argument('--backends', default='native,mjx')
  p.add_argument('--envs', default='1,8,64', help='E values (envs per task)')
  p.add_argument('--steps', type=int, default=200)
  p.add_argument('--mjx_steps', type=int, default=20, help='steps for MJX (slow on CPU)')
  p.add_argument('--mjx_max_envs', type=int, default=64)
  p.add_argument('--nthread', type=int, default=os.cpu_count())
  p.add_argument('--out', default='benchmarks/results/env_step.json')
  args = p.parse_args()
  rows = []
  print(f"{'suite':18s} {'backend':7s} {'E':>4s} {'steps/s':>10s} {'rollout':>10s} {'ratio':>6s}")
  for name in args.suites.split(','):
    for e in [int(x) for x in args.envs.split(',')]:
      base = time_plain_rollout(name, e, args.steps, args.nthread)
      for backend in args.backends.split(','):
        if backend == 'mjx' and e > args.mjx_max_envs:
          continue
        steps = args.mjx_steps if backend == 'mjx' else args.steps
        sps = time_suite(name, backend, e, steps, args.nthread)
        rows.append(dict(suite=name, backend=backend, num_envs=e, steps=steps,
                         env_steps_per_s=sps, plain_rollout_env_steps_per_s=base,
                         rollout_over_suite=base / sps))
        print(f'{name:18s} {backend:7s} {e:4d} {sps:10.0f} {base:10.0f} {base / sps:6.2f}',
              flush=True)
  os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(dict(device=jax.default_backend(), nthread=args.nthread, rows=rows), f, indent=1)
  print('wrote', args.out)


if __name__ == '__main__':
  main()
