"""TD3 update throughput: K=1, K learners vmapped, K learners one after another; achieved vs peak matmul GFLOP/s.

  python benchmarks/td3_update.py                      # paper size: obs 27, act 8, 400-400, batch 256, K=8
  python benchmarks/td3_update.py --updates=50 --hidden=64,64   # quick

Each measured call is one jitted `lax.scan` of `--updates` (replay sample + TD3 update) steps with the state donated.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from ktm import replay, td3


def matmul_flops_per_update(cfg: td3.TD3Config) -> float:
  """Matmul FLOPs of one TD3 update, averaged over the policy delay (forward 2*B*in*out per dense layer;
  backward counts weight gradients everywhere and input gradients wherever something upstream needs them)."""
  b = cfg.batch_size

  def layers(n_in, n_out):
    sizes = (n_in,) + cfg.hidden_sizes + (n_out,)
    return [2 * b * i * o for i, o in zip(sizes[:-1], sizes[1:])]

  actor = layers(cfg.obs_size, cfg.act_size)
  critic = layers(cfg.obs_size + cfg.act_size, 1)
  fa, fc = sum(actor), sum(critic)
  critic_step = fa + 2 * fc + 2 * fc + 2 * (fc + fc - critic[0])   # target actor, target twins, twins fwd+bwd
  actor_step = fa + fc + fc + fa + (fa - actor[0])                 # actor fwd, Q1 fwd, Q1 d/da, actor bwd
  return critic_step + actor_step / cfg.policy_delay


def xla_flops_per_update(cfg, state, batch):
  """XLA's own FLOP count of one update, averaged over the policy delay (critic-only and full updates)."""
  def flops(policy_step):
    f = jax.jit(lambda s, b: td3.update(s, b, cfg, policy_step=policy_step))
    analysis = f.lower(state, batch).compile().cost_analysis()
    return (analysis[0] if isinstance(analysis, list) else analysis).get('flops', float('nan'))
  d = cfg.policy_delay
  return (flops(True) + (d - 1) * flops(False)) / d


def make_run(cfg: td3.TD3Config, num_updates: int, vmapped: bool):
  """jit(state, buffer, key) -> state after `num_updates` sample+update steps."""

  def body(carry, key):
    state, buffer = carry
    batch = replay.sample(buffer, key, cfg.batch_size)
    if vmapped:
      state, metrics = td3.update_many(state, batch, cfg)
    else:
      state, metrics = td3.update(state, jax.tree.map(lambda x: x[0], batch), cfg)
    return (state, buffer), metrics['critic_loss']

  def run(state, buffer, key):
    (state, _), losses = jax.lax.scan(body, (state, buffer), jax.random.split(key, num_updates))
    return state, losses

  return jax.jit(run, donate_argnums=0)


def filled_buffer(key, num_tasks, capacity, cfg):
  buffer = replay.init(num_tasks, capacity, cfg.obs_size, cfg.act_size)
  ks = jax.random.split(key, 3)
  rows = replay.Transition(
      obs=jax.random.normal(ks[0], (num_tasks, capacity, cfg.obs_size)),
      action=jax.random.uniform(ks[1], (num_tasks, capacity, cfg.act_size), minval=-1, maxval=1),
      reward=jax.random.normal(ks[2], (num_tasks, capacity)),
      next_obs=jax.random.normal(ks[0], (num_tasks, capacity, cfg.obs_size)) * 0.9,
      terminated=jnp.zeros((num_tasks, capacity)))
  return replay.insert(buffer, rows)


def measure(run, state, buffer, key, repeats):
  """Best wall seconds of one call over `repeats` (after a warm-up call); the donated state is threaded through."""
  state, _ = common.block(run(state, buffer, key))
  times = []
  for i in range(repeats):
    start = time.perf_counter()
    state, _ = common.block(run(state, buffer, jax.random.fold_in(key, i)))
    times.append(time.perf_counter() - start)
  return min(times), state


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--obs', type=int, default=27)
  p.add_argument('--act', type=int, default=8)
  p.add_argument('--hidden', default='400,400')
  p.add_argument('--batch', type=int, default=256)
  p.add_argument('--num_learners', type=int, default=8)
  p.add_argument('--updates', type=int, default=200, help='updates per timed call')
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--capacity', type=int, default=100_000, help='rows per task in the (prefilled) buffer')
  p.add_argument('--out', default='benchmarks/results/td3_update.json')
  args = p.parse_args()

  cfg = td3.TD3Config(obs_size=args.obs, act_size=args.act, batch_size=args.batch,
                      hidden_sizes=tuple(int(h) for h in args.hidden.split(',')))
  k, n = args.num_learners, args.updates
  key = jax.random.key(0)
  peak = common.matmul_gflops()
  layer_peak = common.layer_matmul_gflops(cfg.batch_size, cfg.hidden_sizes[-1])
  flops = matmul_flops_per_update(cfg)
  rows = []

  run1 = make_run(cfg, n, vmapped=False)
  buf1 = filled_buffer(key, 1, args.capacity, cfg)
  xla_flops = xla_flops_per_update(cfg, td3.init(key, cfg), jax.tree.map(lambda x: x[0, :cfg.batch_size],
                                                                          buf1.data))
  t1, _ = measure(run1, td3.init(key, cfg), buf1, key, args.repeats)
  rows.append(dict(setting='K=1', learners=1, seconds=t1, updates_per_s=n / t1,
                   learner_updates_per_s=n / t1, gflops=flops * n / t1 / 1e9))

  # K learners one after another: the K=1 program called once per learner (each on its own buffer).
  states = [td3.init(jax.random.fold_in(key, i), cfg) for i in range(k)]
  bufs = [filled_buffer(jax.random.fold_in(key, 100 + i), 1, args.capacity, cfg) for i in range(k)]
  seq_times = []
  for r in range(args.repeats):
    start = time.perf_counter()
    for i in range(k):
      states[i], _ = run1(states[i], bufs[i], jax.random.fold_in(key, r))
    common.block(states)
    seq_times.append(time.perf_counter() - start)
  ts = min(seq_times)
  rows.append(dict(setting=f'K={k} sequential', learners=k, seconds=ts, updates_per_s=n / ts,
                   learner_updates_per_s=k * n / ts, gflops=k * flops * n / ts / 1e9))
  del bufs, states

  runk = make_run(cfg, n, vmapped=True)
  bufk = filled_buffer(key, k, args.capacity, cfg)
  tk, _ = measure(runk, td3.init_many(key, k, cfg), bufk, key, args.repeats)
  rows.append(dict(setting=f'K={k} vmapped', learners=k, seconds=tk, updates_per_s=n / tk,
                   learner_updates_per_s=k * n / tk, gflops=k * flops * n / tk / 1e9))

  for r in rows:
    r['pct_of_matmul_peak'] = 100 * r['gflops'] / peak
    r['pct_of_layer_matmul'] = 100 * r['gflops'] / layer_peak
  print(f'TD3 update, obs {cfg.obs_size}, act {cfg.act_size}, hidden {cfg.hidden_sizes}, batch {cfg.batch_size}, '
        f'{n} updates per call; matmul GFLOP/update: {flops / 1e9:.3f} (ours), {xla_flops / 1e9:.3f} (XLA)')
  print(f'peak float32 matmul (2048^3, jitted jnp.dot): {peak:.1f} GFLOP/s; hidden-layer shape '
        f'[{cfg.batch_size}, {cfg.hidden_sizes[-1]}] x [{cfg.hidden_sizes[-1]}]^2: {layer_peak:.1f} GFLOP/s')
  common.print_table(rows, ['setting', 'seconds', 'updates_per_s', 'learner_updates_per_s', 'gflops',
                            'pct_of_matmul_peak', 'pct_of_layer_matmul'])
  ratio = rows[2]['learner_updates_per_s'] / rows[1]['learner_updates_per_s']
  print(f'vmapped / sequential learner-updates/s: {ratio:.2f}x')
  common.write_json(args.out, dict(config=vars(args), machine=common.machine_info(), peak_matmul_gflops=peak,
                                   layer_matmul_gflops=layer_peak,
                                   matmul_gflop_per_update=flops / 1e9, xla_gflop_per_update=xla_flops / 1e9,
                                   vmapped_over_sequential=ratio, rows=rows))


if __name__ == '__main__':
  main()
