"""Where an off-policy epoch's time goes on this machine (issue 27: can many envs per task make the CPU faster?):
seconds per epoch of the Benchmark A teachers (the `cpu` teacher preset: K = 8 TD3 learners, 256-256, float32,
batch 256 per task, native physics) collecting only (env steps into the replay, `learn=False`) and collecting plus
their updates (`learn=True`), at E envs per task, in one run, best of `--repeats`.

  python -m benchmarks.epoch_split                    # E = 1 and 4, one update per epoch
  python -m benchmarks.epoch_split --envs=1,4,16 --chunk=50

With E envs an epoch holds E env steps per task; at a fixed number of updates per env step (the update-to-data
ratio) the updates per epoch grow with E, so E > 1 can save at most the env share of an epoch unless the updates per
env step drop.
"""

import argparse

import jax

from benchmarks import common
from benchmarks.methods import make, seconds_per_epoch
from ktm import presets
from ktm.envs import make_suite
from ktm.report.tables import markdown


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--benchmark', default='halfcheetah_group')
  p.add_argument('--envs', default='1,4', help='envs per task to time, comma-separated')
  p.add_argument('--chunk', type=int, default=20, help='epochs per compiled call')
  p.add_argument('--calls', type=int, default=5)
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--out', default='benchmarks/results/epoch_split_cpu.json')
  args = p.parse_args(argv)
  teachers = presets.TEACHERS['cpu']   # its networks and batch; no random phase (the policy acts, as in training)
  preset = dict(teachers, schedule=dict(teachers['schedule'], start_steps=0))
  rows = []
  for num_envs in (int(e) for e in args.envs.split(',')):
    suite = make_suite(args.benchmark, num_envs=num_envs)
    method = make('ideal', suite, preset, 10_000, None, None)
    seconds = {learn: seconds_per_epoch(method, suite, None, 0, args.chunk, args.calls, args.repeats, learn=learn)
               for learn in (False, True)}
    rows.append(dict(num_envs=num_envs, env_seconds_per_epoch=seconds[False], full_seconds_per_epoch=seconds[True],
                     env_share=seconds[False] / seconds[True],
                     env_steps_per_s_per_task=num_envs / seconds[True]))
    print(f'E={num_envs}: collect {seconds[False] * 1e3:.2f} ms, collect + update {seconds[True] * 1e3:.2f} ms per '
          f'epoch', flush=True)
  payload = dict(benchmark=args.benchmark, preset='cpu (teachers)', chunk=args.chunk, rows=rows,
                 machine=common.machine_info(), backend=jax.default_backend())
  table = markdown(['E (envs per task)', 'collect only: ms per epoch', 'collect + 1 update: ms per epoch',
                    'env share of the epoch', 'env steps per task per s'],
                   [[r['num_envs'], f'{r["env_seconds_per_epoch"] * 1e3:.2f}',
                     f'{r["full_seconds_per_epoch"] * 1e3:.2f}', f'{r["env_share"]:.1%}',
                     f'{r["env_steps_per_s_per_task"]:,.1f}'] for r in rows])
  common.write_json_and_table(args.out, payload, table)
  return payload


if __name__ == '__main__':
  main()
