"""K independent TD3 learners trained on a K-task suite in one compiled program (teachers; the "Ideal" baseline).

Learner k acts only in task k. All learners work on the suite's padded sizes with their task's action mask (g^k),
so one `vmap` covers tasks of different obs/act sizes: zero-padded inputs get zero gradients, and a masked learner
computes the same function as one of the task's raw size (`ktm.teachers.raw_actor_params` gives that view).

One `train_chunk` call: collect `chunk_steps` env steps with the current policies, insert them into the donated
replay buffer, then run `chunk_steps * updates_per_step` updates reading the buffer (no whole-buffer copy).
"""

import dataclasses
import functools
from typing import Tuple

import flax
import jax
import jax.numpy as jnp

from ktm import replay, rollout, td3
from ktm.envs import EnvState, Suite


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Loop settings; defaults follow TD3 (Fujimoto et al.) and the paper."""
  steps: int = 1_000_000          # env steps per env of each task
  start_steps: int = 25_000       # uniform-random actions (and no updates) before this many steps
  num_envs: int = 1               # parallel envs per task; one step collects num_envs transitions per task
  updates_per_step: int = 1       # TD3 updates per env step (per learner)
  chunk_steps: int = 1            # env steps per compiled call (policy fixed within); 1 = TD3 exactly
  replay_capacity: int = 1_000_000  # transitions per task sub-buffer
  eval_every: int = 5_000         # env steps between evaluations
  eval_episodes: int = 10         # deterministic episodes per task, run in parallel
  seed: int = 0

  def __post_init__(self):
    for name in ('steps', 'num_envs', 'updates_per_step', 'chunk_steps', 'replay_capacity', 'eval_every',
                 'eval_episodes'):
      if getattr(self, name) < 1:
        raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
    if self.start_steps < 0:
      raise ValueError(f'start_steps must be >= 0, got {self.start_steps}')


@flax.struct.dataclass
class TrainState:
  learners: td3.TD3State       # [K]
  buffer: replay.ReplayBuffer  # [K, capacity]
  env: EnvState                # [K, E]
  key: jax.Array
  env_steps: jnp.ndarray       # int32 [], env steps per env taken so far


def init(key: jax.Array, suite: Suite, cfg: td3.TD3Config, train_cfg: TrainConfig) -> TrainState:
  """Fresh learners (learner k's key folds in k), an empty buffer, and reset envs."""
  learner_key, env_key, key = jax.random.split(key, 3)
  return TrainState(
      learners=td3.init_many(learner_key, suite.num_tasks, cfg),
      buffer=replay.init(suite.num_tasks, train_cfg.replay_capacity, suite.obs_size, suite.act_size),
      env=suite.reset(env_key),
      key=key,
      env_steps=jnp.zeros((), jnp.int32))


def exploration_policy(cfg: td3.TD3Config, masks: jnp.ndarray) -> rollout.PolicyFn:
  """K actors, actor k on task k, with N(0, exploration_noise): params [K], obs [K, E, O] -> [K, E, A]."""
  def policy_fn(actor_params, obs, key):
    keys = jax.random.split(key, obs.shape[0])
    return jax.vmap(lambda p, o, k, m: td3.exploration_action(p, o, k, cfg, m))(actor_params, obs, keys, masks)
  return policy_fn


def greedy_policy(cfg: td3.TD3Config, masks: jnp.ndarray) -> rollout.PolicyFn:
  """K deterministic actors: params [K], obs [K, E, O] -> [K, E, A]."""
  return lambda actor_params, obs, key: jax.vmap(lambda p, o, m: td3.policy(p, o, cfg, m))(actor_params, obs, masks)


def learn(learners: td3.TD3State, buffer: replay.ReplayBuffer, key: jax.Array, cfg: td3.TD3Config,
          masks: jnp.ndarray, num_updates: int) -> Tuple[td3.TD3State, dict]:
  """`num_updates` vmapped TD3 updates, each on a fresh minibatch per task; metrics averaged over updates [K]."""
  def body(learners, update_key):
    batch = replay.sample(buffer, update_key, cfg.batch_size)
    return td3.update_many(learners, batch, cfg, masks)

  learners, metrics = jax.lax.scan(body, learners, jax.random.split(key, num_updates))
  return learners, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)


@functools.partial(jax.jit, static_argnames=('suite', 'cfg', 'train_cfg', 'update'), donate_argnums=0)
def train_chunk(state: TrainState, suite: Suite, cfg: td3.TD3Config, train_cfg: TrainConfig,
                update: bool) -> Tuple[TrainState, dict]:
  """One chunk: collect `chunk_steps` env steps, insert, then (if `update`) the chunk's TD3 updates."""
  masks = jnp.asarray(suite.action_masks)
  key, collect_key, learn_key = jax.random.split(state.key, 3)
  env, rows, stats = rollout.collect(exploration_policy(cfg, masks), state.learners.actor_params, state.env,
                                     collect_key, state.env_steps, suite, train_cfg.chunk_steps,
                                     train_cfg.start_steps)
  buffer = replay.insert(state.buffer, rows)
  learners, metrics = state.learners, {}
  if update:
    learners, metrics = learn(learners, buffer, learn_key, cfg, masks,
                              train_cfg.chunk_steps * train_cfg.updates_per_step)
  metrics['train_return'] = stats.mean()
  new_state = TrainState(learners=learners, buffer=buffer, env=env, key=key,
                         env_steps=state.env_steps + train_cfg.chunk_steps)
  return new_state, metrics


@functools.partial(jax.jit, static_argnames=('eval_suite', 'cfg'))
def evaluate(actor_params, key: jax.Array, eval_suite: Suite, cfg: td3.TD3Config) -> jnp.ndarray:
  """Deterministic returns [K, eval_suite.num_envs] of the K learners, one episode per env."""
  return rollout.evaluate(greedy_policy(cfg, jnp.asarray(eval_suite.action_masks)), actor_params, key, eval_suite)
