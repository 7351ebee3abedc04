"""The paper's padding helpers: zero-pad states/actions to common sizes, f^k (slice) and g^k (mask).

All functions work on the trailing axis, so any leading batch axes ([K, E, ...], [B, ...]) pass through.
"""

from typing import Sequence

import jax.numpy as jnp
import numpy as np


def pad(x: jnp.ndarray, size: int) -> jnp.ndarray:
  """Zero-pads the last axis of `x` ([..., d]) to `size` ([..., size]); d must be <= size."""
  d = x.shape[-1]
  if d > size:
    raise ValueError(f'cannot pad an axis of size {d} down to {size}')
  if d == size:
    return x
  widths = [(0, 0)] * (x.ndim - 1) + [(0, size - d)]
  return jnp.pad(x, widths)


def slice_action(padded_action: jnp.ndarray, act_dim: int) -> jnp.ndarray:
  """f^k: the first `act_dim` entries of a padded action [..., act_size] -> [..., act_dim]."""
  return padded_action[..., :act_dim]


def action_mask(act_dim: int, act_size: int, dtype=jnp.float32) -> jnp.ndarray:
  """g^k as a multiplicative mask [act_size]: ones for the task's first `act_dim` entries, zeros after."""
  return (jnp.arange(act_size) < act_dim).astype(dtype)


def action_masks(act_dims: Sequence[int], act_size: int, dtype=np.float32) -> np.ndarray:
  """Stacked g^k masks for K tasks: [K, act_size] (numpy, so it can be a compile-time constant)."""
  return (np.arange(act_size)[None, :] < np.asarray(act_dims)[:, None]).astype(dtype)


def mask_action(padded_action: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """g^k: zeroes the padded entries of [..., act_size] with a mask [act_size] (or broadcastable)."""
  return padded_action * mask
