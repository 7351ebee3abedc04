"""G-Surgery: PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning") on one multi-task TD3 student.

As in KTM-DRL's comparison (Sec. 5.1: "we implemented G-Surgery based on TD3"), one TD3 learner acts on the padded
observations of all K tasks with task k's action mask g^k. Every update computes the K per-task gradients of the
single-task critic loss (and, every `policy_delay` updates, of the single-task actor loss) with ONE `jax.vmap` over
tasks, applies PCGrad's projection (Yu et al., Algorithm 1) to the flattened gradients, sums them (Algorithm 1
returns the sum, Delta theta = sum_i g_i^PC) and takes one Adam step. Targets are updated softly after the actor step,
as in TD3.

PCGrad, for each task i: g_i^PC <- g_i; for each other task j (j != i) in a random order drawn for i:
if g_i^PC . g_j < 0, g_i^PC <- g_i^PC - (g_i^PC . g_j) / |g_j|^2 g_j, always against the ORIGINAL g_j.
"""

import dataclasses
from typing import Any, Callable, Optional, Tuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import optax

from ktm import td3, validate, value_norm
from ktm.value_norm import MODES as VALUE_NORM_MODES
from ktm.methods import base
from ktm.replay import Transition

Params = Any


# ---- PCGrad on flat gradients ----

def random_orders(key: jax.Array, num_tasks: int) -> jnp.ndarray:
  """One random permutation of the K tasks per task: [K, K] int32 (row i: the order task i visits the others;
  its own index, wherever it falls, is skipped by `project_conflicting`)."""
  keys = jax.random.split(key, num_tasks)
  return jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(keys).astype(jnp.int32)


def project_one(grad: jnp.ndarray, task: jnp.ndarray, grads: jnp.ndarray,
                order: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """PCGrad for one task: grad [P] (task `task`'s), grads [K, P] (all tasks', original), order [K].

  Returns (g^PC [P], number of projections made []).
  """
  sq_norms = jnp.sum(jnp.square(grads), axis=-1)   # [K]

  def body(p, carry):
    g, count = carry
    j = order[p]
    g_j = grads[j]
    dot = jnp.dot(g, g_j)
    conflict = (j != task) & (dot < 0.0)
    coef = jnp.where(conflict, dot / jnp.where(conflict, sq_norms[j], 1.0), 0.0)
    return g - coef * g_j, count + conflict.astype(jnp.int32)

  return jax.lax.fori_loop(0, grads.shape[0], body, (grad, jnp.zeros((), jnp.int32)))


def project_conflicting(grads: jnp.ndarray, orders: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """PCGrad for all tasks: grads [K, P], orders [K, K] -> (projected grads [K, P], projections per task [K])."""
  tasks = jnp.arange(grads.shape[0])
  return jax.vmap(project_one, in_axes=(0, 0, None, 0))(grads, tasks, grads, orders)


def pcgrad(loss_fn: Callable, params: Params, key: jax.Array, *task_args) -> Tuple[Params, dict]:
  """The PCGrad-combined gradient of K single-task losses.

  `loss_fn(params, *args) -> (loss, metrics)` is ONE task's loss; `task_args` carry a leading task axis [K, ...].
  The K gradients come from one `jax.vmap` over tasks, are flattened (all leaves are float32), projected with a
  random order per task drawn from `key`, and summed. Returns (summed gradient pytree, per-task metrics [K] plus
  'conflicts' [K]: how many projections each task's gradient underwent).
  """
  grads, metrics = jax.vmap(jax.grad(loss_fn, has_aux=True), in_axes=(None,) + (0,) * len(task_args))(
      params, *task_args)
  _, unravel = jax.flatten_util.ravel_pytree(params)
  flat = jax.vmap(lambda g: jax.flatten_util.ravel_pytree(g)[0])(grads)          # [K, P]
  projected, conflicts = project_conflicting(flat, random_orders(key, flat.shape[0]))
  return unravel(jnp.sum(projected, axis=0)), {**metrics, 'conflicts': conflicts}


def _apply(grads: Params, params: Params, opt_state: optax.OptState,
           opt: optax.GradientTransformation) -> Tuple[Params, optax.OptState]:
  updates, opt_state = opt.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


# ---- the method's pure functions ----

def init(key: jax.Array, cfg: td3.TD3Config) -> td3.TD3State:
  """One TD3 student at the suite's padded sizes."""
  return td3.init(key, cfg)


def act(state: td3.TD3State, obs: jnp.ndarray, key: jax.Array, explore: bool, cfg: td3.TD3Config,
        action_masks: jnp.ndarray) -> jnp.ndarray:
  """obs [K, E, obs_size] -> actions [K, E, act_size]: pi(s) (+ clipped exploration noise), masked by g^k."""
  masks = action_masks[:, None, :]
  if explore:
    return td3.exploration_action(state.actor_params, obs, key, cfg, masks)
  return td3.policy(state.actor_params, obs, cfg, masks)


@dataclasses.dataclass(frozen=True)
class GSurgeryConfig(td3.TD3Config):
  """TD3's settings, and per-task value scaling."""
  value_norm: str = 'none'           # 'scale': every task's losses divided by the running scale of its own targets
                                     # (ktm/value_norm.py), before PCGrad; 'none': as published

  RANGES = dict(td3.TD3Config.RANGES, value_norm=validate.one_of(*VALUE_NORM_MODES))


def _task_critic_loss(critic_params: Params, target: jnp.ndarray, batch: Transition, weight, cfg: td3.TD3Config):
  """Task k's critic loss (batch [B, ...], target [B]), times `weight` (1, or 1 / s_k^2 with value scaling)."""
  return td3.weighted(td3.critic_loss, weight)(critic_params, target, batch, cfg)


def _task_actor_loss(actor_params: Params, critic_params: Params, obs: jnp.ndarray, mask: jnp.ndarray, weight,
                     cfg: td3.TD3Config):
  """Task k's actor loss on its own obs [B, obs_size] with its mask g^k [act_size], times `weight`."""
  return td3.weighted(td3.actor_loss, weight)(actor_params, critic_params, obs, cfg, mask)


def actor_step(state: td3.TD3State, batch: Transition, key: jax.Array, cfg: td3.TD3Config,
               action_masks: jnp.ndarray, weights: jnp.ndarray) -> Tuple[td3.TD3State, dict]:
  """The delayed part: one PCGrad actor step on the K tasks' actor losses (times weights [K]), then the soft
  target updates."""
  loss = lambda a, obs, mask, w: _task_actor_loss(a, state.critic_params, obs, mask, w, cfg)
  grads, metrics = pcgrad(loss, state.actor_params, key, batch.obs, action_masks, weights)
  actor_params, actor_opt_state = _apply(grads, state.actor_params, state.actor_opt_state, td3.actor_optimizer(cfg))
  state = state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state)
  return td3.soft_update_targets(state, cfg), {'actor_loss': metrics['actor_loss'],
                                               'actor_conflicts': metrics['conflicts']}


def update(state: td3.TD3State, batch: Transition, cfg: td3.TD3Config, action_masks: jnp.ndarray,
           policy_step: Optional[jnp.ndarray] = None) -> Tuple[td3.TD3State, dict]:
  """One G-Surgery update on one minibatch per task (batch fields [K, B, ...], action_masks [K, act_size]).

  Critic: per-task TD targets (TD3's clipped double-Q with per-sample smoothing noise, g^k after the noise), per-task
  critic gradients, PCGrad, sum, Adam. Every `policy_delay` updates (the same `lax.cond` schedule as `td3.update`):
  the same for the actor on the updated critic, then soft target updates (`policy_step` overrides the schedule).
  Metrics are per task [K].
  """
  key, noise_key, critic_order_key, actor_order_key = jax.random.split(state.key, 4)
  noise_keys = jax.random.split(noise_key, action_masks.shape[0])
  targets = jax.vmap(lambda b, k, m: td3.td_target(state.target_actor_params, state.target_critic_params, b, k,
                                                    cfg, m))(batch, noise_keys, action_masks)      # [K, B]
  ones = jnp.ones(action_masks.shape[0])
  critic_weights, actor_weights, weight_metrics = ones, ones, {}
  if isinstance(state, value_norm.ScaledTD3State):        # value_norm 'scale' (the learner carries the statistics)
    state, critic_weights, actor_weights, weight_metrics = value_norm.fold_in(state, None, targets)
  loss = lambda c, y, b, w: _task_critic_loss(c, y, b, w, cfg)
  grads, metrics = pcgrad(loss, state.critic_params, critic_order_key, targets, batch, critic_weights)
  critic_params, critic_opt_state = _apply(grads, state.critic_params, state.critic_opt_state,
                                           td3.critic_optimizer(cfg))
  state = state.replace(critic_params=critic_params, critic_opt_state=critic_opt_state, key=key)
  delayed = lambda s: actor_step(s, batch, actor_order_key, cfg, action_masks, actor_weights)
  policy_step = td3.is_policy_step(state.step, cfg) if policy_step is None else policy_step
  state, actor_metrics = td3.update_if(policy_step, delayed, state)
  metrics = {'critic_loss': metrics['critic_loss'], 'q1': metrics['q1'], 'critic_conflicts': metrics['conflicts'],
             **actor_metrics, **weight_metrics}
  return state.replace(step=state.step + 1), metrics


# ---- adapter ----

@dataclasses.dataclass(frozen=True)
class GSurgeryMethod(base.Method):
  """PCGrad on a multi-task TD3 student (padded sizes, g^k masks); config = TD3's, one 'train' stage."""
  cfg: GSurgeryConfig
  schedule: base.OffPolicySchedule = base.OffPolicySchedule()

  name = 'gsurgery'
  def __post_init__(self):
    if (self.cfg.obs_size, self.cfg.act_size) != (self.tasks.obs_size, self.tasks.act_size):
      raise ValueError(f'cfg sizes ({self.cfg.obs_size}, {self.cfg.act_size}) must be the suite\'s padded sizes '
                       f'({self.tasks.obs_size}, {self.tasks.act_size})')



  def init(self, key):
    state = init(key, self.cfg)
    if getattr(self.cfg, 'value_norm', 'none') == 'none':     # a plain td3.TD3Config has no value scaling
      return state
    return value_norm.with_stats(state, self.tasks.num_tasks)

  def act(self, learner, obs, key, explore):
    return act(learner, obs, key, explore, self.cfg, jnp.asarray(self.tasks.action_masks))

  def update(self, learner, batch, aux, stage, epoch, update_index):
    del aux, stage, epoch
    return update(learner, batch, self.cfg, jnp.asarray(self.tasks.action_masks),
                  td3.is_policy_step(update_index, self.cfg))
