"""KTM-DRL's equations (Xu et al., 2020, Sec. 3.3-3.4) for ONE task k, as pure functions.

The student works on padded sizes (obs `cfg.obs_size`, act `cfg.act_size`); teacher k on its own sizes
(`teacher_cfg`), which are the task's raw sizes or, for teachers trained on zero-padded inputs, the padded ones.
The teacher is given `s = ŝ[:teacher obs size]` and `f^k(â)`: the student's action with g^k applied (padded entries
zeroed), cut to the teacher's action size. For a raw-size teacher that is exactly the paper's f^k slice; for a
padded teacher the zeroed entries make it compute its raw-size function.
The K tasks are handled by `jax.vmap` or a `lax.scan` over these functions (see ktm/ktm_drl.py).
"""

from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from ktm import padding, td3
from ktm.sweep import static_zero
from ktm.replay import Transition

Params = td3.Params


def teacher_inputs(obs: jnp.ndarray, action: jnp.ndarray, teacher_cfg: td3.TD3Config,
                   action_mask: Optional[jnp.ndarray]) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """(s, f^k(â)) for the teacher from the student's padded (ŝ [B, obs_size], â [B, act_size])."""
  if action_mask is not None:
    action = padding.mask_action(action, action_mask)
  return obs[..., :teacher_cfg.obs_size], padding.slice_action(action, teacher_cfg.act_size)


def offline_critic_loss(critic_params: Params, teacher_critic_params: Params, batch: Transition, cfg: td3.TD3Config,
                        teacher_cfg: td3.TD3Config, action_mask: Optional[jnp.ndarray] = None
                        ) -> Tuple[jnp.ndarray, dict]:
  """Eq. 1: mean_i (Q1^k(s_i, a_i) - Q1(ŝ_i, â_i))^2 + mean_i (Q2^k(s_i, a_i) - Q2(ŝ_i, â_i))^2 on D_k's batch."""
  teacher_q = td3.twin_q(teacher_critic_params, *teacher_inputs(batch.obs, batch.action, teacher_cfg, action_mask),
                         teacher_cfg)
  q = td3.twin_q(critic_params, batch.obs, batch.action, cfg)
  loss = jnp.sum(jnp.mean(jnp.square(jax.lax.stop_gradient(teacher_q) - q), axis=1))
  return loss, {'critic_loss': loss, 'q1': jnp.mean(q[0]), 'teacher_q1': jnp.mean(teacher_q[0])}


def teacher_q1_mean(teacher_critic_params: Params, obs: jnp.ndarray, action: jnp.ndarray, teacher_cfg: td3.TD3Config,
                    action_mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """mean_i Q1^k(s_i, f^k(â_i)) for the student's padded obs [B, obs_size] and actions [B, act_size]."""
  return jnp.mean(td3.q1(teacher_critic_params, *teacher_inputs(obs, action, teacher_cfg, action_mask), teacher_cfg))


def teacher_actor_objective(actor_params: Params, teacher_critic_params: Params, obs: jnp.ndarray,
                            cfg: td3.TD3Config, teacher_cfg: td3.TD3Config,
                            action_mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """mean_i Q1^k(s_i, f^k(π(ŝ_i))): its gradient w.r.t. the actor parameters is Eq. 2."""
  return teacher_q1_mean(teacher_critic_params, obs, td3.policy(actor_params, obs, cfg), teacher_cfg, action_mask)


def own_actor_objective(actor_params: Params, critic_params: Params, obs: jnp.ndarray, cfg: td3.TD3Config,
                        action_mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """mean_i Q1(ŝ_i, g^k(π(ŝ_i))): the student's own critic term of Eq. 5."""
  return -td3.actor_loss(actor_params, critic_params, obs, cfg, action_mask)[0]


def offline_actor_loss(actor_params: Params, teacher_critic_params: Params, obs: jnp.ndarray, cfg: td3.TD3Config,
                       teacher_cfg: td3.TD3Config, action_mask: Optional[jnp.ndarray] = None
                       ) -> Tuple[jnp.ndarray, dict]:
  """Minus the Eq. 2 objective (gradient descent on it ascends teacher k's Q1)."""
  loss = -teacher_actor_objective(actor_params, teacher_critic_params, obs, cfg, teacher_cfg, action_mask)
  return loss, {'actor_loss': loss}


def online_actor_loss(actor_params: Params, critic_params: Params, teacher_critic_params: Params, obs: jnp.ndarray,
                      cfg: td3.TD3Config, teacher_cfg: td3.TD3Config, alpha: float, beta: float,
                      action_mask: Optional[jnp.ndarray] = None) -> Tuple[jnp.ndarray, dict]:
  """Eq. 5 as a loss: -(alpha * mean Q1^k(s, f^k(π(ŝ))) + beta * mean Q1(ŝ, g^k(π(ŝ)))).

  With alpha = 0 this is TD3's actor loss; with beta = 0 only the teacher guides the actor. A weight that is a
  plain 0 skips its term; a traced (swept) weight always computes it.
  """
  teacher_term = (teacher_actor_objective(actor_params, teacher_critic_params, obs, cfg, teacher_cfg, action_mask)
                  if not static_zero(alpha) else jnp.zeros(()))
  own_term = (own_actor_objective(actor_params, critic_params, obs, cfg, action_mask) if not static_zero(beta)
              else jnp.zeros(()))
  loss = -(alpha * teacher_term + beta * own_term)
  return loss, {'actor_loss': loss, 'teacher_q1_term': teacher_term, 'own_q1_term': own_term}


def online_critic_loss(critic_params: Params, target_actor_params: Params, target_critic_params: Params,
                       batch: Transition, key: jax.Array, cfg: td3.TD3Config,
                       action_mask: Optional[jnp.ndarray] = None) -> Tuple[jnp.ndarray, dict]:
  """Eq. 3-4: TD3's loss with the student's target networks and target actions masked by g^k.

  The mask is applied after the clipped smoothing noise (Eq. 3 writes g^k(π'(ŝ')) + ε): the online buffer D'_k
  holds masked actions, so the critic is only ever trained, and queried, with zeros in the padded entries.
  """
  target = td3.td_target(target_actor_params, target_critic_params, batch, key, cfg, action_mask)
  return td3.critic_loss(critic_params, jax.lax.stop_gradient(target), batch, cfg)
