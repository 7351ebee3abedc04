"""What the checkpoint manifest costs: orbax save, manifest write (sha256 of every file), verification on restore,
and orbax restore, for a state of a given size (float32 arrays, like a replay buffer).

  python -m benchmarks.checkpoint_verify --mib 64,512 --repeats 3

Prints a table and writes benchmarks/results/checkpoint_verify.json. Times are medians over --repeats.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import jax.numpy as jnp
import numpy as np

from benchmarks.common import machine_info
from ktm import checkpoint


def state_of(mib: int) -> dict:
  rows = mib * (1 << 20) // (4 * 64)
  rng = np.random.default_rng(0)
  return {'buffer': jnp.asarray(rng.normal(size=(rows, 64)), jnp.float32),
          'params': jnp.asarray(rng.normal(size=(400, 400)), jnp.float32), 'step': jnp.asarray(7, jnp.int32)}


def one(mib: int, directory: str) -> dict:
  state = state_of(mib)
  manager = checkpoint.CheckpointManager(directory, report=None)
  start = time.perf_counter()
  manager._manager.save(1, args=checkpoint.ocp.args.Composite(   # pylint: disable=protected-access
      state=checkpoint.ocp.args.StandardSave(checkpoint._flat(state)),   # pylint: disable=protected-access
      extra=checkpoint.ocp.args.JsonSave({})))
  manager._manager.wait_until_finished()   # pylint: disable=protected-access
  saved = time.perf_counter()
  checkpoint.write_manifest(manager.step_directory(1))
  manifest = time.perf_counter()
  assert checkpoint.problem(manager.step_directory(1)) is None
  verified = time.perf_counter()
  manager.restore(state)
  restored = time.perf_counter()
  manager.close()
  return dict(orbax_save_s=saved - start, manifest_s=manifest - saved, verify_s=verified - manifest,
              restore_with_verify_s=restored - verified)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--mib', default='64,512')
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--out', default='benchmarks/results/checkpoint_verify.json')
  args = p.parse_args()
  rows = []
  print(f"{'MiB':>6s} {'orbax save s':>13s} {'manifest s':>11s} {'verify s':>9s} {'restore s':>10s} "
        f"{'manifest / save':>16s}")
  for mib in [int(m) for m in args.mib.split(',')]:
    runs = []
    for _ in range(args.repeats):
      with tempfile.TemporaryDirectory() as tmp:
        runs.append(one(mib, os.path.join(tmp, 'checkpoints')))
    row = dict(mib=mib, **{k: statistics.median(r[k] for r in runs) for k in runs[0]})
    rows.append(row)
    print(f"{mib:6d} {row['orbax_save_s']:13.2f} {row['manifest_s']:11.2f} {row['verify_s']:9.2f} "
          f"{row['restore_with_verify_s']:10.2f} {row['manifest_s'] / row['orbax_save_s']:16.2f}", flush=True)
  os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(dict(machine=machine_info(), load_average=os.getloadavg(), repeats=args.repeats, rows=rows), f,
              indent=1)
  print('wrote', args.out)


if __name__ == '__main__':
  main()
