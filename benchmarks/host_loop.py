"""The host loop reading ahead (issue 27 item 4): epochs/s of the same training with `loop.train(read_ahead=True)`
(a chunk's metrics are read after the next chunk is dispatched) and `read_ahead=False` (read before, the loop until
2026-12-04), interleaved in one run, best of `--repeats`.

  python -m benchmarks.host_loop                      # TD3-MT on pendulum_group, quick networks, chunks 1 and 10
  python -m benchmarks.host_loop --chunk=10 --epochs=4000

The gap is the host's round trip per chunk (reading the metrics, Python) that the device would otherwise wait
through: large on a GPU at one epoch per chunk, small where the chunk's own work dominates (a CPU computes the chunk
on the same cores that run Python). Times are loop.train's wall seconds after one untimed run (compiles), with one
evaluation at the end.
"""

import argparse

import jax

from benchmarks import common
from ktm import loop, presets
from ktm.envs import make_suite
from ktm.methods import TaskInfo
from ktm.report.tables import markdown
from ktm.runs import run_config


def run_benchmark(benchmark: str = 'pendulum_group', chunk: int = 1,
                  epochs: int = 2000, hidden=(64, 64), repeats: int = 3) -> dict:
  suite = make_suite(benchmark)
  eval_suite = make_suite(benchmark, num_envs=2)
  preset = presets.TD3_MT['quick']
  configs = {'cfg': dict(preset['cfg'], hidden_sizes=hidden, obs_size=suite.obs_size, act_size=suite.act_size),
             'ktm': dict(preset['ktm'], online_epochs=epochs, online_start_steps=0, chunk_steps=chunk,
                         online_capacity=epochs)}
  method = run_config.build_method('td3_mt', TaskInfo.from_suite(suite), configs)
  cfg = loop.LoopConfig(eval_every=epochs, eval_episodes=2, checkpoint_every=epochs)
  seconds = {True: [], False: []}
  loop.train(method, suite, eval_suite, None, cfg)                      # compiles
  for _ in range(repeats):
    for read_ahead in (True, False):
      seconds[read_ahead].append(loop.train(method, suite, eval_suite, None, cfg, read_ahead=read_ahead)[2])
  best = {k: min(v) for k, v in seconds.items()}
  return dict(method='td3_mt', benchmark=benchmark, chunk=chunk, epochs=epochs, hidden=list(hidden),
              repeats=repeats, seconds={'read_ahead': seconds[True], 'read_before': seconds[False]},
              epochs_per_s={'read_ahead': epochs / best[True], 'read_before': epochs / best[False]},
              speedup=best[False] / best[True], device=str(jax.devices()[0].device_kind))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--benchmark', default='pendulum_group')
  p.add_argument('--chunks', default='1,10', help='epochs per compiled call to time, comma-separated')
  p.add_argument('--epochs', type=int, default=2000)
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--out', default='benchmarks/results/host_loop_cpu.json')
  args = p.parse_args(argv)
  rows = [run_benchmark(args.benchmark, int(c), args.epochs, repeats=args.repeats)
          for c in args.chunks.split(',')]
  payload = dict(rows=rows, machine=common.machine_info(), backend=jax.default_backend())
  table = markdown(['method', 'suite', 'epochs per call', 'read ahead: epochs/s', 'read before: epochs/s',
                    'read ahead / read before'],
                   [[r['method'], r['benchmark'], r['chunk'], f'{r["epochs_per_s"]["read_ahead"]:,.1f}',
                     f'{r["epochs_per_s"]["read_before"]:,.1f}', f'{r["speedup"]:.3f}'] for r in rows])
  common.write_json_and_table(args.out, payload, table)
  return payload


if __name__ == '__main__':
  main()
