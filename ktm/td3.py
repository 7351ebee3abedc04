"""TD3 (Fujimoto et al., 2018) as pure functions over one `TD3State`.

A learner works on padded sizes (`obs_size`, `act_size`); an optional `action_mask` [act_size] (the paper's g^k)
zeroes padded action entries wherever the learner produces an action, so a learner on zero-padded inputs computes
the same function as one on the raw sizes. K independent learners are the same functions under `jax.vmap`
(`init_many`, `update_many`).
"""

import dataclasses
from typing import Any, Callable, Optional, Sequence, Tuple

import flax
import jax
import jax.numpy as jnp
import optax

from ktm import networks, validate
from ktm.replay import Transition

Params = Any


@dataclasses.dataclass(frozen=True)
class TD3Hyperparameters:
  """TD3's hyper-parameters without the networks' input and output sizes; defaults are the paper's (and TD3's).
  `TD3Config` adds the sizes; a learner that sizes its networks from the tasks (SharedNet) extends this directly,
  so every TD3 helper (optimizers, smoothing noise, policy delay, soft updates) takes its config as it is."""
  hidden_sizes: Tuple[int, ...] = (400, 400)  # units of each hidden layer of the actor and of each critic
  actor_lr: float = 3e-4             # Adam learning rate of the actor
  critic_lr: float = 3e-4            # Adam learning rate of the twin critics
  gamma: float = 0.99                # discount factor of the TD target
  tau: float = 0.005                 # Polyak rate of the target networks (1 = copy the online networks)
  batch_size: int = 256              # transitions per update (per task for the multi-task learners)
  policy_delay: int = 2              # critic updates per actor and target update (TD3's d)
  exploration_noise: float = 0.1     # std of N(0, sigma) added to the policy's action when acting
  target_noise: float = 0.2          # std of the per-sample target-policy smoothing noise
  target_noise_clip: float = 0.5     # the smoothing noise is clipped to [-c, c]
  max_grad_norm: Optional[float] = None  # global-norm gradient clipping; None = off (as in TD3)
  compute_dtype: str = 'float32'    # matmul inputs: 'float32' or 'bfloat16' (float32 accumulation; see networks)

  RANGES = dict(  # allowed values (checked in __post_init__, shown by --help); see ktm/validate.py
      hidden_sizes=validate.SIZES, actor_lr=validate.POSITIVE, critic_lr=validate.POSITIVE,
      gamma=validate.UNIT_INTERVAL_OPEN_LOW, tau=validate.UNIT_INTERVAL_OPEN_LOW, batch_size=validate.AT_LEAST_1,
      policy_delay=validate.AT_LEAST_1, exploration_noise=validate.NON_NEGATIVE, target_noise=validate.NON_NEGATIVE,
      target_noise_clip=validate.NON_NEGATIVE, max_grad_norm=validate.optional(validate.POSITIVE))

  def __post_init__(self):
    object.__setattr__(self, 'hidden_sizes', tuple(int(h) for h in self.hidden_sizes))
    networks.check_compute_dtype(self.compute_dtype)
    validate.check(self, self.RANGES)


@dataclasses.dataclass(frozen=True)
class TD3Config(TD3Hyperparameters):
  """TD3's hyper-parameters and the networks' sizes (given by keyword)."""
  obs_size: int = dataclasses.field(kw_only=True)   # observation size the networks take (padded to the suite's largest)
  act_size: int = dataclasses.field(kw_only=True)   # action size the actor outputs (padded to the suite's largest)

  RANGES = dict(TD3Hyperparameters.RANGES, obs_size=validate.AT_LEAST_1, act_size=validate.AT_LEAST_1)


@flax.struct.dataclass
class TD3State:
  """One learner. Twin-critic parameters carry a leading ensemble axis of 2."""
  actor_params: Params
  critic_params: Params
  target_actor_params: Params
  target_critic_params: Params
  actor_opt_state: optax.OptState
  critic_opt_state: optax.OptState
  step: jnp.ndarray   # int32 [], critic updates done so far
  key: jax.Array


def actor_network(cfg: TD3Config) -> networks.Actor:
  return networks.Actor(cfg.hidden_sizes, cfg.act_size, cfg.compute_dtype)


def critic_network(cfg: TD3Config) -> networks.Critic:
  """A single Q network; `networks.TwinCritic` is two of these with stacked parameters."""
  return networks.Critic(cfg.hidden_sizes, cfg.compute_dtype)


def twin_critic_network(cfg: TD3Config):
  return networks.TwinCritic(cfg.hidden_sizes, cfg.compute_dtype)


def optimizer(learning_rate: float, max_grad_norm: Optional[float]) -> optax.GradientTransformation:
  adam = optax.adam(learning_rate)
  return adam if max_grad_norm is None else optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)


def actor_optimizer(cfg: TD3Config) -> optax.GradientTransformation:
  return optimizer(cfg.actor_lr, cfg.max_grad_norm)


def critic_optimizer(cfg: TD3Config) -> optax.GradientTransformation:
  return optimizer(cfg.critic_lr, cfg.max_grad_norm)


@networks.compiled_init(static_argnames=('cfg',))
def init(key: jax.Array, cfg: TD3Config) -> TD3State:
  """Fresh learner. Target parameters are copies (not aliases) of the online ones, so the state can be donated."""
  key, actor_key, critic_key = jax.random.split(key, 3)
  obs = jnp.zeros((1, cfg.obs_size))
  actor_params = actor_network(cfg).init(actor_key, obs)['params']
  critic_params = twin_critic_network(cfg).init(critic_key, obs, jnp.zeros((1, cfg.act_size)))['params']
  return TD3State(
      actor_params=actor_params,
      critic_params=critic_params,
      target_actor_params=jax.tree.map(jnp.copy, actor_params),
      target_critic_params=jax.tree.map(jnp.copy, critic_params),
      actor_opt_state=actor_optimizer(cfg).init(actor_params),
      critic_opt_state=critic_optimizer(cfg).init(critic_params),
      step=jnp.zeros((), jnp.int32),
      key=key,
  )


@networks.compiled_init(static_argnames=('num_learners', 'cfg'))
def init_many(key: jax.Array, num_learners: int, cfg: TD3Config) -> TD3State:
  """K independent learners stacked on a leading axis; learner k's key is `fold_in(key, k)`."""
  keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(num_learners))
  return jax.vmap(lambda k: init(k, cfg))(keys)


def policy(actor_params: Params, obs: jnp.ndarray, cfg: TD3Config,
           action_mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Deterministic action [..., act_size] for obs [..., obs_size], padded entries masked."""
  action = actor_network(cfg).apply({'params': actor_params}, obs)
  return action if action_mask is None else action * action_mask


def exploration_action(actor_params: Params, obs: jnp.ndarray, key: jax.Array, cfg: TD3Config,
                       action_mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """pi(s) + N(0, exploration_noise), clipped to [-1, 1]; [..., act_size]."""
  action = policy(actor_params, obs, cfg)
  action = jnp.clip(action + cfg.exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)
  return action if action_mask is None else action * action_mask


def q1(critic_params: Params, obs: jnp.ndarray, action: jnp.ndarray, cfg: TD3Config) -> jnp.ndarray:
  """First critic only: [...]. Cheaper than evaluating both (the actor loss uses Q1 only)."""
  return critic_network(cfg).apply({'params': networks.q1_params(critic_params)}, obs, action)


def twin_q(critic_params: Params, obs: jnp.ndarray, action: jnp.ndarray, cfg: TD3Config) -> jnp.ndarray:
  """Both critics: [2, ...]."""
  return twin_critic_network(cfg).apply({'params': critic_params}, obs, action)


def smoothing_noise(key: jax.Array, shape: Sequence[int], cfg: TD3Config) -> jnp.ndarray:
  """Per-sample target-policy smoothing noise clip(N(0, target_noise), -c, c) of `shape` ([B, act_size])."""
  noise = cfg.target_noise * jax.random.normal(key, shape)
  return jnp.clip(noise, -cfg.target_noise_clip, cfg.target_noise_clip)


def td_target(target_actor_params: Params, target_critic_params: Params, batch: Transition, key: jax.Array,
              cfg: TD3Config, action_mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """y = r + gamma * (1 - terminated) * min_j Q'_j(s', clip(pi'(s') + eps, -1, 1)), [B].

  A truncated (time-limit) transition has terminated = 0 and so still bootstraps. The mask is applied after the
  noise so padded action entries stay exactly zero, as they are in the replayed actions.
  """
  next_action = policy(target_actor_params, batch.next_obs, cfg)
  noise = smoothing_noise(key, next_action.shape, cfg)
  next_action = jnp.clip(next_action + noise, -1.0, 1.0)
  if action_mask is not None:
    next_action = next_action * action_mask
  next_q = jnp.min(twin_q(target_critic_params, batch.next_obs, next_action, cfg), axis=0)
  return batch.reward + cfg.gamma * (1.0 - batch.terminated) * next_q


def critic_loss(critic_params: Params, target: jnp.ndarray, batch: Transition,
                cfg: TD3Config) -> Tuple[jnp.ndarray, dict]:
  """Eq. 4: mean_i (y_i - Q1(s_i, a_i))^2 + mean_i (y_i - Q2(s_i, a_i))^2 with a fixed target y [B].

  With batch fields [K, B, ...] and y [K, B], the means run over B and the K tasks' losses are summed.
  """
  q = twin_q(critic_params, batch.obs, batch.action, cfg)   # [2, B] or [2, K, B]
  loss = jnp.sum(jnp.mean(jnp.square(q - target[None]), axis=-1))
  return loss, {'critic_loss': loss, 'q1': jnp.mean(q[0]), 'q2': jnp.mean(q[1])}


def actor_loss(actor_params: Params, critic_params: Params, obs: jnp.ndarray, cfg: TD3Config,
               action_mask: Optional[jnp.ndarray] = None) -> Tuple[jnp.ndarray, dict]:
  """-mean_i Q1(s_i, g(pi(s_i))) over obs [B, obs_size]."""
  loss = -jnp.mean(q1(critic_params, obs, policy(actor_params, obs, cfg, action_mask), cfg))
  return loss, {'actor_loss': loss}


def gradient_step(loss_fn: Callable, params: Params, opt_state: optax.OptState,
                  opt: optax.GradientTransformation, *args) -> Tuple[Params, optax.OptState, dict]:
  """One optimizer step on `loss_fn(params, *args) -> (loss, metrics)`; returns new params, state, metrics."""
  grads, metrics = jax.grad(loss_fn, has_aux=True)(params, *args)
  updates, opt_state = opt.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, metrics


def soft_update(target: Params, online: Params, tau: float) -> Params:
  """Polyak averaging: tau * online + (1 - tau) * target."""
  return optax.incremental_update(online, target, tau)


def is_policy_step(step: jnp.ndarray, cfg: TD3Config) -> jnp.ndarray:
  """Whether the update that takes `step` critic updates to `step + 1` also updates actor and targets."""
  return (step + 1) % cfg.policy_delay == 0


ActorLossFn = Callable[..., Tuple[jnp.ndarray, dict]]


def update_actor_and_targets(state: TD3State, cfg: TD3Config, obs: jnp.ndarray, action_mask: Optional[jnp.ndarray],
                             actor_loss_fn: ActorLossFn = actor_loss) -> Tuple[TD3State, dict]:
  """The delayed part of TD3: one actor step, then soft updates of all target networks."""
  actor_params, actor_opt_state, metrics = gradient_step(
      actor_loss_fn, state.actor_params, state.actor_opt_state, actor_optimizer(cfg),
      state.critic_params, obs, cfg, action_mask)
  return soft_update_targets(state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state), cfg), metrics


def soft_update_targets(state: TD3State, cfg: TD3Config) -> TD3State:
  """Both target networks move `tau` of the way to the online ones."""
  return state.replace(
      target_actor_params=soft_update(state.target_actor_params, state.actor_params, cfg.tau),
      target_critic_params=soft_update(state.target_critic_params, state.critic_params, cfg.tau))


def update_if(pred: jnp.ndarray, step_fn: Callable[[Any], Tuple[Any, dict]], state: Any) -> Tuple[Any, dict]:
  """`step_fn(state) -> (state, metrics)` where `pred`, else `state` unchanged and metrics of the same shapes, all
  zero; one `lax.cond` (a real branch unless `pred` is batched under vmap)."""
  skipped = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), jax.eval_shape(step_fn, state)[1])
  return jax.lax.cond(pred, step_fn, lambda s: (s, skipped), state)


def weighted(loss_fn: Callable, weight: jnp.ndarray) -> Callable:
  """`loss_fn` (-> (loss, metrics)) with its loss multiplied by `weight`; the metrics keep the unweighted values."""
  def fn(*args):
    loss, metrics = loss_fn(*args)
    return loss * weight, metrics
  return fn


# (state, TD targets [B]) -> (state, critic loss weight, actor loss weight, metrics); see ktm/value_norm.py
LossWeightsFn = Callable[[Any, jnp.ndarray], Tuple[Any, jnp.ndarray, jnp.ndarray, dict]]


def update(state: TD3State, batch: Transition, cfg: TD3Config, action_mask: Optional[jnp.ndarray] = None,
           policy_step: Optional[jnp.ndarray] = None, actor_loss_fn: ActorLossFn = actor_loss,
           loss_weights: Optional[LossWeightsFn] = None) -> Tuple[TD3State, dict]:
  """One TD3 update on a batch ([B, ...] fields): a critic step, and every `policy_delay` steps an actor step
  and the target updates (together, under one `lax.cond`).

  `policy_step` overrides the delay schedule with a shared boolean; `update_many` passes one so the `lax.cond`
  stays a real branch under `vmap` instead of becoming a select that runs both sides. `actor_loss_fn(actor_params,
  critic_params, obs, cfg, action_mask) -> (loss, metrics)` replaces TD3's actor loss (KTM's Eq. 5 does).
  `loss_weights`, given the TD targets, multiplies the critic and actor losses (per-task value scaling).
  """
  key, noise_key = jax.random.split(state.key)
  target = td_target(state.target_actor_params, state.target_critic_params, batch, noise_key, cfg, action_mask)
  critic_loss_fn, weight_metrics = critic_loss, {}
  if loss_weights is not None:
    state, critic_weight, actor_weight, weight_metrics = loss_weights(state, target)
    critic_loss_fn, actor_loss_fn = weighted(critic_loss, critic_weight), weighted(actor_loss_fn, actor_weight)
  critic_params, critic_opt_state, metrics = gradient_step(
      critic_loss_fn, state.critic_params, state.critic_opt_state, critic_optimizer(cfg), target, batch, cfg)
  state = state.replace(critic_params=critic_params, critic_opt_state=critic_opt_state, key=key)
  if policy_step is None:
    policy_step = is_policy_step(state.step, cfg)
  delayed = lambda s: update_actor_and_targets(s, cfg, batch.obs, action_mask, actor_loss_fn)
  state, actor_metrics = update_if(policy_step, delayed, state)
  return state.replace(step=state.step + 1), {**metrics, **actor_metrics, **weight_metrics}


def update_many(states: TD3State, batches: Transition, cfg: TD3Config,
                action_masks: Optional[jnp.ndarray] = None,
                policy_step: Optional[jnp.ndarray] = None) -> Tuple[TD3State, dict]:
  """K independent learners, one update each: states [K], batches [K, B, ...], action_masks [K, act_size].

  All learners advance in lockstep, so the policy-delay decision is taken once for all of them (from their step
  count, or `policy_step` when given).
  """
  if policy_step is None:
    policy_step = is_policy_step(states.step[0], cfg)
  if action_masks is None:
    return jax.vmap(lambda s, b: update(s, b, cfg, None, policy_step))(states, batches)
  return jax.vmap(lambda s, b, m: update(s, b, cfg, m, policy_step))(states, batches, action_masks)
