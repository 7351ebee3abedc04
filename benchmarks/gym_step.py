"""Env-steps/s of the gymnasium backend vs the native one on the same task (default Hopper-v5 / Hopper).

  python -m benchmarks.gym_step --envs 1,8,32 --steps 200 --repeats 5

Both suites are timed as `jit(lax.scan(suite.step))` over --steps steps of uniform-random actions (compile
excluded; auto-resets included, as in training), the two backends interleaved (A B A B ...) so machine load hits
both alike; the table gives the median env-steps/s of each and native / gym, all measured in this one run. The native
backend runs its physics on one thread (--nthread), as gymnasium does. Writes benchmarks/results/gym_step.json with
the CPU model name from `lscpu`.
"""

import argparse
import json
import os
import statistics
import subprocess
import time
import warnings

import jax

from benchmarks.common import machine_info
from ktm.envs import make_suite

warnings.filterwarnings('ignore', message='.*settotalmass.*')


def lscpu_model() -> str:
  out = subprocess.run(['lscpu'], capture_output=True, text=True, check=False).stdout
  return next((l.split(':', 1)[1].strip() for l in out.splitlines() if l.startswith('Model name')), 'unknown')


def timer(suite, steps):
  """A function returning the wall seconds of one compiled `steps`-step scan (compiled and warmed up here)."""
  key = jax.random.key(0)
  actions = jax.random.uniform(key, (steps, suite.num_tasks, suite.num_envs, suite.act_size), minval=-1.0,
                               maxval=1.0)
  run = jax.jit(lambda s, a: jax.lax.scan(suite.step, s, a)[0])
  state = jax.block_until_ready(run(suite.reset(key), actions))

  def once():
    nonlocal state
    start = time.perf_counter()
    state = jax.block_until_ready(run(state, actions))
    return time.perf_counter() - start
  return once


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--gym', default='gym:Hopper-v5')
  parser.add_argument('--native', default='Hopper')
  parser.add_argument('--envs', default='1,8,32')
  parser.add_argument('--steps', type=int, default=200)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--nthread', type=int, default=1)
  parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'results', 'gym_step.json'))
  args = parser.parse_args()
  rows = []
  for num_envs in [int(e) for e in args.envs.split(',')]:
    suites = dict(gym=make_suite(args.gym, num_envs=num_envs),
                  native=make_suite(args.native, num_envs=num_envs, backend='native', nthread=args.nthread))
    timers = {name: timer(s, args.steps) for name, s in suites.items()}
    seconds = {name: [] for name in timers}
    for _ in range(args.repeats):
      for name, once in timers.items():
        seconds[name].append(once())
    rate = {name: num_envs * args.steps / statistics.median(t) for name, t in seconds.items()}
    rows.append(dict(envs=num_envs, gym_steps_per_s=rate['gym'], native_steps_per_s=rate['native'],
                     native_over_gym=rate['native'] / rate['gym']))
    print(f"E = {num_envs:4d}: gym {rate['gym']:10,.0f}  native {rate['native']:10,.0f} env-steps/s  "
          f"native / gym {rate['native'] / rate['gym']:.2f}", flush=True)
  result = dict(machine=dict(machine_info(), lscpu_model_name=lscpu_model()), gym=args.gym, native=args.native,
                steps=args.steps, repeats=args.repeats, native_nthread=args.nthread, rows=rows)
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=1)
  print(f"{result['machine']['lscpu_model_name']}; wrote {args.out}")


if __name__ == '__main__':
  main()
