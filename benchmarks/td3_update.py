"""TD3 update throughput for each compute dtype: K=1, K learners vmapped, K learners one after another; achieved vs
peak matmul GFLOP/s; bfloat16 / float32 ratios from the same run.

  python -m benchmarks.td3_update                      # paper size: obs 27, act 8, 400-400, batch 256, K=8
  python -m benchmarks.td3_update --updates=50 --hidden=64,64 --dtypes=float32   # quick

Each measured call is one jitted `lax.scan` of `--updates` (replay sample + TD3 update) steps with the state donated,
compiled with `networks.xla_compiler_options(dtype)` (what the training loop uses). The dtypes' calls are
interleaved and the best of `--repeats` is kept, so load from other processes hits both alike.
"""

import argparse
import time

import jax
import jax.numpy as jnp

from benchmarks import common
from ktm import networks, replay, td3


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
  """jit(state, buffer, key) -> state after `num_updates` sample+update steps (compiled for cfg.compute_dtype)."""

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

  return jax.jit(run, donate_argnums=0, compiler_options=networks.xla_compiler_options(cfg.compute_dtype))


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


class Case:
  """One timed setting: `run` over `learners` states (one call each per timing), threaded through the repeats."""

  def __init__(self, name, dtype, run, states, buffers, learners):
    self.name, self.dtype, self.run, self.learners = name, dtype, run, learners
    self.states, self.buffers, self.best = states, buffers, float('inf')

  def call(self, key):
    self.states = [self.run(s, b, key)[0] for s, b in zip(self.states, self.buffers)]
    common.block(self.states)

  def time(self, key):
    start = time.perf_counter()
    self.call(key)
    self.best = min(self.best, time.perf_counter() - start)


def cases(cfg, k, n, capacity, key, sequential=True):
  """K=1, K sequential (the K=1 program once per learner, each on its own buffer; if `sequential`), K vmapped."""
  run1, runk = make_run(cfg, n, vmapped=False), make_run(cfg, n, vmapped=True)
  dt = cfg.compute_dtype
  out = [Case('K=1', dt, run1, [td3.init(key, cfg)], [filled_buffer(key, 1, capacity, cfg)], 1)]
  if sequential:
    out.append(Case(f'K={k} sequential', dt, run1, [td3.init(jax.random.fold_in(key, i), cfg) for i in range(k)],
                    [filled_buffer(jax.random.fold_in(key, 100 + i), 1, capacity, cfg) for i in range(k)], k))
  out.append(Case(f'K={k} vmapped', dt, runk, [td3.init_many(key, k, cfg)], [filled_buffer(key, k, capacity, cfg)], k))
  return out


def run_benchmark(obs=27, act=8, hidden=(400, 400), batch=256, num_learners=8, updates=200, repeats=3,
                  capacity=100_000, dtypes=('float32', 'bfloat16'), peaks=True, sequential=True):
  """Times every (dtype, setting) interleaved; returns the JSON payload (rows, ratios, peaks)."""
  key = jax.random.key(0)
  k, n = num_learners, updates
  cfgs = {d: td3.TD3Config(obs_size=obs, act_size=act, batch_size=batch, hidden_sizes=tuple(hidden),
                           compute_dtype=d) for d in dtypes}
  all_cases = [c for d in dtypes for c in cases(cfgs[d], k, n, capacity, key, sequential)]
  for c in all_cases:
    c.call(key)                                # compile + warm up
  for r in range(repeats):
    for c in all_cases:
      c.time(jax.random.fold_in(key, r))
  cfg = cfgs[dtypes[0]]
  flops = matmul_flops_per_update(cfg)
  payload = dict(matmul_gflop_per_update=flops / 1e9)
  if peaks:
    payload.update(peak_matmul_gflops=common.matmul_gflops(),
                   layer_matmul_gflops=common.layer_matmul_gflops(cfg.batch_size, cfg.hidden_sizes[-1]))
    payload['xla_gflop_per_update'] = xla_flops_per_update(
        cfg, td3.init(key, cfg), jax.tree.map(lambda x: x[0, :cfg.batch_size], all_cases[0].buffers[0].data)) / 1e9
  rows = []
  for c in all_cases:
    row = dict(dtype=c.dtype, setting=c.name, learners=c.learners, seconds=c.best, updates_per_s=n / c.best,
               learner_updates_per_s=c.learners * n / c.best, gflops=c.learners * flops * n / c.best / 1e9)
    if peaks:
      row['pct_of_f32_matmul_peak'] = 100 * row['gflops'] / payload['peak_matmul_gflops']
      row['pct_of_f32_layer_matmul'] = 100 * row['gflops'] / payload['layer_matmul_gflops']
    rows.append(row)
  by = {(r['dtype'], r['setting']): r for r in rows}
  if sequential:
    payload['vmapped_over_sequential'] = {
        d: by[(d, f'K={k} vmapped')]['learner_updates_per_s'] / by[(d, f'K={k} sequential')]['learner_updates_per_s']
        for d in dtypes}
  if 'float32' in dtypes and 'bfloat16' in dtypes:
    payload['bf16_over_f32'] = {s: by[('bfloat16', s)]['updates_per_s'] / by[('float32', s)]['updates_per_s']
                                for d, s in by if d == 'float32'}
  payload['rows'] = rows
  return payload


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
  p.add_argument('--dtypes', default='float32,bfloat16', help='compute dtypes to compare')
  p.add_argument('--out', default='benchmarks/results/td3_update.json')
  args = p.parse_args()
  hidden = tuple(int(h) for h in args.hidden.split(','))
  payload = run_benchmark(args.obs, args.act, hidden, args.batch, args.num_learners, args.updates, args.repeats,
                          args.capacity, tuple(args.dtypes.split(',')))
  print(f'TD3 update, obs {args.obs}, act {args.act}, hidden {hidden}, batch {args.batch}, {args.updates} updates '
        f'per call; matmul GFLOP/update: {payload["matmul_gflop_per_update"]:.3f} (ours), '
        f'{payload["xla_gflop_per_update"]:.3f} (XLA)')
  print(f'peak float32 matmul (2048^3, jitted jnp.dot): {payload["peak_matmul_gflops"]:.1f} GFLOP/s; hidden-layer '
        f'shape [{args.batch}, {hidden[-1]}] x [{hidden[-1]}]^2: {payload["layer_matmul_gflops"]:.1f} GFLOP/s')
  common.print_table(payload['rows'], ['dtype', 'setting', 'seconds', 'updates_per_s', 'learner_updates_per_s',
                                      'gflops', 'pct_of_f32_matmul_peak', 'pct_of_f32_layer_matmul'])
  for d, ratio in payload['vmapped_over_sequential'].items():
    print(f'{d}: vmapped / sequential learner-updates/s: {ratio:.2f}x')
  for setting, ratio in payload.get('bf16_over_f32', {}).items():
    print(f'bfloat16 / float32 updates/s, {setting}: {ratio:.2f}x')
  common.write_json(args.out, dict(config=vars(args), machine=common.machine_info(), **payload))


if __name__ == '__main__':
  main()
