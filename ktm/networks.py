"""Actor and twin-critic networks (paper: 2 hidden layers of 400 ReLU units)."""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  """ReLU MLP: [..., in] -> [..., out_size]."""
  hidden_sizes: Sequence[int]
  out_size: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    for size in self.hidden_sizes:
      x = nn.relu(nn.Dense(size)(x))
    return nn.Dense(self.out_size)(x)


class Actor(nn.Module):
  """Deterministic policy: obs [..., obs_size] -> action [..., act_size] in [-1, 1]."""
  hidden_sizes: Sequence[int]
  act_size: int

  @nn.compact
  def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
    return jnp.tanh(MLP(self.hidden_sizes, self.act_size)(obs))


class Critic(nn.Module):
  """One Q network: (obs [..., obs_size], action [..., act_size]) -> Q [...]."""
  hidden_sizes: Sequence[int]

  @nn.compact
  def __call__(self, obs: jnp.ndarray, action: jnp.ndarray) -> jnp.ndarray:
    return MLP(self.hidden_sizes, 1)(jnp.concatenate([obs, action], axis=-1))[..., 0]


# The twin critics as ONE module: parameters carry a leading ensemble axis of 2, outputs are [2, ...].
TwinCritic = nn.vmap(
    Critic,
    variable_axes={'params': 0},
    split_rngs={'params': True},
    in_axes=None,
    out_axes=0,
    axis_size=2,
)


def q1_params(twin_params):
  """The first critic's parameters out of the twin critics' (drops the ensemble axis)."""
  return jax.tree.map(lambda p: p[0], twin_params)
