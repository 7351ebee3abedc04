"""Every benchmark with MJX physics, in one command and one JSON: what to run when a GPU is lent.

  python -m benchmarks.gpu                      # paper sizes (on a GPU: a few minutes)
  python -m benchmarks.gpu --small              # tiny sizes: runs on a 2-core CPU in about a minute
  python -m benchmarks.gpu --small --envs=1 --suites=pendulum_group   # smaller still (CI)

The JSON (benchmarks/results/gpu.json, or --out) holds:
  td3_update        TD3 updates/s at K=1 and K=8 vmapped, float32 and bfloat16 (`benchmarks.td3_update`)
  ktm_epoch         KTM-DRL epochs/s on Benchmark A with MJX physics: offline, online at chunk 1 (Algorithm 1
                    exactly, the default) and at a long chunk, each dtype (`benchmarks.ktm_epoch`)
  env_steps         MJX env-steps/s of each suite at E = 1 ... 4096 envs per task (`benchmarks.env_step`)
  projected_hours   the paper's KTM-DRL run (500K offline + 500K online epochs) at the measured rates, per dtype
                    and online chunk length
"""

import argparse
import os
import time

import jax

from benchmarks import common, env_step, ktm_epoch, td3_update

FULL = dict(td3=dict(hidden=(400, 400), batch=256, num_learners=8, updates=200, repeats=3, capacity=100_000),
            ktm=dict(benchmark='halfcheetah_group', hidden=(400, 400), batch=256, capacity=1_000_000, epochs=50,
                     repeats=2),
            suites='halfcheetah_group,benchmark_b,pendulum_group', envs='1,8,64,512,4096', env_steps=100)
SMALL = dict(td3=dict(hidden=(16, 16), batch=32, num_learners=2, updates=5, repeats=1, capacity=1_000),
             ktm=dict(benchmark='pendulum_group', hidden=(16, 16), batch=32, capacity=1_000, epochs=4, repeats=1),
             suites='pendulum_group', envs='1,4', env_steps=5)
PAPER_EPOCHS = dict(offline=500_000, online=500_000)
DTYPES = ('float32', 'bfloat16')


def ktm_settings(epochs: int):
  return (('offline', 'sequential', epochs), ('online', 'sequential', 1), ('online', 'sequential', epochs))


def projected_hours(ktm_rows) -> dict:
  """{dtype: {'online chunk C': hours}} for 500K offline + 500K online epochs at the measured rates."""
  out = {}
  for dtype in sorted({r['dtype'] for r in ktm_rows}):
    rows = [r for r in ktm_rows if r['dtype'] == dtype]
    offline = next(r['epochs_per_s'] for r in rows if r['stage'] == 'offline')
    out[dtype] = {f'online chunk {r["chunk"]}': (PAPER_EPOCHS['offline'] / offline
                                                 + PAPER_EPOCHS['online'] / r['epochs_per_s']) / 3600
                  for r in rows if r['stage'] == 'online'}
  return out


def env_rows(suites, envs, steps):
  rows = []
  for name in suites:
    for e in envs:
      rate = env_step.time_suite(name, 'mjx', e, steps, os.cpu_count())
      rows.append(dict(suite=name, num_envs=e, steps=steps, env_steps_per_s=rate))
      print(f'MJX {name} E={e}: {rate:,.0f} env-steps/s', flush=True)
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--small', action='store_true', help='tiny sizes (a CPU smoke run in about a minute)')
  p.add_argument('--suites', default=None, help='MJX env-step suites (default: all three; --small: pendulum_group)')
  p.add_argument('--envs', default=None, help='envs per task to time (default 1,8,64,512,4096; --small: 1,4)')
  p.add_argument('--physics', default='mjx', choices=('mjx', 'native'),
                 help='physics of the KTM epochs (native: a CPU test of the script without MJX compile times)')
  p.add_argument('--out', default='benchmarks/results/gpu.json')
  args = p.parse_args(argv)
  sizes = SMALL if args.small else FULL
  start = time.perf_counter()
  td3 = td3_update.run_benchmark(**sizes['td3'], dtypes=DTYPES, peaks=not args.small, sequential=False)
  for r in td3['rows']:
    print(f'TD3 {r["dtype"]} {r["setting"]}: {r["updates_per_s"]:,.1f} updates/s', flush=True)
  ktm = ktm_epoch.run_benchmark(**sizes['ktm'], backend=args.physics, dtypes=DTYPES,
                                settings=ktm_settings(sizes['ktm']['epochs']), count_copies=False)
  for r in ktm['rows']:
    print(f'KTM {r["dtype"]} {r["stage"]} chunk {r["chunk"]}: {r["epochs_per_s"]:,.1f} epochs/s', flush=True)
  envs = env_rows((args.suites or sizes['suites']).split(','), [int(e) for e in (args.envs or sizes['envs']).split(',')],
                  sizes['env_steps'])
  hours = projected_hours(ktm['rows'])
  for dtype, by_chunk in hours.items():
    for chunk, h in by_chunk.items():
      print(f'KTM-DRL 500K offline + 500K online epochs at these rates, {dtype}, {chunk}: {h:.2f} h', flush=True)
  payload = dict(small=args.small, device=str(jax.devices()[0].device_kind), backend=jax.default_backend(),
                 machine=common.machine_info(), sizes={k: v for k, v in sizes.items()}, td3_update=td3,
                 ktm_epoch=ktm, env_steps=envs, projected_hours=hours, wall_seconds=time.perf_counter() - start)
  common.write_json(args.out, payload)
  return payload


if __name__ == '__main__':
  main()
