"""Independent numpy forward passes of ktm's networks, used as references by the tests."""

import numpy as np


def mlp(params, x):
  """ReLU MLP over flax Dense params {'Dense_i': {'kernel', 'bias'}} (in order)."""
  layers = sorted(params, key=lambda name: int(name.split('_')[-1]))
  for i, name in enumerate(layers):
    x = x @ np.asarray(params[name]['kernel'], np.float64) + np.asarray(params[name]['bias'], np.float64)
    if i < len(layers) - 1:
      x = np.maximum(x, 0.0)
  return x


def actor(params, obs):
  return np.tanh(mlp(params['MLP_0'], obs))


def critic(twin_params, j, obs, action):
  """Critic j (0 or 1) of the twin: [B]."""
  single = {name: {k: np.asarray(v)[j] for k, v in layer.items()} for name, layer in twin_params['MLP_0'].items()}
  return mlp(single, np.concatenate([obs, action], axis=-1))[..., 0]


def train_one(*args, **kwargs):
  """`ktm.loop.train` of a one-member run, returned without the member axis: (state, history, wall)."""
  from ktm import loop  # pylint: disable=import-outside-toplevel
  state, history, wall = loop.train(*args, **kwargs)
  return loop.member_state(state, 0), loop.member_history(history, 0), wall
