"""Epochs/s of KTM-DRL's compiled training chunk at paper sizes for each compute dtype, env stepping included.

  python -m benchmarks.ktm_epoch                                  # Benchmark A: K=8, 400-400, batch 256, 1e6 buffers
  python -m benchmarks.ktm_epoch --capacity=100000 --epochs=20    # smaller
  python -m benchmarks.ktm_epoch --benchmark=pendulum_group --hidden=32,32 --capacity=1000 --epochs=4   # smoke run

An online epoch = one env step in each of the K tasks (into D'_k) + one minibatch per task (critic update of every
task, actor + target updates every 2nd epoch). Offline epochs sample the teachers' D_k instead, with no env step.
Each chunk is `ktm.loop.offpolicy_chunk` (compiled with `networks.xla_compiler_options(dtype)` by the loop); for every setting the
float32 and bfloat16 chunks are timed interleaved in one run (ratios are what count on a shared machine). Also
reports how many whole-buffer copies XLA's compiled online chunk contains (should be 0).
"""

import argparse
import dataclasses
import re
import time

import jax
import jax.numpy as jnp

from benchmarks import common
from ktm import loop, replay, sweep, td3, teachers
from ktm.envs import make_suite
from ktm.methods import TaskInfo
from ktm.methods.ktm_drl import OFFLINE, ONLINE, KTMConfig, KTMMethod

# (stage, combine, chunk); chunk None = --epochs.
SETTINGS = (('offline', 'sequential', None), ('online', 'sequential', 1), ('online', 'sequential', None),
            ('online', 'joint', None))


def whole_buffer_copies(compiled_text: str, capacity: int) -> int:
  """HLO copy instructions whose shape has the buffer's capacity axis (after the member and task axes)."""
  return len(re.findall(rf'= f32\[(?:\d+,)+{capacity}[,\]][^=]*copy\(', compiled_text))


class Chunk:
  """One (dtype, setting): a run state threaded through its timed calls.

  An MJX state's pytree metadata (numpy arrays in mjx.Contact) hashes differently after a chunk, so its 2nd call
  compiles once more; warm up with two calls.
  """

  def __init__(self, method, suite, aux, stage, chunk, capacity, key):
    self.method, self.suite, self.aux, self.stage, self.chunk = method, suite, aux, stage, chunk
    state = loop.init_members(sweep.single(0), method, suite)     # one member: a plain run
    buffer = common.fill(loop.member(state.buffer, 0), jax.random.fold_in(key, 1))
    self.state = state.replace(buffer=jax.tree.map(lambda x: x[None], buffer), stage=jnp.asarray(stage, jnp.int32))
    self.best = float('inf')

  def call(self):
    self.state = loop.offpolicy_chunk(self.state, self.aux, self.method, self.suite, self.stage, self.chunk, True)[0]

  def time(self, calls):
    """Seconds per epoch of `calls` consecutive chunks; keeps the best."""
    start = time.perf_counter()
    for _ in range(calls):
      self.call()
    common.block(self.state)
    self.best = min(self.best, (time.perf_counter() - start) / (calls * self.chunk))

  def hlo(self):
    fn = loop._compiled(loop._offpolicy_chunk, loop.compute_dtype(self.method),  # pylint: disable=protected-access
                        ('method', 'suite', 'stage', 'num_epochs', 'learn', 'aux_axis', 'mesh'), True)
    return fn.lower(self.state, {}, self.aux, method=self.method, suite=self.suite, stage=self.stage,
                    num_epochs=self.chunk, learn=True, aux_axis=None, mesh=None).compile().as_text()


def run_benchmark(benchmark='halfcheetah_group', hidden=(400, 400), batch=256, capacity=1_000_000, epochs=50,
                  repeats=2, backend='auto', dtypes=('float32', 'bfloat16'), settings=SETTINGS, count_copies=True,
                  teachers_like_student=False):
  """Returns the JSON payload: rows (dtype, stage, combine, chunk, epochs/s), ratios, copies."""
  suite = make_suite(benchmark, backend=backend)
  tasks = TaskInfo.from_suite(suite)
  k = suite.num_tasks
  key = jax.random.key(0)
  teacher_cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, hidden_sizes=tuple(hidden))
  # Random stand-in teachers at padded sizes: the cost of their networks does not depend on their values.
  teacher_states = td3.init_many(jax.random.fold_in(key, 1), k, teacher_cfg)
  teacher_buffer = common.fill(replay.init(k, capacity, suite.obs_size, suite.act_size), jax.random.fold_in(key, 2))
  rows, copies = [], None
  for stage_name, combine, chunk in settings:
    chunk = chunk or epochs
    stage = OFFLINE if stage_name == 'offline' else ONLINE
    runs = []
    for dtype in dtypes:
      cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, batch_size=batch,
                          hidden_sizes=tuple(hidden), compute_dtype=dtype)
      ktm_cfg = KTMConfig(combine=combine, online_capacity=capacity, chunk_steps=chunk, offline_chunk=chunk)
      # Teachers compute in their own config's dtype: float32, or the student's with `teachers_like_student`
      # (teachers trained with --compute_dtype=bfloat16).
      t_cfg = dataclasses.replace(teacher_cfg, compute_dtype=dtype) if teachers_like_student else teacher_cfg
      method = KTMMethod(tasks=tasks, cfg=cfg, ktm=ktm_cfg, teacher_cfg=t_cfg)
      aux = method.make_aux(teachers.Teachers(states=teacher_states, buffer=teacher_buffer, cfg=t_cfg, meta=()))
      runs.append(Chunk(method, suite, aux, stage, chunk, capacity, key))
    if copies is None and stage == ONLINE and count_copies:
      copies = whole_buffer_copies(runs[0].hlo(), capacity)
    calls = max(2, epochs // chunk)
    for run in runs:
      for _ in range(2):                        # compile + warm up; MJX states compile twice (see Chunk)
        run.call()
      common.block(run.state)
    for _ in range(repeats):
      for run in runs:
        run.time(calls)
    for dtype, run in zip(dtypes, runs):
      rows.append(dict(dtype=dtype, stage=stage_name, combine=combine, chunk=chunk, epochs_per_s=1 / run.best,
                       hours_per_1M_epochs=1e6 * run.best / 3600))
    del runs
  payload = dict(benchmark=benchmark, num_tasks=k, obs_size=suite.obs_size, act_size=suite.act_size,
                 physics=suite.backend_name, buffer_copies=copies, rows=rows)
  if 'float32' in dtypes and 'bfloat16' in dtypes:
    by = {(r['dtype'], r['stage'], r['combine'], r['chunk']): r['epochs_per_s'] for r in rows}
    payload['bf16_over_f32'] = {f'{s} {c} chunk {n}': by[('bfloat16', s, c, n)] / by[('float32', s, c, n)]
                                for d, s, c, n in by if d == 'float32'}
  return payload


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--benchmark', default='halfcheetah_group')
  p.add_argument('--hidden', default='400,400')
  p.add_argument('--batch', type=int, default=256)
  p.add_argument('--capacity', type=int, default=1_000_000, help='rows per task in D_k and in D\'_k')
  p.add_argument('--epochs', type=int, default=50, help='epochs per timed call (the long chunk length)')
  p.add_argument('--repeats', type=int, default=2)
  p.add_argument('--backend', default='auto')
  p.add_argument('--dtypes', default='float32,bfloat16')
  p.add_argument('--out', default='benchmarks/results/ktm_epoch.json')
  args = p.parse_args()
  payload = run_benchmark(args.benchmark, tuple(int(h) for h in args.hidden.split(',')), args.batch, args.capacity,
                          args.epochs, args.repeats, args.backend, tuple(args.dtypes.split(',')))
  print(f'KTM-DRL epochs on {args.benchmark} (K={payload["num_tasks"]}, obs {payload["obs_size"]}, act '
        f'{payload["act_size"]}, hidden {args.hidden}, batch {args.batch} per task, {args.capacity:,} rows per '
        f'sub-buffer, {payload["physics"]} physics); whole-buffer copies in the online HLO: {payload["buffer_copies"]}')
  common.print_table(payload['rows'], ['dtype', 'stage', 'combine', 'chunk', 'epochs_per_s', 'hours_per_1M_epochs'])
  for setting, ratio in payload.get('bf16_over_f32', {}).items():
    print(f'bfloat16 / float32 epochs/s, {setting}: {ratio:.2f}x')
  common.write_json(args.out, dict(config=vars(args), machine=common.machine_info(), **payload))


if __name__ == '__main__':
  main()
