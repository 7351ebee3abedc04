"""Sweeps: S members (seeds) in ONE compiled program vs S single runs one after another.

  python -m benchmarks.sweep              # quick presets (ideal, KTM online) + paper size (TD3-MT, ideal): ~9 min
  python -m benchmarks.sweep --small      # the quick 'ideal' preset only, S in (1, 4), a few epochs: ~1 min
  taskset -c 0 python -m benchmarks.sweep # how benchmarks/results/sweep.json was measured (one idle core)

For every case and S in --sizes, the run state of a sweep of S seeds (`loop.init_members`) goes through
`loop.offpolicy_chunk` in the learning phase: the replay pre-filled with random rows (sampling and update costs do
not depend on the values) and the stage's epoch at its `random_epochs`, so every timed chunk is steady-state
collect + learn. Each chunk is followed by `jax.device_get(metrics)`, as the host loop does. The programs of all S
are compiled and warmed up first, then timed interleaved (`--repeats` rounds, best kept), so a shared machine's
drift hits every S alike. Reported per S:
  epochs_per_s          epochs per second of the S-member program
  member_epochs_per_s   S x that: training throughput summed over members
  ratio                 (S x t_single) / t_sweep: how much faster one S-member program is than S runs of the
                        S=1 program one after another (>= 1: the sweep wins)
  collect_ratio         the same ratio for collect-only chunks (learn=False: the policy, the native-physics host
                        callback, which `vmap` hands all S x K x E envs at once, the replay insert and the chunk's
                        NaN/Inf guard over the whole learner), unless --no_collect
  collect_share         the collect-only chunk's time / the collect + learn chunk's
Targets (S=8): the quick preset >= 3x, paper size >= 1.0x.
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp

from benchmarks import common
from benchmarks.methods import make
from ktm import loop, presets, replay, sweep, td3, teachers
from ktm.envs import make_suite

# name -> (method, preset, benchmark); paper cases use --capacity rows per task (the preset's 1e6 would not fit).
CASES = {'quick_ideal': ('ideal', 'quick', 'pendulum_group'),
         'quick_ktm_online': ('ktm', 'quick', 'pendulum_group'),
         'paper_td3_mt': ('td3_mt', 'paper', 'halfcheetah_group'),
         'paper_ideal': ('ideal', 'paper', 'halfcheetah_group')}
TARGET_S8 = {'quick': 3.0, 'paper': 1.0}


def build(case, capacity, nthread):
  """(method, suite, aux, stage) of a case: the preset's method and its last collecting stage; teachers (KTM's
  aux) random at the preset's teacher sizes (their cost does not depend on their values), their D_k tiny (the
  online stage does not sample it)."""
  name, preset_name, benchmark = CASES[case]
  suite = make_suite(benchmark, nthread=nthread)
  preset = presets.METHODS[name][preset_name]
  teacher_preset = presets.TEACHERS[preset['teachers']] if 'teachers' in preset else preset   # 'ideal': itself
  teacher_cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, **teacher_preset['cfg'])
  if preset_name == 'quick':   # the preset's own replay_capacity / online_capacity
    capacity = next(v for fields in preset.values() if isinstance(fields, dict)
                    for k, v in fields.items() if k in ('replay_capacity', 'online_capacity'))
  method = make(name, suite, preset, capacity, None, teacher_cfg)
  aux = None
  if method.uses_teachers:
    teacher_buffer = common.fill(replay.init(suite.num_tasks, 1000, suite.obs_size, suite.act_size),
                                 jax.random.key(3))
    aux = teachers.Teachers(states=td3.init_many(jax.random.key(2), suite.num_tasks, teacher_cfg),
                            buffer=teacher_buffer, cfg=teacher_cfg, meta=())
  aux = method.make_aux(aux)
  stage = max(i for i, s in enumerate(method.stages()) if s.collect and s.epochs)
  return method, suite, aux, stage


_fill_members = jax.jit(jax.vmap(common.fill))   # per member: common.fill reads the capacity from axis 1


def learning_state(method, suite, stage, size):
  """A sweep of `size` seeds in the learning phase of `stage`: the replay full of random rows, the epoch at the
  stage's `random_epochs`. (`loop.init_members` jits a fresh closure, so every call compiles: call it once per S.)"""
  state = loop.init_members(sweep.grid(0, size, []), method, suite)
  state = state.replace(buffer=_fill_members(state.buffer, jax.random.split(jax.random.key(1), size)),
                        learner=loop.begin_stage(state.learner, method, stage), stage=jnp.asarray(stage, jnp.int32),
                        epoch=jnp.asarray(method.stages()[stage].random_epochs, jnp.int32))
  return common.block(state)


class Program:
  """The program of one case, S and `learn`: its own copy of the run state, threaded through its timed chunks."""

  def __init__(self, method, suite, aux, stage, chunk, state, learn):
    self.method, self.suite, self.aux, self.stage, self.chunk, self.learn = method, suite, aux, stage, chunk, learn
    self.state = jax.tree.map(jnp.copy, state)   # the chunk donates its state
    self.hparams = {}                              # seeds only: no swept field
    self.best = float('inf')
    traces = loop.TRACES['offpolicy']
    start = time.perf_counter()
    self.call()
    self.compile_s = time.perf_counter() - start     # trace + compile + one chunk
    self.traces = loop.TRACES['offpolicy'] - traces
    self.call()                                     # warm-up

  def call(self):
    self.state, metrics = loop.offpolicy_chunk(self.state, self.aux, self.method, self.suite, self.stage, self.chunk,
                                               self.learn, self.hparams)
    return jax.device_get(metrics)

  def time(self, epochs):
    """Seconds per epoch of ceil(epochs / chunk) consecutive chunks; keeps the best."""
    calls = max(1, -(-epochs // self.chunk))
    traces = loop.TRACES['offpolicy']
    start = time.perf_counter()
    for _ in range(calls):
      self.call()
    self.best = min(self.best, (time.perf_counter() - start) / (calls * self.chunk))
    self.traces += loop.TRACES['offpolicy'] - traces   # retraces while timing: should stay 0


def measure(case, args, nthread):
  """Rows (one per S) of a case: the learning chunks, and unless --no_collect the collect-only chunks."""
  method, suite, aux, stage = build(case, args.capacity, nthread)
  chunk = args.chunk or method.stages()[stage].chunk
  epochs = args.quick_epochs if CASES[case][1] == 'quick' else args.paper_epochs
  learns = (True,) if args.no_collect else (True, False)
  programs = {}
  for s in args.sizes:
    state = learning_state(method, suite, stage, s)
    for learn in learns:
      programs[(s, learn)] = Program(method, suite, aux, stage, chunk, state, learn)
    del state
  for _ in range(args.repeats):
    for program in programs.values():
      program.time(epochs if program.learn else 10 * epochs)   # collecting is cheap: time more
  rows = []
  one = programs[(1, True)].best
  for s in args.sizes:
    p = programs[(s, True)]
    row = dict(case=case, method=method.name, stage=method.stages()[stage].name, benchmark=CASES[case][2],
               tasks=suite.num_tasks, hidden='-'.join(map(str, method.cfg.hidden_sizes)), batch=method.batch_size,
               capacity=method.replay_capacity, chunk=chunk, S=s, epochs_per_s=1 / p.best,
               member_epochs_per_s=s / p.best, ratio=s * one / p.best, compile_s=p.compile_s, traces=p.traces,
               timed_epochs=args.repeats * max(1, -(-epochs // chunk)) * chunk)
    if not args.no_collect:
      c = programs[(s, False)]
      row.update(collect_epochs_per_s=1 / c.best, collect_ratio=s * programs[(1, False)].best / c.best,
                 collect_share=c.best / p.best)
    if s == 8:
      row['target'] = TARGET_S8[CASES[case][1]]
      row['meets_target'] = bool(row['ratio'] >= row['target'])
    rows.append(row)
    print(f"{case} S={s}: {row['epochs_per_s']:.1f} epochs/s, ratio {row['ratio']:.2f}", flush=True)
  return rows


def markdown_table(rows, columns):
  def fmt(v):
    return f'{v:,.1f}' if isinstance(v, float) else str(v)
  lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(fmt(r.get(c, '')) for c in columns) + ' |' for r in rows]
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--cases', default=','.join(CASES), help=f'comma-separated, from {", ".join(CASES)}')
  parser.add_argument('--sizes', default='1,4,8', help='members per program; 1 must be among them')
  parser.add_argument('--capacity', type=int, default=100_000, help='replay rows per task of the paper cases '
                      '(sampling cost does not depend on it; the quick cases use their preset\'s)')
  parser.add_argument('--chunk', type=int, default=0, help='epochs per compiled call (0: the preset\'s chunk)')
  parser.add_argument('--quick_epochs', type=int, default=100, help='timed epochs per round, quick cases')
  parser.add_argument('--paper_epochs', type=int, default=10, help='timed epochs per round, paper cases')
  parser.add_argument('--repeats', type=int, default=2, help='timed rounds over all programs (best kept)')
  parser.add_argument('--no_collect', action='store_true', help='skip the collect-only (learn=False) programs')
  parser.add_argument('--small', action='store_true', help='quick_ideal only, S in (1, 4), 30 epochs, 1 round')
  parser.add_argument('--out', default='benchmarks/results/sweep.json')
  args = parser.parse_args()
  if args.small:
    args.cases, args.sizes, args.quick_epochs, args.repeats = 'quick_ideal', '1,4', 30, 1
  args.sizes = tuple(int(s) for s in args.sizes.split(','))
  if 1 not in args.sizes:
    parser.error('--sizes must include 1 (the single run the ratios compare against)')
  cpus = sorted(os.sched_getaffinity(0))
  nthread = len(cpus)   # native physics threads: the CPUs this process may use, not os.cpu_count()
  note = (f'pinned to CPU(s) {cpus} of {os.cpu_count()} (taskset): {len(cpus)}-core numbers'
          if len(cpus) < os.cpu_count() else f'all {len(cpus)} CPUs')
  print(note, flush=True)
  start, cpu_start, load_before = time.perf_counter(), time.process_time(), os.getloadavg()
  rows = [r for case in args.cases.split(',') if case for r in measure(case, args, nthread)]
  columns = ['case', 'hidden', 'tasks', 'chunk', 'S', 'epochs_per_s', 'member_epochs_per_s', 'ratio']
  if not args.no_collect:
    columns += ['collect_ratio', 'collect_share']
  columns += ['compile_s', 'traces', 'target']
  print()
  print(markdown_table([dict(r, ratio=f"{r['ratio']:.2f}x", collect_ratio=f"{r.get('collect_ratio', 0):.2f}x",
                             collect_share=f"{100 * r.get('collect_share', 0):.0f}%") for r in rows], columns))
  wall = time.perf_counter() - start
  # On pinned CPUs, process CPU time / (wall x CPUs) well below 1 means something else ran on them (contention).
  cpu_share = (time.process_time() - cpu_start) / (wall * len(cpus))
  print(f'{wall:.0f} s; {note}; this process had {100 * cpu_share:.0f}% of its CPUs; load average '
        f'{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after')
  common.write_json(args.out, dict(machine=common.machine_info(), args=vars(args), cpus=cpus, notes=note,
                                   wall_seconds=wall, cpu_share=cpu_share, load_before=load_before,
                                   load_after=os.getloadavg(), rows=rows))


if __name__ == '__main__':
  main()
