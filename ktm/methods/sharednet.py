"""SharedNet (D'Eramo et al., ICLR 2020, "Sharing Knowledge in Multi-Task Deep RL") on TD3.

D'Eramo et al.'s multi-task actor-critic (their Sec. 4 and MuJoCo experiments) gives every task its own input layer
and its own output head around hidden layers shared by all tasks, for the actor and for the critic, and trains all
of it with one optimizer step per iteration on a minibatch from every task. Here, with `hidden_sizes` (h_1, ..., h_L):

  actor   task k: s^k [obs_k] -> relu(task input layer -> h_1) -> shared layers h_2..h_L -> task head -> tanh [act_k]
  critic  task k: (s^k, a^k) [obs_k + act_k] -> relu(task input layer -> h_1) -> shared layers -> task head -> Q

twin critics (two such networks), on TD3 (Fujimoto et al. 2018: clipped double Q, target policy smoothing, the actor
and the targets updated every `policy_delay` = 2 critic steps, the actor loss on Q1 only). Their paper used DDPG;
KTM-DRL's comparison is among TD3-based learners (KTM, TD3-MT, G-Surgery "based on TD3"), so TD3 keeps the
comparison about the network sharing rather than about DDPG vs TD3. Each update sums the K tasks' losses and takes
one optimizer step (D'Eramo et al. average over all tasks' samples; with Adam the factor K changes nothing but eps).

Task-specific layers are stored stacked over tasks at the suite's padded sizes (`TaskDense`: kernel [K, in, out]),
but every task's kernel and bias are multiplied by a constant mask of its raw rows (real obs / action entries) and
columns (real outputs), so the padded entries have no effect and get exactly zero gradient: they stay 0 forever
and task k's layer IS a raw-size [in_k, out_k] layer (initialised with its raw fan-in). The stacked layout lets all
K tasks run as one batched matmul per layer; the shared layers run once on all K x B rows.
"""

import dataclasses
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ktm import networks, td3, validate, value_norm
from ktm.value_norm import MODES as VALUE_NORM_MODES
from ktm.methods import base
from ktm.replay import Transition

Params = Any


@dataclasses.dataclass(frozen=True)
class SharedNetConfig(td3.TD3Hyperparameters):
  """SharedNet-on-TD3 hyper-parameters: TD3's (the paper's defaults) and value scaling. `hidden_sizes[0]` is the
  width of the task-specific input layers, the rest are the shared layers (at least one); the networks' sizes come
  from the tasks."""
  value_norm: str = 'none'           # 'scale': every task's losses divided by the running scale of its own targets
                                     # (ktm/value_norm.py); 'none': as published

  RANGES = dict(td3.TD3Hyperparameters.RANGES, value_norm=validate.one_of(*VALUE_NORM_MODES))

  def __post_init__(self):
    super().__post_init__()
    if len(self.hidden_sizes) < 2:
      raise ValueError(f'SharedNetConfig.hidden_sizes = {",".join(map(str, self.hidden_sizes))} is not allowed: '
                       f'needs a task-specific input layer and at least one shared layer (2 or more sizes)')


# ---- networks ----

def prefix_masks(dims: Tuple[int, ...]) -> Tuple[Tuple[int, ...], ...]:
  """Per task, 1 on its first dims[k] of max(dims) entries: ((1, 1, 0), (1, 1, 1)) for dims (2, 3)."""
  return tuple(tuple(int(i < d) for i in range(max(dims))) for d in dims)


def _matmul(x: jnp.ndarray, w: jnp.ndarray, compute_dtype: str) -> jnp.ndarray:
  if compute_dtype == 'bfloat16':
    return networks.bf16_matmul(x, w)
  return jnp.matmul(x, w, preferred_element_type=jnp.float32)


class TaskDense(nn.Module):
  """K task-specific dense layers: x [K, N, in] -> [K, N, out], task k's layer on its own row of x.

  Parameters are stacked at padded sizes (kernel [K, in, out], bias [K, out]) and used through a constant mask:
  task k reads only the inputs where in_masks[k] = 1 and writes only its first out_dims[k] outputs; all other
  entries are zero at init, have no effect and get zero gradient. Task k's kernel is lecun-normal with its raw
  fan-in sum(in_masks[k]), as a raw-size layer would be."""
  in_masks: Tuple[Tuple[int, ...], ...]
  out_dims: Tuple[int, ...]
  compute_dtype: str = 'float32'

  def masks(self) -> Tuple[np.ndarray, np.ndarray]:
    """(kernel mask [K, in, out], bias mask [K, out]) as numpy constants."""
    rows = np.asarray(self.in_masks, np.float32)
    cols = np.asarray(prefix_masks(self.out_dims), np.float32)
    return rows[:, :, None] * cols[:, None, :], cols

  def _init_kernel(self, key, shape, dtype=jnp.float32):
    kernel_mask, _ = self.masks()
    fan_in = np.maximum(np.asarray(self.in_masks).sum(axis=1), 1).astype(np.float32)      # [K]
    # lecun_normal: truncated normal on [-2, 2] rescaled to unit variance, times 1 / sqrt(fan_in).
    std = (1.0 / np.sqrt(fan_in) / 0.87962566103423978)[:, None, None]
    return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * std * kernel_mask

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    num_tasks, in_size, out_size = len(self.out_dims), len(self.in_masks[0]), max(self.out_dims)
    if x.shape[0] != num_tasks or x.shape[-1] != in_size:
      raise ValueError(f'TaskDense expects x [{num_tasks}, N, {in_size}], got {x.shape}')
    kernel = self.param('kernel', self._init_kernel, (num_tasks, in_size, out_size))
    bias = self.param('bias', nn.initializers.zeros_init(), (num_tasks, out_size))
    kernel_mask, bias_mask = self.masks()
    y = jax.vmap(lambda xk, wk: _matmul(xk, wk, self.compute_dtype))(x, kernel * kernel_mask)
    return y + (bias * bias_mask)[:, None, :]


def _shared_layers(h: jnp.ndarray, hidden_sizes: Tuple[int, ...], compute_dtype: str) -> jnp.ndarray:
  """relu of the shared layers hidden_sizes[1:] on every task's rows at once: [K, N, h_1] -> [K, N, h_L]."""
  return nn.relu(networks.MLP(hidden_sizes[1:-1], hidden_sizes[-1], compute_dtype)(h))


class SharedActor(nn.Module):
  """obs [K, N, obs_size] (task k's rows zero-padded) -> tanh actions [K, N, act_size], entries past act_k zero."""
  obs_dims: Tuple[int, ...]
  act_dims: Tuple[int, ...]
  hidden_sizes: Tuple[int, ...]
  compute_dtype: str = 'float32'

  @nn.compact
  def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
    width = (self.hidden_sizes[0],) * len(self.obs_dims)
    h = nn.relu(TaskDense(prefix_masks(self.obs_dims), width, self.compute_dtype, name='input')(obs))
    h = _shared_layers(h, self.hidden_sizes, self.compute_dtype)
    head_in = prefix_masks((self.hidden_sizes[-1],) * len(self.act_dims))
    return jnp.tanh(TaskDense(head_in, self.act_dims, self.compute_dtype, name='head')(h))


class SharedCritic(nn.Module):
  """(obs [K, N, obs_size], action [K, N, act_size]) -> Q [K, N]; task k reads its real obs and action entries."""
  obs_dims: Tuple[int, ...]
  act_dims: Tuple[int, ...]
  hidden_sizes: Tuple[int, ...]
  compute_dtype: str = 'float32'

  @nn.compact
  def __call__(self, obs: jnp.ndarray, action: jnp.ndarray) -> jnp.ndarray:
    in_masks = tuple(o + a for o, a in zip(prefix_masks(self.obs_dims), prefix_masks(self.act_dims)))
    width = (self.hidden_sizes[0],) * len(self.obs_dims)
    h = nn.relu(TaskDense(in_masks, width, self.compute_dtype, name='input')(
        jnp.concatenate([obs, action], axis=-1)))
    h = _shared_layers(h, self.hidden_sizes, self.compute_dtype)
    head_in = prefix_masks((self.hidden_sizes[-1],) * len(self.obs_dims))
    return TaskDense(head_in, (1,) * len(self.obs_dims), self.compute_dtype, name='head')(h)[..., 0]


TwinSharedCritic = nn.vmap(SharedCritic, variable_axes={'params': 0}, split_rngs={'params': True},
                           in_axes=None, out_axes=0, axis_size=2)


def actor_network(tasks: base.TaskInfo, cfg: SharedNetConfig) -> SharedActor:
  return SharedActor(tasks.obs_dims, tasks.act_dims, cfg.hidden_sizes, cfg.compute_dtype)


def critic_network(tasks: base.TaskInfo, cfg: SharedNetConfig) -> SharedCritic:
  return SharedCritic(tasks.obs_dims, tasks.act_dims, cfg.hidden_sizes, cfg.compute_dtype)


def twin_critic_network(tasks: base.TaskInfo, cfg: SharedNetConfig):
  return TwinSharedCritic(tasks.obs_dims, tasks.act_dims, cfg.hidden_sizes, cfg.compute_dtype)


def _masks(tasks: base.TaskInfo) -> jnp.ndarray:
  """g^k for [K, N, act_size] arrays: [K, 1, act_size]."""
  return jnp.asarray(tasks.action_masks)[:, None, :]


def policy(actor_params: Params, obs: jnp.ndarray, tasks: base.TaskInfo, cfg: SharedNetConfig) -> jnp.ndarray:
  """g^k(pi_k(s)) [K, N, act_size] for obs [K, N, obs_size]."""
  return actor_network(tasks, cfg).apply({'params': actor_params}, obs) * _masks(tasks)


def twin_q(critic_params: Params, obs: jnp.ndarray, action: jnp.ndarray, tasks: base.TaskInfo,
           cfg: SharedNetConfig) -> jnp.ndarray:
  """[2, K, N]."""
  return twin_critic_network(tasks, cfg).apply({'params': critic_params}, obs, action)


def q1(critic_params: Params, obs: jnp.ndarray, action: jnp.ndarray, tasks: base.TaskInfo,
       cfg: SharedNetConfig) -> jnp.ndarray:
  """The first critic only: [K, N]."""
  return critic_network(tasks, cfg).apply({'params': networks.q1_params(critic_params)}, obs, action)


@networks.compiled_init(static_argnames=('tasks', 'cfg'))
def init(key: jax.Array, tasks: base.TaskInfo, cfg: SharedNetConfig) -> td3.TD3State:
  """Fresh learner (a `td3.TD3State` holding SharedNet's parameters); targets are copies, so the state donates."""
  key, actor_key, critic_key = jax.random.split(key, 3)
  obs = jnp.zeros((tasks.num_tasks, 1, tasks.obs_size))
  actor_params = actor_network(tasks, cfg).init(actor_key, obs)['params']
  critic_params = twin_critic_network(tasks, cfg).init(
      critic_key, obs, jnp.zeros((tasks.num_tasks, 1, tasks.act_size)))['params']
  return td3.TD3State(
      actor_params=actor_params,
      critic_params=critic_params,
      target_actor_params=jax.tree.map(jnp.copy, actor_params),
      target_critic_params=jax.tree.map(jnp.copy, critic_params),
      actor_opt_state=td3.actor_optimizer(cfg).init(actor_params),
      critic_opt_state=td3.critic_optimizer(cfg).init(critic_params),
      step=jnp.zeros((), jnp.int32),
      key=key,
  )


# ---- TD3's losses, per task [K] and summed ----

def td_target(target_actor_params: Params, target_critic_params: Params, batch: Transition, key: jax.Array,
              tasks: base.TaskInfo, cfg: SharedNetConfig) -> jnp.ndarray:
  """y_k = r + gamma (1 - terminated) min_j Q'_{j,k}(s', g^k(clip(pi'_k(s') + eps, -1, 1))): [K, B]."""
  next_action = policy(target_actor_params, batch.next_obs, tasks, cfg)
  noise = td3.smoothing_noise(key, next_action.shape, cfg)
  next_action = jnp.clip(next_action + noise, -1.0, 1.0) * _masks(tasks)
  next_q = jnp.min(twin_q(target_critic_params, batch.next_obs, next_action, tasks, cfg), axis=0)
  return batch.reward + cfg.gamma * (1.0 - batch.terminated) * next_q


def _total(per_task: jnp.ndarray, weights: Optional[jnp.ndarray]) -> jnp.ndarray:
  return jnp.sum(per_task) if weights is None else jnp.sum(per_task * weights)


def critic_loss(critic_params: Params, target: jnp.ndarray, batch: Transition, tasks: base.TaskInfo,
                cfg: SharedNetConfig, weights: Optional[jnp.ndarray] = None) -> Tuple[jnp.ndarray, dict]:
  """sum_k w_k [mean_i (y - Q_{1,k})^2 + mean_i (y - Q_{2,k})^2] with target [K, B] (w_k = 1 unless value
  scaling gives `weights` [K]); metrics per task [K], unweighted."""
  q = twin_q(critic_params, batch.obs, batch.action, tasks, cfg)         # [2, K, B]
  per_task = jnp.sum(jnp.mean(jnp.square(q - target[None]), axis=-1), axis=0)
  return _total(per_task, weights), {'critic_loss': per_task, 'q1': jnp.mean(q[0], axis=-1)}


def actor_loss(actor_params: Params, critic_params: Params, obs: jnp.ndarray, tasks: base.TaskInfo,
               cfg: SharedNetConfig, weights: Optional[jnp.ndarray] = None) -> Tuple[jnp.ndarray, dict]:
  """-sum_k w_k mean_i Q_{1,k}(s_i, g^k(pi_k(s_i))) (Q1 only, as TD3) over obs [K, B, obs_size]; metrics [K]."""
  per_task = -jnp.mean(q1(critic_params, obs, policy(actor_params, obs, tasks, cfg), tasks, cfg), axis=-1)
  return _total(per_task, weights), {'actor_loss': per_task}


def update(state: td3.TD3State, batch: Transition, tasks: base.TaskInfo, cfg: SharedNetConfig,
           policy_step: Optional[jnp.ndarray] = None) -> Tuple[td3.TD3State, dict]:
  """One TD3 update on the K tasks' minibatches (fields [K, B, ...]): a critic step on the summed critic losses,
  and every `policy_delay` updates an actor step on the summed actor losses and the soft target updates (one
  `lax.cond`, as `td3.update`; `policy_step` overrides the schedule). Metrics per task [K] (actor_loss is 0 on the updates without an actor step)."""
  key, noise_key = jax.random.split(state.key)
  target = td_target(state.target_actor_params, state.target_critic_params, batch, noise_key, tasks, cfg)
  critic_weights = actor_weights = None
  weight_metrics = {}
  if isinstance(state, value_norm.ScaledTD3State):        # value_norm 'scale' (the learner carries the statistics)
    state, critic_weights, actor_weights, weight_metrics = value_norm.fold_in(state, None, target)
  critic_params, critic_opt_state, metrics = td3.gradient_step(
      lambda c, y, b: critic_loss(c, y, b, tasks, cfg, critic_weights), state.critic_params, state.critic_opt_state,
      td3.critic_optimizer(cfg), target, batch)
  state = state.replace(critic_params=critic_params, critic_opt_state=critic_opt_state, key=key)
  actor_loss_fn = lambda a, c, obs, cfg_, mask: actor_loss(a, c, obs, tasks, cfg, actor_weights)
  delayed = lambda s: td3.update_actor_and_targets(s, cfg, batch.obs, None, actor_loss_fn)
  policy_step = td3.is_policy_step(state.step, cfg) if policy_step is None else policy_step
  state, actor_metrics = td3.update_if(policy_step, delayed, state)
  return state.replace(step=state.step + 1), {**metrics, **actor_metrics, **weight_metrics}


def act(state: td3.TD3State, obs: jnp.ndarray, key: jax.Array, explore: bool, tasks: base.TaskInfo,
        cfg: SharedNetConfig) -> jnp.ndarray:
  """obs [K, E, obs_size] -> [K, E, act_size]: g^k(clip(pi_k(s) + N(0, exploration_noise), -1, 1)) when exploring,
  g^k(pi_k(s)) otherwise."""
  action = policy(state.actor_params, obs, tasks, cfg)
  if explore:
    action = jnp.clip(action + cfg.exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)
  return action * _masks(tasks)


def raw_layer(params: Params, task: int, in_mask, out_dim: int) -> Tuple[np.ndarray, np.ndarray]:
  """Task `task`'s raw-size view of a `TaskDense` layer's params: (kernel [in_k, out_k], bias [out_k])."""
  rows = np.flatnonzero(np.asarray(in_mask))
  return np.asarray(params['kernel'])[task][rows, :out_dim], np.asarray(params['bias'])[task][:out_dim]


@dataclasses.dataclass(frozen=True)
class SharedNetMethod(base.Method):
  """SharedNet on TD3 on the shared loop: one `td3.TD3State` with task-specific input layers and heads."""
  cfg: SharedNetConfig = SharedNetConfig()
  schedule: base.OffPolicySchedule = base.OffPolicySchedule()

  name = 'sharednet'

  def init(self, key: jax.Array) -> td3.TD3State:
    state = init(key, self.tasks, self.cfg)
    return state if self.cfg.value_norm == 'none' else value_norm.with_stats(state, self.tasks.num_tasks)

  def act(self, learner: td3.TD3State, obs, key, explore: bool):
    return act(learner, obs, key, explore, self.tasks, self.cfg)

  def update(self, learner, batch, aux, stage, epoch, update_index):
    del aux, stage, epoch
    return update(learner, batch, self.tasks, self.cfg, td3.is_policy_step(update_index, self.cfg))
