"""A task from your own MJCF with JAX observation, reward and termination: a cart on a rail that must stop at x = 0.5.

  python experiments/train_teachers.py --benchmark=examples.custom_task:SUITE --preset=quick --workdir=/tmp/cart

The functions take `Readout`s (qpos [..., nq], qvel [..., nv], extra [..., n]) with any leading batch shape and the
applied control ctrl [..., nu] (the action in [-1, 1] mapped onto the actuator's ctrlrange), like ktm/envs/tasks.py.
"""

import jax.numpy as jnp

from ktm.envs import custom

CART_XML = """
<mujoco model="cart">
  <option timestep="0.01"/>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <camera name="side" pos="0.25 -3 0.6" xyaxes="1 0 0 0 0.2 1"/>  <!-- render.py films through the first camera -->
    <geom name="floor" type="plane" size="3 3 .1" rgba=".8 .9 .8 1"/>
    <site name="target" pos="0.5 0 0.3" size="0.03" rgba="0 .8 0 1"/>
    <body name="cart" pos="0 0 .15">
      <joint name="slide" type="slide" axis="1 0 0" damping="2"/>
      <geom name="cart_geom" type="box" size=".1 .1 .1" mass="1" rgba=".8 .4 .2 1"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="slide" gear="5" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""
TARGET = 0.5


def cart_obs(readout):
  """[..., 2]: distance to the target, velocity."""
  return jnp.concatenate([readout.qpos - TARGET, readout.qvel], axis=-1)


def cart_transition(prev, cur, ctrl, dt):
  """Reward: 1 at the target, less with the distance (0 from 1 m on), a small control cost; ends when the cart
  leaves [-2, 2]."""
  del prev, dt
  x = cur.qpos[..., 0]
  reward = 1.0 - jnp.minimum(jnp.abs(x - TARGET), 1.0) - 0.01 * jnp.sum(jnp.square(ctrl), axis=-1)
  return reward, jnp.abs(x) > 2.0


CART = custom.task('Cart', CART_XML, cart_obs, cart_transition, frame_skip=2, obs_dim=2, reset_noise_scale=0.1)
SUITE = custom.suite('cart', [CART])
