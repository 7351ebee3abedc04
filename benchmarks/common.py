"""Shared helpers for the benchmark scripts: timing, machine facts, table and JSON output."""

import json
import os
import platform
import time
from typing import Callable, Dict, List, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ktm import replay


def machine_info() -> Dict[str, str]:
  import flax, optax, mujoco  # pylint: disable=import-outside-toplevel
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
  except (OSError, StopIteration):
    pass
  return dict(cpu=cpu, cores=str(os.cpu_count()), device=str(jax.devices()[0].device_kind),
              backend=jax.default_backend(), python=platform.python_version(), jax=jax.__version__,
              flax=flax.__version__, optax=optax.__version__, mujoco=mujoco.__version__)


def block(tree):
  jax.tree.map(lambda x: x.block_until_ready() if hasattr(x, 'block_until_ready') else x, tree)
  return tree


def time_calls(fn: Callable[[], object], repeats: int) -> List[float]:
  """Wall seconds of `repeats` calls of fn (each blocked until ready)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    block(fn())
    times.append(time.perf_counter() - start)
  return times


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
  """Best float32 [n, n] @ [n, n] GFLOP/s of jitted XLA on the default device."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  f = jax.jit(jnp.dot)
  block(f(a, b))
  return 2 * n ** 3 / min(time_calls(lambda: f(a, b), repeats)) / 1e9


def layer_matmul_gflops(rows: int, width: int, chain: int = 200, repeats: int = 3) -> float:
  """Best GFLOP/s of `chain` dependent float32 [rows, width] @ [width, width] matmuls in one jitted loop: the
  shape of a hidden layer's forward pass (the identity weight keeps the values finite and non-denormal)."""
  x = jax.random.normal(jax.random.key(0), (rows, width), jnp.float32)
  w = jnp.eye(width, dtype=jnp.float32)
  f = jax.jit(lambda x: jax.lax.fori_loop(0, chain, lambda i, y: y @ w, x))
  block(f(x))
  return 2 * rows * width * width * chain / min(time_calls(lambda: f(x), repeats)) / 1e9


def fill(buffer: replay.ReplayBuffer, key) -> replay.ReplayBuffer:
  """A full buffer of random rows (the timing of sampling and updates does not depend on the values)."""
  ks = jax.random.split(key, 3)
  data = buffer.data.replace(obs=jax.random.normal(ks[0], buffer.data.obs.shape),
                             next_obs=jax.random.normal(ks[1], buffer.data.next_obs.shape),
                             action=jax.random.uniform(ks[2], buffer.data.action.shape, minval=-1, maxval=1),
                             reward=jnp.ones(buffer.data.reward.shape))
  return buffer.replace(data=data, size=jnp.full(buffer.size.shape, buffer.capacity, jnp.int32))


def print_table(rows: Sequence[Dict[str, object]], columns: Sequence[str]) -> None:
  def fmt(v):
    return f'{v:,.1f}' if isinstance(v, (float, np.floating)) else str(v)
  cells = [[fmt(r.get(c, '')) for c in columns] for r in rows]
  widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
  print('  '.join(c.rjust(w) for c, w in zip(columns, widths)))
  for row in cells:
    print('  '.join(v.rjust(w) for v, w in zip(row, widths)))


def write_json(path: str, payload: Dict[str, object]) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(payload, f, indent=2)
  print(f'wrote {path}')


def write_json_and_table(path: str, payload: Dict[str, object], table: str) -> None:
  """PATH (the JSON) and PATH with .md for .json (the markdown `table`), which is also printed."""
  write_json(path, payload)
  print(table)
  with open(path.replace('.json', '.md'), 'w') as f:
    f.write(table + '\n')
