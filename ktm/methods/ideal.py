""""Ideal": K independent TD3 learners, learner k acting and learning only in task k (the task-specific teachers).

All learners work on the suite's padded sizes with their task's action mask (g^k), so one `vmap` covers tasks of
different obs/act sizes: zero-padded inputs get zero gradients, and a masked learner computes the same function as
one of the task's raw size (`ktm.teachers.raw_actor_params` gives that view).
"""

import dataclasses

import jax
import jax.numpy as jnp

from ktm import td3
from ktm.methods import base


def explore(actor_params, obs: jnp.ndarray, key: jax.Array, cfg: td3.TD3Config, masks: jnp.ndarray) -> jnp.ndarray:
  """K actors, actor k on task k, with N(0, exploration_noise): params [K], obs [K, E, O] -> [K, E, A]."""
  keys = jax.random.split(key, obs.shape[0])
  return jax.vmap(lambda p, o, k, m: td3.exploration_action(p, o, k, cfg, m))(actor_params, obs, keys, masks)


def greedy(actor_params, obs: jnp.ndarray, cfg: td3.TD3Config, masks: jnp.ndarray) -> jnp.ndarray:
  """K deterministic actors: params [K], obs [K, E, O] -> [K, E, A]."""
  return jax.vmap(lambda p, o, m: td3.policy(p, o, cfg, m))(actor_params, obs, masks)


@dataclasses.dataclass(frozen=True)
class IdealMethod(base.Method):
  """K TD3 learners (`td3.TD3State` stacked [K]); one vmapped update per epoch on each task's own minibatch."""
  cfg: td3.TD3Config
  schedule: base.OffPolicySchedule

  name = 'ideal'

  def init(self, key: jax.Array) -> td3.TD3State:
    return td3.init_many(key, self.tasks.num_tasks, self.cfg)

  def act(self, learner: td3.TD3State, obs, key, explore_: bool):
    masks = jnp.asarray(self.tasks.action_masks)
    if explore_:
      return explore(learner.actor_params, obs, key, self.cfg, masks)
    return greedy(learner.actor_params, obs, self.cfg, masks)

  def update(self, learner, batch, aux, stage, epoch, update_index):
    del aux, stage, epoch
    return td3.update_many(learner, batch, self.cfg, jnp.asarray(self.tasks.action_masks),
                           td3.is_policy_step(update_index, self.cfg))
