"""Epochs/s of the compiled KTM-DRL student step at paper sizes, `sequential` vs `joint`, env stepping included.

  python -m benchmarks.ktm_epoch                                  # Benchmark A: K=8, 400-400, batch 256, 1e6 buffers
  python -m benchmarks.ktm_epoch --capacity=100000 --epochs=20    # smaller

An online epoch = one env step in each of the K tasks (into D'_k) + one minibatch per task (critic update of every
task, actor + target updates every 2nd epoch). Offline epochs sample the teachers' D_k instead, with no env step.
Also reports how many whole-buffer copies XLA's compiled online chunk contains (should be 0).
"""

import argparse
import re
import time

import jax
import jax.numpy as jnp

from benchmarks import common
from ktm import replay, student, td3
from ktm.envs import make_suite


def random_buffer(key, num_tasks, capacity, obs_size, act_size):
  """A full buffer of random rows (the timing of sampling and updates does not depend on the values)."""
  buf = replay.init(num_tasks, capacity, obs_size, act_size)
  ks = jax.random.split(key, 3)
  data = buf.data.replace(obs=jax.random.normal(ks[0], buf.data.obs.shape),
                          next_obs=jax.random.normal(ks[1], buf.data.next_obs.shape),
                          action=jax.random.uniform(ks[2], buf.data.action.shape, minval=-1, maxval=1),
                          reward=jnp.ones(buf.data.reward.shape))
  return buf.replace(data=data, size=jnp.full((num_tasks,), capacity, jnp.int32))


def whole_buffer_copies(compiled_text: str, capacity: int) -> int:
  """HLO copy instructions whose shape has the buffer's capacity axis."""
  return len(re.findall(rf'= f32\[\d+,{capacity}[,\]][^=]*copy\(', compiled_text))


def time_online(state, critics, suite, cfg, teacher_cfg, ktm_cfg, chunk, calls, repeats):
  """Best over `repeats` of the seconds per epoch of `calls` consecutive chunk calls (an even number of epochs, so
  critic-only and actor epochs are both counted)."""
  run = lambda s: student.online_chunk(s, critics, suite, cfg, teacher_cfg, ktm_cfg, chunk)[0]
  state = common.block(run(state))
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      state = run(state)
    common.block(state)
    best = min(best, (time.perf_counter() - start) / (calls * chunk))
  return best, state


def time_offline(state, critics, buffer, masks, cfg, ktm_cfg, epochs, repeats):
  run = lambda s: student.offline_chunk(s, critics, buffer, masks, cfg, cfg, ktm_cfg, epochs)
  state, _ = common.block(run(state))
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    state, _ = common.block(run(state))
    best = min(best, time.perf_counter() - start)
  return best, state


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--benchmark', default='halfcheetah_group')
  p.add_argument('--hidden', default='400,400')
  p.add_argument('--batch', type=int, default=256)
  p.add_argument('--capacity', type=int, default=1_000_000, help='rows per task in D_k and in D\'_k')
  p.add_argument('--epochs', type=int, default=50, help='epochs per timed call (= the online chunk length)')
  p.add_argument('--chunks', default='1,10,50', help='online chunk lengths to compare (sequential)')
  p.add_argument('--repeats', type=int, default=2)
  p.add_argument('--backend', default='auto')
  p.add_argument('--out', default='benchmarks/results/ktm_epoch.json')
  args = p.parse_args()

  suite = make_suite(args.benchmark, backend=args.backend)
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, batch_size=args.batch,
                      hidden_sizes=tuple(int(h) for h in args.hidden.split(',')))
  k = suite.num_tasks
  key = jax.random.key(0)
  critics = td3.init_many(jax.random.fold_in(key, 1), k, cfg).critic_params    # stand-in teachers, padded sizes
  teacher_buffer = random_buffer(jax.random.fold_in(key, 2), k, args.capacity, cfg.obs_size, cfg.act_size)
  masks = jnp.asarray(suite.action_masks)
  rows = []

  def fresh(ktm_cfg):
    state = student.init(key, suite, cfg, ktm_cfg)
    filled = random_buffer(jax.random.fold_in(key, 3), k, args.capacity, cfg.obs_size, cfg.act_size)
    return state.replace(online_buffer=filled)

  copies = None
  for combine in ('sequential', 'joint'):
    ktm_cfg = student.KTMConfig(combine=combine, online_capacity=args.capacity)
    seconds, _ = time_offline(fresh(ktm_cfg), critics, teacher_buffer, masks, cfg, ktm_cfg, args.epochs,
                              args.repeats)
    rows.append(dict(stage='offline', combine=combine, chunk=args.epochs, epochs_per_s=args.epochs / seconds))
    chunks = [int(c) for c in args.chunks.split(',')] if combine == 'sequential' else [args.epochs]
    for chunk in chunks:
      state = fresh(ktm_cfg)
      if copies is None:
        text = student.online_chunk.lower(state, critics, suite, cfg, cfg, ktm_cfg, chunk).compile().as_text()
        copies = whole_buffer_copies(text, args.capacity)
      calls = max(2, args.epochs // chunk)
      seconds, _ = time_online(state, critics, suite, cfg, cfg, ktm_cfg, chunk, calls, args.repeats)
      rows.append(dict(stage='online', combine=combine, chunk=chunk, epochs_per_s=1 / seconds))
  for r in rows:
    r['hours_per_1M_epochs'] = 1e6 / r['epochs_per_s'] / 3600
  print(f'KTM-DRL epochs on {args.benchmark} (K={k}, obs {cfg.obs_size}, act {cfg.act_size}, hidden '
        f'{cfg.hidden_sizes}, batch {cfg.batch_size} per task, {args.capacity:,} rows per sub-buffer, '
        f'{suite.backend_name} physics); whole-buffer copies in the online HLO: {copies}')
  common.print_table(rows, ['stage', 'combine', 'chunk', 'epochs_per_s', 'hours_per_1M_epochs'])
  seq = next(r for r in rows if r['stage'] == 'online' and r['combine'] == 'sequential' and r['chunk'] == args.epochs)
  joint = next(r for r in rows if r['stage'] == 'online' and r['combine'] == 'joint')
  print(f'joint / sequential online epochs/s: {joint["epochs_per_s"] / seq["epochs_per_s"]:.2f}x')
  common.write_json(args.out, dict(config=vars(args), machine=common.machine_info(), buffer_copies=copies,
                                   joint_over_sequential=joint['epochs_per_s'] / seq['epochs_per_s'], rows=rows))


if __name__ == '__main__':
  main()
