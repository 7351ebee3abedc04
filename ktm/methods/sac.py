"""SAC-MT: Soft Actor-Critic (Haarnoja et al. 2018) as one agent on all K tasks, with the hierarchical replay and g^k.

As in KTM-DRL's comparison (Sec. 4: "we extended ... SAC (SAC-MT) to train a single-task DRL agent for multiple
tasks one by one ... we applied the above hierarchical experience replay and the mask function in Eq. (3)"), ONE
actor and ONE pair of critics act on the padded observations of every task; each epoch trains on one minibatch per
task. SAC is the version with twin critics, a tanh-squashed Gaussian policy and automatic temperature tuning
("Soft Actor-Critic Algorithms and Applications", Haarnoja et al. 2018b, Sec. 5 and Algorithm 1):

  critic  J_Q = sum_j mean_i (Q_j(s_i, a_i) - y_i)^2,
          y_i = r_i + gamma (1 - terminated_i) (min_j Q'_j(s'_i, a'_i) - alpha_k log pi(a'_i | s'_i)),  a' ~ pi(s')
  actor   J_pi = mean_i (alpha_k log pi(a_i | s_i) - min_j Q_j(s_i, a_i)),  a = g^k(tanh(mu + sigma * eps))
  alpha   J(alpha_k) = mean_i -alpha_k (log pi(a_i | s_i) + H_k),  H_k = -|A_k|   (Eq. 18, alpha = exp(log alpha))
  targets Q'_j <- tau Q_j + (1 - tau) Q'_j after every step (SAC has no target actor and no policy delay).

Padding: task k's log-probability sums only its |A_k| real action dims (the padded dims' terms are multiplied by
g^k), and its sampled actions are g^k(tanh(u)), so the padded outputs of the actor have no effect and get no
gradient. The temperature is per task (log alpha [K], target entropy -act_dims[k]): tasks with different action
sizes have different target entropies, and one shared alpha would trade the tasks' entropies against each other.

`combine='sequential'` (default) takes K optimizer steps per epoch in task order (a `lax.scan` over tasks: the
paper's "one by one" and KTM-DRL's Algorithm 1 loop over the K minibatches); `combine='joint'` takes one step on
the K tasks' summed losses (the per-task losses lifted by `jax.vmap`).
"""

import dataclasses
import math
from typing import Any, Optional, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ktm import networks, td3, validate, value_norm
from ktm.value_norm import MODES as VALUE_NORM_MODES
from ktm.methods import base
from ktm.replay import Transition

Params = Any
_FINITE = validate.interval(-math.inf, math.inf)


@dataclasses.dataclass(frozen=True)
class SACConfig:
  """SAC-MT hyper-parameters: networks and optimizers as the paper's other learners (400-400, Adam 3e-4, batch
  256 per task, gamma 0.99, tau 0.005); SAC's own settings are Haarnoja et al.'s (alpha_0 = 1, log sigma in
  [-20, 2], target entropy -|A_k|, target update every step)."""
  hidden_sizes: Tuple[int, ...] = (400, 400)  # units of each hidden layer of the actor and of each critic
  actor_lr: float = 3e-4             # Adam learning rate of the actor
  critic_lr: float = 3e-4            # Adam learning rate of the twin critics
  alpha_lr: float = 3e-4             # Adam learning rate of each task's log temperature
  gamma: float = 0.99                # discount factor of the soft TD target
  tau: float = 0.005                 # Polyak rate of the target critics, applied after every step
  batch_size: int = 256              # transitions per task per update
  init_temperature: float = 1.0      # every task's temperature alpha at the start
  target_entropy_per_dim: float = -1.0  # task k's target entropy is this times |A_k| (SAC's -|A_k| at -1)
  log_std_min: float = -20.0         # the policy's log standard deviations are clipped to [min, max]
  log_std_max: float = 2.0           # upper clip of the policy's log standard deviations
  combine: str = 'sequential'        # 'sequential' (K optimizer steps per epoch) or 'joint' (one, summed losses)
  max_grad_norm: Optional[float] = None  # global-norm gradient clipping of actor and critics; None = off (as SAC)
  compute_dtype: str = 'float32'     # matmul inputs: 'float32' or 'bfloat16' (float32 accumulation; see networks)
  value_norm: str = 'none'           # 'scale': every task's losses divided by the running scale of its own targets
                                     # (ktm/value_norm.py); 'none': as published

  RANGES = dict(  # allowed values (checked in __post_init__, shown by --help); see ktm/validate.py
      value_norm=validate.one_of(*VALUE_NORM_MODES),
      hidden_sizes=validate.SIZES, actor_lr=validate.POSITIVE, critic_lr=validate.POSITIVE,
      alpha_lr=validate.POSITIVE, gamma=validate.UNIT_INTERVAL_OPEN_LOW, tau=validate.UNIT_INTERVAL_OPEN_LOW,
      batch_size=validate.AT_LEAST_1, init_temperature=validate.POSITIVE,
      target_entropy_per_dim=_FINITE, log_std_min=_FINITE, log_std_max=_FINITE,
      combine=validate.one_of('sequential', 'joint'), max_grad_norm=validate.optional(validate.POSITIVE))

  def __post_init__(self):
    object.__setattr__(self, 'hidden_sizes', tuple(int(h) for h in self.hidden_sizes))
    networks.check_compute_dtype(self.compute_dtype)
    validate.check(self, self.RANGES)
    if self.log_std_min >= self.log_std_max:
      raise ValueError(f'SACConfig.log_std_min = {self.log_std_min} is not allowed: must be < log_std_max '
                       f'= {self.log_std_max}')


@flax.struct.dataclass
class SACState:
  """The one multi-task SAC learner. Twin-critic parameters carry a leading ensemble axis of 2; the temperature and
  its Adam state are per task ([K] leading axis)."""
  actor_params: Params
  critic_params: Params
  target_critic_params: Params
  log_alpha: jnp.ndarray          # [K]
  actor_opt_state: optax.OptState
  critic_opt_state: optax.OptState
  alpha_opt_state: optax.OptState  # K independent Adam states stacked on a leading axis
  step: jnp.ndarray               # int32 [], updates done so far
  key: jax.Array


@flax.struct.dataclass
class ScaledSACState(SACState):
  """SAC-MT's learner with its tasks' target statistics (value_norm 'scale')."""
  value_stats: value_norm.Stats


class GaussianActor(nn.Module):
  """obs [..., obs_size] -> (mean [..., act_size], log_std [..., act_size]) of the pre-tanh Gaussian."""
  hidden_sizes: Tuple[int, ...]
  act_size: int
  log_std_min: float
  log_std_max: float
  compute_dtype: str = 'float32'

  @nn.compact
  def __call__(self, obs: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
    out = networks.MLP(self.hidden_sizes, 2 * self.act_size, self.compute_dtype)(obs)
    mean, log_std = jnp.split(out, 2, axis=-1)
    return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


def actor_network(cfg: SACConfig, act_size: int) -> GaussianActor:
  return GaussianActor(cfg.hidden_sizes, act_size, cfg.log_std_min, cfg.log_std_max, cfg.compute_dtype)


def twin_q(critic_params: Params, obs: jnp.ndarray, action: jnp.ndarray, cfg: SACConfig) -> jnp.ndarray:
  """Both critics: [2, ...] (the same twin-critic module as TD3's)."""
  return networks.TwinCritic(cfg.hidden_sizes, cfg.compute_dtype).apply({'params': critic_params}, obs, action)


def _optimizer(cfg: SACConfig, learning_rate: float) -> optax.GradientTransformation:
  return td3.optimizer(learning_rate, cfg.max_grad_norm)


def alpha_optimizer(cfg: SACConfig) -> optax.GradientTransformation:
  return optax.adam(cfg.alpha_lr)


@networks.compiled_init(static_argnames=('tasks', 'cfg'))
def init(key: jax.Array, tasks: base.TaskInfo, cfg: SACConfig) -> SACState:
  """Fresh learner at the suite's padded sizes; target critics are copies (not aliases), so the state donates."""
  key, actor_key, critic_key = jax.random.split(key, 3)
  obs = jnp.zeros((1, tasks.obs_size))
  actor_params = actor_network(cfg, tasks.act_size).init(actor_key, obs)['params']
  critic_params = networks.TwinCritic(cfg.hidden_sizes, cfg.compute_dtype).init(
      critic_key, obs, jnp.zeros((1, tasks.act_size)))['params']
  log_alpha = jnp.full((tasks.num_tasks,), math.log(cfg.init_temperature), jnp.float32)
  return SACState(
      actor_params=actor_params,
      critic_params=critic_params,
      target_critic_params=jax.tree.map(jnp.copy, critic_params),
      log_alpha=log_alpha,
      actor_opt_state=_optimizer(cfg, cfg.actor_lr).init(actor_params),
      critic_opt_state=_optimizer(cfg, cfg.critic_lr).init(critic_params),
      alpha_opt_state=jax.vmap(alpha_optimizer(cfg).init)(log_alpha),
      step=jnp.zeros((), jnp.int32),
      key=key,
  )


# ---- the tanh-squashed Gaussian policy ----

def log_one_minus_tanh_sq(u: jnp.ndarray) -> jnp.ndarray:
  """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), finite for every u (the change-of-variables term)."""
  return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def squashed_log_prob(pre_tanh: jnp.ndarray, mean: jnp.ndarray, log_std: jnp.ndarray,
                      mask: jnp.ndarray) -> jnp.ndarray:
  """log pi(tanh(u)) = sum_d g_d [log N(u_d; mean_d, std_d) - log(1 - tanh(u_d)^2)] over the real dims only.

  pre_tanh, mean, log_std [..., A]; mask g^k [A] (or broadcastable) -> [...]. Padded dims (g_d = 0) add exactly 0.
  """
  z = (pre_tanh - mean) * jnp.exp(-log_std)
  per_dim = -0.5 * jnp.square(z) - log_std - 0.5 * math.log(2.0 * math.pi) - log_one_minus_tanh_sq(pre_tanh)
  return jnp.sum(per_dim * mask, axis=-1)


def sample_action(actor_params: Params, obs: jnp.ndarray, key: jax.Array, mask: jnp.ndarray,
                  cfg: SACConfig) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """Reparameterised sample a = g^k(tanh(mean + std * eps)) [..., A] and its log-probability [...] over the real
  dims; obs [..., obs_size], mask [A] (or broadcastable, e.g. [K, 1, A] for obs [K, E, O])."""
  mean, log_std = actor_network(cfg, mask.shape[-1]).apply({'params': actor_params}, obs)
  pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
  return jnp.tanh(pre_tanh) * mask, squashed_log_prob(pre_tanh, mean, log_std, mask)


def deterministic_action(actor_params: Params, obs: jnp.ndarray, mask: jnp.ndarray, cfg: SACConfig) -> jnp.ndarray:
  """g^k(tanh(mean)) [..., A]: the evaluation policy."""
  mean, _ = actor_network(cfg, mask.shape[-1]).apply({'params': actor_params}, obs)
  return jnp.tanh(mean) * mask


# ---- losses for ONE task (batch [B, ...], mask [A], scalars) ----

def td_target(actor_params: Params, target_critic_params: Params, log_alpha: jnp.ndarray, batch: Transition,
              mask: jnp.ndarray, key: jax.Array, cfg: SACConfig) -> jnp.ndarray:
  """y = r + gamma (1 - terminated) (min_j Q'_j(s', a') - alpha log pi(a'|s')), a' ~ pi(s') [B] (no gradient).

  A truncated (time-limit) transition has terminated = 0 and so still bootstraps."""
  next_action, next_log_prob = sample_action(actor_params, batch.next_obs, key, mask, cfg)
  next_q = jnp.min(twin_q(target_critic_params, batch.next_obs, next_action, cfg), axis=0)
  soft_q = next_q - jnp.exp(log_alpha) * next_log_prob
  return jax.lax.stop_gradient(batch.reward + cfg.gamma * (1.0 - batch.terminated) * soft_q)


def critic_loss(critic_params: Params, target: jnp.ndarray, batch: Transition,
                cfg: SACConfig) -> Tuple[jnp.ndarray, dict]:
  """sum_j mean_i (Q_j(s_i, a_i) - y_i)^2 (TD3's form of the twin loss; SAC's 1/2 is a constant under Adam)."""
  q = twin_q(critic_params, batch.obs, batch.action, cfg)    # [2, B]
  loss = jnp.sum(jnp.mean(jnp.square(q - target), axis=-1))
  return loss, {'critic_loss': loss, 'q1': jnp.mean(q[0])}


def actor_loss(actor_params: Params, critic_params: Params, log_alpha: jnp.ndarray, obs: jnp.ndarray,
               mask: jnp.ndarray, key: jax.Array, cfg: SACConfig) -> Tuple[jnp.ndarray, dict]:
  """mean_i (alpha log pi(a_i|s_i) - min_j Q_j(s_i, a_i)), a_i reparameterised; the metrics carry the sample's
  mean log-probability for the temperature step (entropy estimate = -log_prob)."""
  action, log_prob = sample_action(actor_params, obs, key, mask, cfg)
  q = jnp.min(twin_q(critic_params, obs, action, cfg), axis=0)
  loss = jnp.mean(jnp.exp(jax.lax.stop_gradient(log_alpha)) * log_prob - q)
  mean_log_prob = jnp.mean(log_prob)
  return loss, {'actor_loss': loss, 'log_prob': mean_log_prob, 'entropy': -mean_log_prob}


def alpha_loss(log_alpha: jnp.ndarray, mean_log_prob: jnp.ndarray, target_entropy: jnp.ndarray) -> jnp.ndarray:
  """Eq. 18 of Haarnoja et al. (2018b): -alpha (E[log pi] + H_target), alpha = exp(log_alpha). Its gradient in
  log_alpha is alpha (entropy - H_target): alpha falls while the entropy is above the target and rises below."""
  return -jnp.exp(log_alpha) * (jax.lax.stop_gradient(mean_log_prob) + target_entropy)


def target_entropies(tasks: base.TaskInfo, cfg: SACConfig) -> jnp.ndarray:
  """H_k = target_entropy_per_dim x |A_k| per task [K]: -|A_k| by default (Haarnoja et al. 2018b's heuristic -dim(A),
  on the task's real action size)."""
  return cfg.target_entropy_per_dim * jnp.asarray(tasks.act_dims, jnp.float32)


# ---- one update over the K tasks ----

def _sum_over_tasks(loss_fn, num_param_args: int, weights=None):
  """Lifts a one-task loss `loss_fn(*params, *task_args) -> (loss, metrics)` to the sum over tasks (times weights
  [K] if given): the task arguments gain a leading [K] axis, the parameters are shared; metrics become [K]."""
  def lifted(*args):
    in_axes = (None,) * num_param_args + (0,) * (len(args) - num_param_args)
    losses, metrics = jax.vmap(loss_fn, in_axes=in_axes)(*args)
    return jnp.sum(losses if weights is None else losses * weights), metrics
  return lifted


def _step(state: SACState, batch: Transition, masks: jnp.ndarray, entropies: jnp.ndarray, active: jnp.ndarray,
          log_alpha: jnp.ndarray, key: jax.Array, cfg: SACConfig, joint: bool, task=None) -> Tuple[SACState, dict]:
  """Critic step, actor step (on the updated critics), temperature step, target update (Algorithm 1's order).

  One task (joint=False, its index `task`): batch [B, ...], masks [A], entropies [], log_alpha []. All tasks summed
  (joint=True): batch [K, B, ...], masks [K, A], entropies [K], log_alpha [K]. `active` [K] marks the temperatures
  to update. A `ScaledSACState` weighs the critic and actor losses by its tasks' value scales (ktm/value_norm.py).
  """
  target_key, actor_key = jax.random.split(key)
  target_fn = lambda a, c, la, b, m, k: td_target(a, c, la, b, m, k, cfg)
  if joint:
    target_fn = jax.vmap(target_fn, in_axes=(None, None, 0, 0, 0, 0))
    target_key, actor_key = (jax.random.split(k, masks.shape[0]) for k in (target_key, actor_key))
  target = target_fn(state.actor_params, state.target_critic_params, log_alpha, batch, masks, target_key)
  critic_weight = actor_weight = None
  weight_metrics = {}
  if isinstance(state, ScaledSACState):          # value_norm 'scale': one task (its index) or all K at once
    state, critic_weight, actor_weight, weight_metrics = value_norm.fold_in(state, None if joint else task, target)
  if joint:
    lift = lambda fn, n, weight: _sum_over_tasks(fn, n, weight)
  else:
    lift = lambda fn, n, weight: fn if weight is None else td3.weighted(fn, weight)
  critic_params, critic_opt_state, critic_metrics = td3.gradient_step(
      lift(lambda c, y, b: critic_loss(c, y, b, cfg), 1, critic_weight), state.critic_params,
      state.critic_opt_state, _optimizer(cfg, cfg.critic_lr), target, batch)
  actor_params, actor_opt_state, actor_metrics = td3.gradient_step(
      lift(lambda a, c, la, o, m, k: actor_loss(a, c, la, o, m, k, cfg), 2, actor_weight), state.actor_params,
      state.actor_opt_state, _optimizer(cfg, cfg.actor_lr), critic_params, log_alpha, batch.obs, masks, actor_key)
  # Temperature: K independent Adam steps (one per task's log alpha); only the active tasks' entries change, so a
  # sequential epoch's step k leaves the other tasks' temperatures and Adam moments untouched.
  alpha_grad = jax.grad(lambda la: jnp.sum(alpha_loss(la, actor_metrics['log_prob'], entropies)))(log_alpha)
  alpha_grads = jnp.where(active, alpha_grad, 0.0)                                      # [K]
  updates, new_alpha_opt = jax.vmap(alpha_optimizer(cfg).update)(alpha_grads, state.alpha_opt_state)
  new_log_alpha = state.log_alpha + updates
  keep = lambda new, old: jnp.where(active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old)
  state = state.replace(
      actor_params=actor_params, critic_params=critic_params, actor_opt_state=actor_opt_state,
      critic_opt_state=critic_opt_state, log_alpha=keep(new_log_alpha, state.log_alpha),
      alpha_opt_state=jax.tree.map(keep, new_alpha_opt, state.alpha_opt_state),
      target_critic_params=td3.soft_update(state.target_critic_params, critic_params, cfg.tau))
  metrics = {**critic_metrics, **actor_metrics, 'alpha': jnp.exp(log_alpha), **weight_metrics}
  del metrics['log_prob']
  return state, metrics


def update(state: SACState, batch: Transition, tasks: base.TaskInfo, cfg: SACConfig) -> Tuple[SACState, dict]:
  """One epoch's update from one minibatch per task (fields [K, B, ...], actions already masked by g^k).

  Metrics per task [K]: critic_loss, q1, actor_loss, entropy (-mean log pi of the actor step's sample), alpha
  (the temperature the task's losses used)."""
  masks = jnp.asarray(tasks.action_masks)
  entropies = target_entropies(tasks, cfg)
  num_tasks = tasks.num_tasks
  key, update_key = jax.random.split(state.key)
  state = state.replace(key=key)
  if cfg.combine == 'joint':
    state, metrics = _step(state, batch, masks, entropies, jnp.ones(num_tasks, bool), state.log_alpha, update_key,
                           cfg, joint=True)
  else:
    def task_step(s, xs):
      task, task_batch, mask, entropy = xs
      active = jnp.arange(num_tasks) == task
      return _step(s, task_batch, mask, entropy, active, s.log_alpha[task],
                   jax.random.fold_in(update_key, task), cfg, joint=False, task=task)
    state, metrics = jax.lax.scan(task_step, state, (jnp.arange(num_tasks), batch, masks, entropies))
  return state.replace(step=state.step + 1), metrics


def act(state: SACState, obs: jnp.ndarray, key: jax.Array, explore: bool, tasks: base.TaskInfo,
        cfg: SACConfig) -> jnp.ndarray:
  """obs [K, E, obs_size] -> actions [K, E, act_size] in [-1, 1], padded entries 0: a sample of the policy when
  exploring, tanh(mean) otherwise."""
  masks = jnp.asarray(tasks.action_masks)[:, None, :]
  if explore:
    return sample_action(state.actor_params, obs, key, masks, cfg)[0]
  return deterministic_action(state.actor_params, obs, masks, cfg)


@dataclasses.dataclass(frozen=True)
class SACMethod(base.Method):
  """SAC-MT on the shared loop: one `SACState` for all K tasks."""
  cfg: SACConfig = SACConfig()
  schedule: base.OffPolicySchedule = base.OffPolicySchedule()

  name = 'sac_mt'



  def init(self, key: jax.Array) -> SACState:
    state = init(key, self.tasks, self.cfg)
    if self.cfg.value_norm == 'none':
      return state
    return value_norm.with_stats(state, self.tasks.num_tasks, ScaledSACState)

  def act(self, learner: SACState, obs, key, explore: bool):
    return act(learner, obs, key, explore, self.tasks, self.cfg)

  def update(self, learner, batch, aux, stage, epoch, update_index):
    del aux, stage, epoch, update_index
    return update(learner, batch, self.tasks, self.cfg)
