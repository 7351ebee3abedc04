"""A2C-MT: multi-task advantage actor-critic with policy distillation from task-specific teachers.

KTM-DRL compares with Arora et al. 2018 ("Multi-task learning for continuous control", arXiv:1802.01034), described
in its Sec. 2 as A2C (Mnih et al. 2016) extended with policy distillation (Rusu et al. 2016) toward task-specific
teachers. That paper's exact losses were not available here (only its abstract and third-party summaries), so this
is our formulation, written for ONE task and lifted over the K tasks with `jax.vmap`, the K losses summed into one
Adam step:

  loss_k = policy_loss + value_coef * value_loss - entropy_coef * entropy + distill_coef * distill_loss
  policy_loss  = -mean_t log pi(a_t | s_t) * A_t          (A_t = R_t - V(s_t), no gradient through A_t)
  value_loss   = mean_t (R_t - V(s_t))^2
  entropy      = sum over task k's real action dims of the Gaussian's entropy
  distill_loss = mean_t sum_d g^k_d (mu_d(s_t) - a^T_d(s_t))^2   (a^T = teacher k's deterministic TD3 action)

on the student's own rollouts (on-policy distillation, as in policy distillation's online variant). R_t is the
n-step return within the rollout: R_t = r_t + gamma (1 - terminated_t) * (V(s'_t) if the episode ended at t or t is
the rollout's last step, else R_{t+1}), with s'_t the true next observation before auto-reset, so a time-limit
truncation bootstraps from V(s'_t), a termination does not, and nothing crosses an episode boundary.

Policy: a Gaussian with mean mu(s) = tanh(MLP(s)) (the project's Actor, so the mean lives in the teachers' action
range) and a STATE-INDEPENDENT log-std vector (as in OpenAI baselines' A2C for continuous actions); padded action
dims (g^k = 0) are masked out of log-probabilities, entropy and distillation. Sampled actions are clipped to [-1, 1]
for the env; log-probabilities use the unclipped sample. One network for mu, one for V (no shared trunk).
"""

import dataclasses
from typing import Any, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ktm import networks, td3
from ktm.methods import base
from ktm.rollout import EpisodeStats
from ktm.sweep import static_zero

Params = Any
LOG_2PI = float(np.log(2.0 * np.pi))


@dataclasses.dataclass(frozen=True)
class A2CConfig:
  """A2C-MT hyper-parameters (Adam 3e-4, gamma 0.99 and 400-400 as the other methods; n-step 5, value coefficient
  0.5 and gradient clipping 0.5 are A2C's usual values; entropy 1e-4 is A3C's continuous-control value)."""
  obs_size: int
  act_size: int
  hidden_sizes: Tuple[int, ...] = (400, 400)
  learning_rate: float = 3e-4
  gamma: float = 0.99
  n_steps: int = 5                  # env steps of every env per update (the n of the n-step returns)
  value_coef: float = 0.5
  entropy_coef: float = 1e-4
  distill_coef: float = 1.0
  log_std_init: float = 0.0
  max_grad_norm: Optional[float] = 0.5

  def __post_init__(self):
    object.__setattr__(self, 'hidden_sizes', tuple(int(h) for h in self.hidden_sizes))
    if self.obs_size < 1 or self.act_size < 1:
      raise ValueError(f'obs_size and act_size must be >= 1, got {self.obs_size}, {self.act_size}')
    if self.n_steps < 1:
      raise ValueError(f'n_steps must be >= 1, got {self.n_steps}')
    if not 0.0 <= self.gamma <= 1.0:
      raise ValueError(f'gamma must be in [0, 1], got {self.gamma}')
    if self.learning_rate <= 0:
      raise ValueError(f'learning_rate must be > 0, got {self.learning_rate}')
    for name in ('value_coef', 'entropy_coef', 'distill_coef'):
      if getattr(self, name) < 0:
        raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
    if self.max_grad_norm is not None and self.max_grad_norm <= 0:
      raise ValueError(f'max_grad_norm must be > 0 or None, got {self.max_grad_norm}')


@dataclasses.dataclass(frozen=True)
class A2CSchedule:
  """One on-policy 'train' stage. An epoch = `n_steps` steps of all K x E envs, then one update; the default
  200,000 epochs are 1M env steps per env at n_steps = 5 (the paper's 1M decision epochs)."""
  epochs: int = 200_000
  chunk: int = 100                 # epochs per compiled call

  def __post_init__(self):
    if self.epochs < 1 or self.chunk < 1:
      raise ValueError(f'epochs and chunk must be >= 1, got {self.epochs}, {self.chunk}')

  def stages(self) -> Tuple[base.Stage, ...]:
    return (base.Stage('train', self.epochs, self.chunk, kind='onpolicy'),)


@flax.struct.dataclass
class A2CState:
  """params: {'actor': mean network, 'log_std': [act_size], 'value': V network}; one optimizer over all of them."""
  params: Params
  opt_state: optax.OptState
  step: jnp.ndarray   # int32 [], updates done


@flax.struct.dataclass
class Rollout:
  """n_steps of every env of one task ([T, E, ...]) or of all tasks ([K, T, E, ...]).

  action: the unclipped Gaussian sample (padded entries 0); next_obs: true next observation before auto-reset.
  """
  obs: jnp.ndarray
  action: jnp.ndarray
  reward: jnp.ndarray
  terminated: jnp.ndarray
  done: jnp.ndarray
  next_obs: jnp.ndarray


def actor_network(cfg: A2CConfig) -> networks.Actor:
  return networks.Actor(cfg.hidden_sizes, cfg.act_size)


def value_network(cfg: A2CConfig) -> networks.MLP:
  return networks.MLP(cfg.hidden_sizes, 1)


def optimizer(cfg: A2CConfig) -> optax.GradientTransformation:
  return td3.optimizer(cfg.learning_rate, cfg.max_grad_norm)


@networks.compiled_init(static_argnames=('cfg',))
def init(key: jax.Array, cfg: A2CConfig) -> A2CState:
  actor_key, value_key = jax.random.split(key)
  obs = jnp.zeros((1, cfg.obs_size))
  params = {'actor': actor_network(cfg).init(actor_key, obs)['params'],
            'log_std': jnp.full((cfg.act_size,), cfg.log_std_init, jnp.float32),
            'value': value_network(cfg).init(value_key, obs)['params']}
  return A2CState(params=params, opt_state=optimizer(cfg).init(params), step=jnp.zeros((), jnp.int32))


def mean_action(params: Params, obs: jnp.ndarray, cfg: A2CConfig) -> jnp.ndarray:
  """The Gaussian's mean mu(s) in [-1, 1]: [..., act_size]."""
  return actor_network(cfg).apply({'params': params['actor']}, obs)


def value(params: Params, obs: jnp.ndarray, cfg: A2CConfig) -> jnp.ndarray:
  """V(s): [...]."""
  return value_network(cfg).apply({'params': params['value']}, obs)[..., 0]


# ---- distributions, returns and losses for ONE task ----

def gaussian_log_prob(action: jnp.ndarray, mean: jnp.ndarray, log_std: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """log N(action; mean, exp(log_std)^2) summed over the real dims (mask [act_size] = g^k): [...]."""
  z = (action - mean) * jnp.exp(-log_std)
  per_dim = -0.5 * jnp.square(z) - log_std - 0.5 * LOG_2PI
  return jnp.sum(per_dim * mask, axis=-1)


def gaussian_entropy(log_std: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """Entropy of the diagonal Gaussian over the real dims: sum_d mask_d (1/2 log(2 pi e) + log_std_d), []."""
  return jnp.sum((0.5 + 0.5 * LOG_2PI + log_std) * mask, axis=-1)


def distill_loss(mean: jnp.ndarray, teacher_action: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """mean over samples of sum_d mask_d (mu_d - a^T_d)^2: mean [..., act_size] vs the teacher's action."""
  return jnp.mean(jnp.sum(jnp.square(mean - teacher_action) * mask, axis=-1))


def nstep_returns(reward: jnp.ndarray, terminated: jnp.ndarray, done: jnp.ndarray, next_value: jnp.ndarray,
                  gamma: float) -> jnp.ndarray:
  """n-step returns over a rollout, time on axis 0 ([T, ...] each; terminated/done as 0/1 or bool).

  R_t = r_t + gamma (1 - terminated_t) * (next_value_t if done_t or t = T-1 else R_{t+1}); next_value_t = V(s'_t)
  of the true next observation (before auto-reset): truncation bootstraps, termination does not.
  """
  cut = jnp.asarray(done, bool).at[-1].set(True)
  alive = 1.0 - jnp.asarray(terminated, jnp.float32)

  def body(later, x):
    r, a, c, v = x
    ret = r + gamma * a * jnp.where(c, v, later)
    return ret, ret

  _, returns = jax.lax.scan(body, jnp.zeros_like(reward[0]), (reward, alive, cut, next_value), reverse=True)
  return returns


def task_loss(params: Params, rollout: Rollout, returns: jnp.ndarray, teacher_action: Optional[jnp.ndarray],
              mask: jnp.ndarray, cfg: A2CConfig) -> Tuple[jnp.ndarray, dict]:
  """Task k's A2C-MT loss on its rollout ([T, E, ...]), n-step returns [T, E], the teacher's actions at the
  rollout's observations [T, E, act_size] (None: no teacher, no distillation term) and its mask g^k [act_size]."""
  mean = mean_action(params, rollout.obs, cfg)
  v = value(params, rollout.obs, cfg)
  advantage = jax.lax.stop_gradient(returns - v)
  log_prob = gaussian_log_prob(rollout.action, mean, params['log_std'], mask)
  policy_loss = -jnp.mean(log_prob * advantage)
  value_loss = jnp.mean(jnp.square(returns - v))
  entropy = gaussian_entropy(params['log_std'], mask)
  distill = jnp.zeros(()) if teacher_action is None else distill_loss(mean, teacher_action, mask)
  loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy + cfg.distill_coef * distill
  return loss, {'policy_loss': policy_loss, 'value_loss': value_loss, 'entropy': entropy, 'distill_loss': distill,
                'loss': loss}


# ---- acting, collecting and updating on the K tasks ----

def sample_action(params: Params, obs: jnp.ndarray, key: jax.Array, cfg: A2CConfig,
                  masks: jnp.ndarray) -> jnp.ndarray:
  """Unclipped Gaussian sample [K, E, act_size] (padded entries 0) for obs [K, E, obs_size], masks [K, 1, act]."""
  mean = mean_action(params, obs, cfg)
  noise = jax.random.normal(key, mean.shape)
  return (mean + jnp.exp(params['log_std']) * noise) * masks


def act(state: A2CState, obs: jnp.ndarray, key: jax.Array, explore: bool, cfg: A2CConfig,
        action_masks: jnp.ndarray) -> jnp.ndarray:
  """Env actions [K, E, act_size] in [-1, 1], padded entries 0: a clipped sample, or the mean when evaluating."""
  masks = action_masks[:, None, :]
  if explore:
    return jnp.clip(sample_action(state.params, obs, key, cfg, masks), -1.0, 1.0)
  return mean_action(state.params, obs, cfg) * masks


def collect(state: A2CState, env_state: Any, key: jax.Array, suite: Any, cfg: A2CConfig,
            action_masks: jnp.ndarray) -> Tuple[Any, Rollout, EpisodeStats]:
  """`n_steps` steps of all K x E envs with the current policy -> (env_state, Rollout [K, T, E, ...], stats)."""
  masks = action_masks[:, None, :]

  def body(env_state, step_key):
    action = sample_action(state.params, env_state.obs, step_key, cfg, masks)
    next_env_state, out = suite.step(env_state, jnp.clip(action, -1.0, 1.0))
    row = Rollout(obs=env_state.obs, action=action, reward=out.reward,
                  terminated=out.terminated.astype(jnp.float32), done=out.done.astype(jnp.float32),
                  next_obs=out.next_obs)
    return next_env_state, (row, out.episode_return, out.done)

  env_state, (rows, ep_return, done) = jax.lax.scan(body, env_state, jax.random.split(key, cfg.n_steps))
  rows = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows)        # [T, K, E, ...] -> [K, T, E, ...]
  stats = EpisodeStats(return_sum=jnp.sum(ep_return, axis=(0, 2)), count=jnp.sum(done, axis=(0, 2)))
  return env_state, rows, stats


def teacher_actions(teacher_actor_params: Params, obs: jnp.ndarray, teacher_cfg: td3.TD3Config,
                    action_masks: jnp.ndarray) -> jnp.ndarray:
  """Teacher k's deterministic action on task k's observations: params [K], obs [K, ..., obs_size] -> [K, ..., act]."""
  return jax.vmap(lambda p, o, m: td3.policy(p, o, teacher_cfg, m))(teacher_actor_params, obs, action_masks)


def update(state: A2CState, rollout: Rollout, teacher_actor_params: Params, cfg: A2CConfig,
           teacher_cfg: td3.TD3Config, action_masks: jnp.ndarray) -> Tuple[A2CState, dict]:
  """One A2C-MT step on a rollout [K, T, E, ...]: the K task losses (vmapped) summed, one optimizer step.
  `teacher_actor_params` [K] (None: plain multi-task A2C, only allowed with distill_coef = 0). Metrics per task [K].
  """
  if teacher_actor_params is None and not static_zero(cfg.distill_coef):
    raise ValueError('A2C-MT needs the teachers (aux) unless distill_coef = 0')
  next_value = value(state.params, rollout.next_obs, cfg)                                     # [K, T, E]
  returns = jax.vmap(lambda r, t, d, v: nstep_returns(r, t, d, v, cfg.gamma))(
      rollout.reward, rollout.terminated, rollout.done, next_value)
  teacher = None
  if teacher_actor_params is not None:
    teacher = jax.lax.stop_gradient(teacher_actions(teacher_actor_params, rollout.obs, teacher_cfg, action_masks))

  def total_loss(params):
    losses, metrics = jax.vmap(lambda r, ret, a, m: task_loss(params, r, ret, a, m, cfg))(
        rollout, returns, teacher, action_masks)
    return jnp.sum(losses), metrics

  grads, metrics = jax.grad(total_loss, has_aux=True)(state.params)
  updates, opt_state = optimizer(cfg).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return A2CState(params=params, opt_state=opt_state, step=state.step + 1), metrics


def onpolicy_chunk(state: A2CState, env_state: Any, key: jax.Array, suite: Any, teacher_actor_params: Params,
                   num_epochs: int, cfg: A2CConfig, teacher_cfg: td3.TD3Config,
                   action_masks: jnp.ndarray) -> Tuple[A2CState, Any, dict]:
  """`num_epochs` x (collect n_steps with the current policy, one update). Metrics: per task [K], averaged over
  the epochs; 'train_return' [K] is the mean return of the training episodes that ended (NaN where none did)."""

  def epoch(carry, epoch_key):
    state, env_state = carry
    env_state, rollout, stats = collect(state, env_state, epoch_key, suite, cfg, action_masks)
    state, metrics = update(state, rollout, teacher_actor_params, cfg, teacher_cfg, action_masks)
    return (state, env_state), (metrics, stats)

  (state, env_state), (metrics, stats) = jax.lax.scan(epoch, (state, env_state),
                                                      jax.random.split(key, num_epochs))
  metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)
  total = EpisodeStats(return_sum=jnp.sum(stats.return_sum, axis=0), count=jnp.sum(stats.count, axis=0))
  return state, env_state, {**metrics, 'train_return': total.mean()}


# ---- adapter ----

@dataclasses.dataclass(frozen=True)
class A2CMethod(base.Method):
  """A2C-MT on the shared loop: one on-policy stage; aux = the teachers' actor params [K] (padded sizes)."""
  cfg: A2CConfig
  teacher_cfg: td3.TD3Config
  schedule: A2CSchedule = A2CSchedule()

  name = 'a2c_mt'
  uses_teachers = True

  def __post_init__(self):
    sizes = (self.tasks.obs_size, self.tasks.act_size)
    for name in ('cfg', 'teacher_cfg'):
      cfg = getattr(self, name)
      if cfg is not None and (cfg.obs_size, cfg.act_size) != sizes:   # teacher_cfg is None until teachers load
        raise ValueError(f'{name} sizes ({cfg.obs_size}, {cfg.act_size}) must be the suite\'s padded sizes {sizes}')



  def init(self, key):
    return init(key, self.cfg)

  def act(self, learner, obs, key, explore):
    return act(learner, obs, key, explore, self.cfg, jnp.asarray(self.tasks.action_masks))

  def make_aux(self, teachers):
    return teachers.states.actor_params

  def update_rows(self, num_envs):
    return self.cfg.n_steps * num_envs

  def onpolicy_chunk(self, learner, env_state, key, suite, aux, num_epochs):
    return onpolicy_chunk(learner, env_state, key, suite, aux, num_epochs, self.cfg, self.teacher_cfg,
                          jnp.asarray(self.tasks.action_masks))
