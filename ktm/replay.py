"""Hierarchical experience replay: K ring-buffer sub-buffers in one pytree, usable inside `jit`.

Every field is one array with leading axes [K, capacity]; `position` and `size` are [K]. Nothing lives on the
Python side, so the buffer can be carried through `jit` with `donate_argnums` (inserting into a donated buffer is an
in-place dynamic-update-slice; without donation XLA copies the whole buffer).
"""

import os
from typing import Mapping, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class Transition:
  """One transition per row. Leading axes are whatever the caller uses ([B], [K, B], [K, capacity]).

  `terminated` is 1.0 only for a true termination (no bootstrap); a time-limit truncation is stored as 0.0, so the
  critic target still bootstraps from `next_obs`.
  """
  obs: jnp.ndarray          # [..., obs_size]
  action: jnp.ndarray       # [..., act_size]
  reward: jnp.ndarray       # [...]
  next_obs: jnp.ndarray     # [..., obs_size]
  terminated: jnp.ndarray   # [...]


@flax.struct.dataclass
class ReplayBuffer:
  data: Transition          # every field [K, capacity, ...]
  position: jnp.ndarray     # [K] int32, next row to write
  size: jnp.ndarray         # [K] int32, filled rows

  @property
  def capacity(self) -> int:
    return self.data.reward.shape[1]

  @property
  def num_tasks(self) -> int:
    return self.data.reward.shape[0]


def field_shapes(obs_size: int, act_size: int) -> Mapping[str, Tuple[int, ...]]:
  """Per-row shape of each Transition field."""
  return dict(obs=(obs_size,), action=(act_size,), reward=(), next_obs=(obs_size,), terminated=())


def buffer_bytes(num_tasks: int, capacity: int, obs_size: int, act_size: int, dtype=jnp.float32) -> int:
  """Bytes that `init` would allocate."""
  rows = sum(int(np.prod(s)) for s in field_shapes(obs_size, act_size).values())
  return num_tasks * capacity * rows * jnp.dtype(dtype).itemsize + 2 * num_tasks * 4


def available_bytes(device: Optional[jax.Device] = None) -> Optional[int]:
  """Free memory on `device` (accelerator: its allocator's limit minus use; CPU: MemAvailable), or None."""
  device = device or jax.devices()[0]
  if device.platform != 'cpu':
    stats = device.memory_stats() or {}
    if 'bytes_limit' in stats:
      return int(stats['bytes_limit']) - int(stats.get('bytes_in_use', 0))
    return None
  return host_available_bytes()


def host_available_bytes() -> Optional[int]:
  """This host's free memory (MemAvailable), or None."""
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
  except (ValueError, OSError):
    return None


def check_fits(num_bytes: int, what: str = 'replay buffer', device: Optional[jax.Device] = None,
               ways_out: str = 'lower the capacity or the number of tasks') -> None:
  """Raises MemoryError naming the bytes needed if `num_bytes` exceeds the free memory of `device`."""
  free = available_bytes(device)
  if free is not None and num_bytes > free:
    raise MemoryError(
        f'{what} needs {num_bytes:,} bytes ({num_bytes / 2**30:.2f} GiB) but only {free:,} bytes '
        f'({free / 2**30:.2f} GiB) are free on {device or jax.devices()[0]}; {ways_out}')


def init(num_tasks: int, capacity: int, obs_size: int, act_size: int, dtype=jnp.float32,
         check_memory: bool = True) -> ReplayBuffer:
  """An empty buffer of K=`num_tasks` sub-buffers with `capacity` rows each."""
  if capacity < 1 or num_tasks < 1:
    raise ValueError(f'capacity and num_tasks must be >= 1, got {capacity} and {num_tasks}')
  if check_memory:
    check_fits(buffer_bytes(num_tasks, capacity, obs_size, act_size, dtype),
               f'replay buffer ({num_tasks} tasks x {capacity:,} transitions)')
  data = Transition(**{name: jnp.zeros((num_tasks, capacity) + shape, dtype)
                       for name, shape in field_shapes(obs_size, act_size).items()})
  # Separate arrays (not one shared zeros) so the whole buffer can be donated.
  return ReplayBuffer(data=data, position=jnp.zeros((num_tasks,), jnp.int32), size=jnp.zeros((num_tasks,), jnp.int32))


def _insert_one(field: jnp.ndarray, rows: jnp.ndarray, position: jnp.ndarray) -> jnp.ndarray:
  """Writes rows [n, ...] into one sub-buffer field [capacity, ...] at position, wrapping around."""
  capacity = field.shape[0]
  index = (position + jnp.arange(rows.shape[0])) % capacity
  return field.at[index].set(rows.astype(field.dtype), unique_indices=True)


def insert(buffer: ReplayBuffer, batch: Transition) -> ReplayBuffer:
  """Appends `batch` (every field [K, n, ...], n <= capacity) to each task's sub-buffer."""
  n = batch.reward.shape[1]
  if n > buffer.capacity:
    raise ValueError(f'cannot insert {n} rows into a buffer of capacity {buffer.capacity}')
  data = jax.tree.map(lambda field, rows: jax.vmap(_insert_one)(field, rows, buffer.position), buffer.data, batch)
  return ReplayBuffer(data=data,
                      position=(buffer.position + n) % buffer.capacity,
                      size=jnp.minimum(buffer.size + n, buffer.capacity))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
  """`batch_size` rows per task, uniformly from the filled slots: every field [K, batch_size, ...].

  Sampling an empty sub-buffer returns row 0 (zeros); callers fill before sampling.
  """
  keys = jax.random.split(key, buffer.num_tasks)
  index = jax.vmap(lambda k, n: jax.random.randint(k, (batch_size,), 0, jnp.maximum(n, 1)))(keys, buffer.size)
  return jax.tree.map(lambda field: jax.vmap(lambda f, i: f[i])(field, index), buffer.data)
