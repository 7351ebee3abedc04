"""Every benchmark with MJX physics, in one command and one JSON: what to run when a GPU is lent.

  python -m benchmarks.gpu                      # paper sizes (on a GPU: a few minutes)
  python -m benchmarks.gpu --small              # tiny sizes: runs on a 2-core CPU in about a minute
  python -m benchmarks.gpu --small --envs=1 --physics=native --dtypes=float32   # the CI test: no MJX compile
  python -m benchmarks.gpu --budget_s=420       # start no measurement after 7 min (a lent GPU's minutes are few)

The JSON (benchmarks/results/gpu.json, or --out) holds:
  td3_update        TD3 updates/s at K=1 and K=8 vmapped, float32 and bfloat16 (`benchmarks.td3_update`)
  ktm_epoch         KTM-DRL epochs/s on Benchmark A with MJX physics: offline, online at chunk 1 (Algorithm 1
                    exactly, the default) and at a long chunk, each dtype (`benchmarks.ktm_epoch`)
  env_steps         MJX env-steps/s of each suite at E = 1 ... 4096 envs per task (`benchmarks.env_step`; with
                    --physics=native, native physics: a CPU test of the script)
  projected_hours   the paper's KTM-DRL run (500K offline + 500K online epochs) at the measured rates, per dtype
                    and online chunk length
  host_loop         TD3-MT epochs/s with the host loop reading each chunk's metrics after dispatching the next
                    chunk vs before (issue 27 item 4; `benchmarks.host_loop`), per epochs per call
  skipped, errors   what the budget left out, and any section that failed (the others still run)
"""

import argparse
import os
import time
import traceback

import jax

from benchmarks import common, env_step, host_loop, ktm_epoch, td3_update

FULL = dict(td3=dict(hidden=(400, 400), batch=256, num_learners=8, updates=200, repeats=3, capacity=100_000),
            ktm=dict(benchmark='halfcheetah_group', hidden=(400, 400), batch=256, capacity=1_000_000, epochs=50,
                     repeats=2),
            suites='halfcheetah_group,benchmark_b,pendulum_group', envs='1,8,64,512,4096', env_steps=100,
            host=dict(chunks=(1, 10), epochs=2000, hidden=(64, 64), repeats=3))
SMALL = dict(td3=dict(hidden=(16, 16), batch=32, num_learners=2, updates=5, repeats=1, capacity=1_000),
             ktm=dict(benchmark='pendulum_group', hidden=(16, 16), batch=32, capacity=1_000, epochs=4, repeats=1),
             suites='pendulum_group', envs='1,4', env_steps=5,
             host=dict(chunks=(1,), epochs=20, hidden=(16, 16), repeats=1))
PAPER_EPOCHS = dict(offline=500_000, online=500_000)
DTYPES = ('float32', 'bfloat16')


def ktm_settings(epochs: int):
  return (('offline', 'sequential', epochs), ('online', 'sequential', 1), ('online', 'sequential', epochs))


def projected_hours(ktm_rows) -> dict:
  """{dtype: {'online chunk C': hours}} for 500K offline + 500K online epochs at the measured rates."""
  out = {}
  for dtype in sorted({r['dtype'] for r in ktm_rows}):
    rows = [r for r in ktm_rows if r['dtype'] == dtype]
    offline = next((r['epochs_per_s'] for r in rows if r['stage'] == 'offline'), None)
    if offline is None:
      continue
    out[dtype] = {f'online chunk {r["chunk"]}': (PAPER_EPOCHS['offline'] / offline
                                                 + PAPER_EPOCHS['online'] / r['epochs_per_s']) / 3600
                  for r in rows if r['stage'] == 'online'}
  return out


class Budget:
  """Wall-clock budget of a run: a measurement is started only while time is left (a lent GPU's minutes are few)."""

  def __init__(self, seconds):
    self.start, self.seconds = time.perf_counter(), seconds

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def left(self) -> bool:
    return self.seconds is None or self.elapsed() < self.seconds


def env_rows(suites, envs, steps, budget, skipped, physics='mjx'):
  rows = []
  for name in suites:
    for e in envs:
      if not budget.left():
        skipped.append(f'env_steps {name} E={e}')
        continue
      rate = env_step.time_suite(name, physics, e, steps, os.cpu_count())
      rows.append(dict(suite=name, num_envs=e, steps=steps, physics=physics, env_steps_per_s=rate))
      print(f'{physics} {name} E={e}: {rate:,.0f} env-steps/s ({budget.elapsed():.0f} s)', flush=True)
  return rows


def ktm_payload(sizes, physics, budget, skipped, dtypes=DTYPES):
  """KTM epochs, one (stage, chunk) setting at a time (every dtype of `dtypes` each), while the budget lasts."""
  payload = None
  for setting in ktm_settings(sizes['epochs']):
    if not budget.left():
      skipped.append(f'ktm_epoch {setting[0]} chunk {setting[2]}')
      continue
    part = ktm_epoch.run_benchmark(**sizes, backend=physics, dtypes=dtypes, settings=(setting,), count_copies=False)
    for r in part['rows']:
      print(f'KTM {r["dtype"]} {r["stage"]} chunk {r["chunk"]}: {r["epochs_per_s"]:,.1f} epochs/s '
            f'({budget.elapsed():.0f} s)', flush=True)
    if payload is None:
      payload = part
    else:
      payload['rows'] += part['rows']
      payload.setdefault('bf16_over_f32', {}).update(part.get('bf16_over_f32', {}))   # absent with one dtype
  return payload


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--small', action='store_true', help='tiny sizes (a CPU smoke run in about a minute)')
  p.add_argument('--suites', default=None, help='MJX env-step suites (default: all three; --small: pendulum_group)')
  p.add_argument('--envs', default=None, help='envs per task to time (default 1,8,64,512,4096; --small: 1,4)')
  p.add_argument('--physics', default='mjx', choices=('mjx', 'native'),
                 help='physics of the KTM epochs and the env-step rows (native: a CPU test of the script without '
                      'MJX compile times)')
  p.add_argument('--sections', default='td3,ktm,env,host',
                 help='which measurements, in this order; env:SUITE+SUITE times only those suites (e.g. '
                      'td3,env:halfcheetah_group,ktm,env:benchmark_b+pendulum_group puts the targets first)')
  p.add_argument('--dtypes', default=','.join(DTYPES), help='network dtypes to time (default: both)')
  p.add_argument('--budget_s', type=float, default=None,
                 help='start no measurement after this many seconds; the ones left out are listed under "skipped"')
  p.add_argument('--out', default='benchmarks/results/gpu.json')
  args = p.parse_args(argv)
  sections = args.sections.split(',')
  unknown = [s for s in sections if s.split(':')[0] not in ('td3', 'ktm', 'env', 'host')]
  if unknown:   # refused before any device time is spent
    p.error(f'unknown section(s) {", ".join(unknown)}: td3, ktm, env, env:SUITE+SUITE or host')
  dtypes = tuple(args.dtypes.split(','))
  if not set(dtypes) <= set(DTYPES):
    p.error(f'unknown dtype(s) in --dtypes={args.dtypes}: choose from {", ".join(DTYPES)}')
  sizes = SMALL if args.small else FULL
  budget = Budget(args.budget_s)
  payload = dict(small=args.small, device=str(jax.devices()[0].device_kind), backend=jax.default_backend(),
                 machine=common.machine_info(), sizes={k: v for k, v in sizes.items()}, skipped=[], errors={},
                 section_seconds={})
  print(f'{payload["device"]} ({payload["backend"]}); budget {args.budget_s or "none"} s', flush=True)
  for section in sections:
    if not budget.left():
      payload['skipped'].append(section)
      continue
    begin = budget.elapsed()
    # The JSON is rewritten after every section, so a run cut short still leaves what it measured; an error in one
    # section is recorded (and printed) and the others still run.
    try:
      if section == 'td3':
        td3 = td3_update.run_benchmark(**sizes['td3'], dtypes=dtypes, peaks=not args.small, sequential=False)
        for r in td3['rows']:
          print(f'TD3 {r["dtype"]} {r["setting"]}: {r["updates_per_s"]:,.1f} updates/s', flush=True)
        payload['td3_update'] = td3
      elif section == 'ktm':
        payload['ktm_epoch'] = ktm_payload(sizes['ktm'], args.physics, budget, payload['skipped'], dtypes)
        payload['projected_hours'] = projected_hours(payload['ktm_epoch']['rows']) if payload['ktm_epoch'] else {}
        for dtype, by_chunk in payload['projected_hours'].items():
          for chunk, h in by_chunk.items():
            print(f'KTM-DRL 500K offline + 500K online epochs at these rates, {dtype}, {chunk}: {h:.2f} h', flush=True)
      elif section == 'host':
        host = sizes['host']
        payload['host_loop'] = [host_loop.run_benchmark(chunk=c, epochs=host['epochs'], hidden=host['hidden'],
                                                        repeats=host['repeats']) for c in host['chunks']]
        for r in payload['host_loop']:
          print(f'host loop, {r["chunk"]} epochs per call: read ahead / read before {r["speedup"]:.3f}', flush=True)
      else:   # env or env:SUITE+SUITE
        suites = section.split(':', 1)[1].split('+') if ':' in section else (args.suites or sizes['suites']).split(',')
        payload.setdefault('env_steps', []).extend(
            env_rows(suites, [int(e) for e in (args.envs or sizes['envs']).split(',')], sizes['env_steps'], budget,
                     payload['skipped'], args.physics))
    except Exception as e:  # pylint: disable=broad-except
      traceback.print_exc()
      payload['errors'][section] = f'{type(e).__name__}: {e}'
    payload['section_seconds'][section] = budget.elapsed() - begin
    payload['wall_seconds'] = budget.elapsed()
    common.write_json(args.out, payload)
  payload['wall_seconds'] = budget.elapsed()
  common.write_json(args.out, payload)
  if payload['skipped']:
    print('skipped (budget spent): ' + ', '.join(payload['skipped']), flush=True)
  return payload


if __name__ == '__main__':
  main()
