"""Epochs/s of every method's compiled training chunk on the shared loop, in one run, as ratios to KTM-DRL.

  python -m benchmarks.methods                       # Benchmark A: K=8, 400-400, batch 256 per task, native physics
  python -m benchmarks.methods --small               # pendulum_group, 32-32, a few epochs: a smoke run
  python -m benchmarks.methods --preset=quick        # the quick presets' settings on pendulum_group

An off-policy epoch = one env step in each of the K tasks into the replay + one update on one minibatch per task
(KTM online: Eq. 3-5; the offline epoch is reported separately). A2C-MT's epoch = n_steps env steps of E envs per
task + one update, so its row is compared on the time of the paper's whole run: 1M epochs for the off-policy methods
(KTM: 500K offline + 500K online) and 1M env steps per env (= 1M / n_steps epochs) for A2C-MT.
"""

import argparse
import time

import jax
import jax.numpy as jnp

from benchmarks import common
from ktm import loop, presets, replay, sweep, td3, teachers
from ktm.envs import make_suite
from ktm.methods import METHODS, TaskInfo
from ktm.runs import run_config

ORDER = ('ktm', 'td3_mt', 'sac_mt', 'sharednet', 'gsurgery', 'a2c_mt')
PAPER_HOURS = dict(ktm=12.0, td3_mt=11.5, sac_mt=25.0, gsurgery=31.0)   # the paper's P100 times (Sec. 4)


def make(name, suite, preset, capacity, hidden, teacher_cfg):
  configs = {}
  for field, cls in sweep.config_fields(METHODS[name]).items():
    kwargs = dict(preset.get(field, {}))
    if 'obs_size' in cls.__dataclass_fields__:
      kwargs.update(obs_size=suite.obs_size, act_size=suite.act_size)
    if hidden and 'hidden_sizes' in cls.__dataclass_fields__:
      kwargs['hidden_sizes'] = hidden
    for cap_field in ('replay_capacity', 'online_capacity'):
      if cap_field in cls.__dataclass_fields__:
        kwargs[cap_field] = capacity
    configs[field] = kwargs
  return run_config.build_method(name, TaskInfo.from_suite(suite), configs, teacher_cfg)


def seconds_per_epoch(method, suite, aux, stage, chunk, calls, repeats, learn=True):
  """Best over `repeats` of the wall seconds per epoch of `calls` consecutive chunks (after a compile call); with
  learn=False an off-policy chunk only collects (env steps into the replay, no update)."""
  state = loop.init_members(sweep.single(0), method, suite)     # one member: a plain run
  if state.buffer is not None:
    state = state.replace(buffer=jax.tree.map(lambda x: x[None],
                                              common.fill(loop.member(state.buffer, 0), jax.random.key(1))))
  state = state.replace(stage=jnp.asarray(stage, jnp.int32))
  if method.stages()[stage].kind == 'onpolicy':
    run = lambda s: loop.onpolicy_chunk(s, aux, method, suite, chunk)[0]
  else:
    run = lambda s: loop.offpolicy_chunk(s, aux, method, suite, stage, chunk, learn)[0]
  state = common.block(run(state))
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      state = run(state)
    common.block(state)
    best = min(best, (time.perf_counter() - start) / (calls * chunk))
  return best


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--benchmark', default='halfcheetah_group')
  parser.add_argument('--preset', default='paper', choices=('paper', 'quick'))
  parser.add_argument('--capacity', type=int, default=100_000, help='replay rows per task (sampling cost does not '
                      'depend on it; 1e6 x 8 tasks x 5 methods would not fit in memory at once)')
  parser.add_argument('--chunk', type=int, default=50, help='epochs per compiled call (A2C-MT: 10)')
  parser.add_argument('--calls', type=int, default=4)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--methods', default=','.join(ORDER))
  parser.add_argument('--small', action='store_true', help='pendulum_group, 32-32 networks, 2 calls of 4 epochs')
  parser.add_argument('--out', default='benchmarks/results/methods.json')
  args = parser.parse_args()
  hidden = None
  if args.small:
    args.benchmark, hidden, args.capacity, args.chunk, args.calls, args.repeats = 'pendulum_group', (32, 32), 1000, 4, 2, 1
  names = [n for n in args.methods.split(',') if n]
  suite = make_suite(args.benchmark)
  teacher_cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size,
                              **({'hidden_sizes': hidden} if hidden else {}))
  # Random teachers: the cost of their networks does not depend on their values.
  teacher_states = td3.init_many(jax.random.key(2), suite.num_tasks, teacher_cfg)
  rows = []
  for name in names:
    a2c_suite = None
    preset = presets.METHODS[name][args.preset]
    method = make(name, suite, preset, args.capacity, hidden, teacher_cfg)
    teacher_buffer = common.fill(replay.init(suite.num_tasks, args.capacity, suite.obs_size, suite.act_size),
                          jax.random.key(3)) if method.uses_teachers and method.replay_capacity else None
    aux = method.make_aux(teachers.Teachers(states=teacher_states, buffer=teacher_buffer, cfg=teacher_cfg, meta=()))
    stages = [i for i, s in enumerate(method.stages()) if s.epochs]
    for stage in stages:
      spec = method.stages()[stage]
      run_suite = suite
      chunk = args.chunk
      env_steps = 1
      if spec.kind == 'onpolicy':
        a2c_suite = make_suite(args.benchmark, num_envs=preset['loop'].get('num_envs', 1))
        run_suite, chunk, env_steps = a2c_suite, max(1, args.chunk // 5), method.cfg.n_steps
      seconds = seconds_per_epoch(method, run_suite, aux, stage, chunk, args.calls, args.repeats)
      rows.append(dict(method=name, stage=spec.name, epochs_per_s=1.0 / seconds, env_steps_per_epoch=env_steps,
                       num_envs=run_suite.num_envs, seconds_per_epoch=seconds))
      print(f'{name} {spec.name}: {1.0 / seconds:.1f} epochs/s', flush=True)
  # The paper's whole run: 1M epochs (KTM: 500K offline + 500K online), A2C-MT 1M env steps per env.
  by = {(r['method'], r['stage']): r for r in rows}
  for name in names:
    if name == 'ktm':
      hours = 5e5 * (by[('ktm', 'offline')]['seconds_per_epoch'] + by[('ktm', 'online')]['seconds_per_epoch']) / 3600
    else:
      stage_row = next(r for r in rows if r['method'] == name)
      hours = 1e6 / stage_row['env_steps_per_epoch'] * stage_row['seconds_per_epoch'] / 3600
    for r in rows:
      if r['method'] == name:
        r['paper_run_hours'] = hours
  if 'ktm' in names:
    for r in rows:
      r['cost_vs_ktm'] = r['paper_run_hours'] / by[('ktm', 'online')]['paper_run_hours']
      r['paper_p100_ratio'] = (PAPER_HOURS[r['method']] / PAPER_HOURS['ktm']) if r['method'] in PAPER_HOURS else ''
  common.print_table(rows, ['method', 'stage', 'epochs_per_s', 'env_steps_per_epoch', 'num_envs', 'paper_run_hours',
                            'cost_vs_ktm', 'paper_p100_ratio'])
  common.write_json(args.out, dict(machine=common.machine_info(), args=vars(args), rows=rows))


if __name__ == '__main__':
  main()
