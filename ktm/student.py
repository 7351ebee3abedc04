"""The KTM-DRL multi-task student (Algorithm 1) as compiled programs over all K tasks.

Offline stage: every epoch, one minibatch from EACH teacher buffer D_k; critics regress teacher k's twin Q (Eq. 1)
and the actor ascends teacher k's Q1 (Eq. 2). Then a hard sync of the target networks. Online stage: every epoch,
each task takes one env step with the student's noisy action into its own sub-buffer D'_k, then one minibatch per
task; critics by TD3's target (Eq. 3-4), and every `policy_delay` epochs the actor by Eq. 5 and soft target updates.

`combine='sequential'` takes K optimizer steps per epoch in task order (a `lax.scan` over tasks, as the paper's loop);
`combine='joint'` takes one optimizer step on the K tasks' summed losses. `replay='flat'` (the "w/o HER" ablation)
trains on one task's samples for a whole episode, then switches to the next task.
"""

import dataclasses
import functools
from typing import Tuple

import flax
import jax
import jax.numpy as jnp

from ktm import replay, rollout, td3, transfer
from ktm.envs import EnvState, Suite

OFFLINE, ONLINE, DONE = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class KTMConfig:
  """Algorithm 1's settings; defaults are the paper's (500K offline + 500K online epochs, alpha = beta = 1)."""
  offline_epochs: int = 500_000
  online_epochs: int = 500_000
  alpha: float = 1.0                   # weight of the teacher term of Eq. 5 (0: "Online w/o Teacher")
  beta: float = 1.0                    # weight of the student's own Q1 term (0: "Online only Teacher")
  combine: str = 'sequential'          # 'sequential' (K optimizer steps per epoch) or 'joint' (one, summed losses)
  replay: str = 'hierarchical'         # 'hierarchical' (a minibatch per task per epoch) or 'flat' ("w/o HER")
  chunk_steps: int = 1                 # online epochs per compiled call (policy fixed within); 1 = Algorithm 1
  offline_chunk: int = 500             # offline epochs per compiled call (no env interaction: exact)
  online_capacity: int = 1_000_000     # transitions per task in D'_k
  switch_every: int = 1000             # epochs per task in the flat ("w/o HER") schedule: one episode
  eval_every: int = 5_000              # epochs between evaluations (both stages)
  eval_episodes: int = 10
  checkpoint_every: int = 50_000       # epochs between checkpoints (both stages)
  seed: int = 0

  def __post_init__(self):
    if self.combine not in ('sequential', 'joint'):
      raise ValueError(f"combine must be 'sequential' or 'joint', got {self.combine!r}")
    if self.replay not in ('hierarchical', 'flat'):
      raise ValueError(f"replay must be 'hierarchical' or 'flat', got {self.replay!r}")
    if self.offline_epochs < 0 or self.online_epochs < 0:
      raise ValueError('offline_epochs and online_epochs must be >= 0')
    for name in ('chunk_steps', 'offline_chunk', 'online_capacity', 'switch_every', 'eval_every', 'eval_episodes',
                 'checkpoint_every'):
      if getattr(self, name) < 1:
        raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')


@flax.struct.dataclass
class KTMState:
  student: td3.TD3State          # one learner for all tasks; `step` counts epochs
  online_buffer: replay.ReplayBuffer   # D'_k, [K, online_capacity]
  env: EnvState                  # [K, E]
  key: jax.Array
  stage: jnp.ndarray             # int32: OFFLINE, ONLINE or DONE
  epoch: jnp.ndarray             # int32: epochs done in the current stage


def init(key: jax.Array, suite: Suite, cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> KTMState:
  student_key, env_key, key = jax.random.split(key, 3)
  stage = OFFLINE if ktm_cfg.offline_epochs else (ONLINE if ktm_cfg.online_epochs else DONE)
  return KTMState(student=td3.init(student_key, cfg),
                  online_buffer=replay.init(suite.num_tasks, ktm_cfg.online_capacity, suite.obs_size, suite.act_size),
                  env=suite.reset(env_key), key=key, stage=jnp.asarray(stage, jnp.int32),
                  epoch=jnp.zeros((), jnp.int32))


# ---- one task's updates (Algorithm 1's loop body) ----

def offline_task_update(student: td3.TD3State, teacher_critic, batch, mask, cfg: td3.TD3Config,
                        teacher_cfg: td3.TD3Config) -> Tuple[td3.TD3State, dict]:
  """Lines 5-6: a critic step on Eq. 1, then an actor step on Eq. 2, on task k's batch [B, ...]."""
  critic_params, critic_opt, metrics = td3.gradient_step(
      transfer.offline_critic_loss, student.critic_params, student.critic_opt_state, td3.critic_optimizer(cfg),
      teacher_critic, batch, cfg, teacher_cfg, mask)
  actor_params, actor_opt, actor_metrics = td3.gradient_step(
      transfer.offline_actor_loss, student.actor_params, student.actor_opt_state, td3.actor_optimizer(cfg),
      teacher_critic, batch.obs, cfg, teacher_cfg, mask)
  student = student.replace(critic_params=critic_params, critic_opt_state=critic_opt, actor_params=actor_params,
                            actor_opt_state=actor_opt)
  return student, {**metrics, **actor_metrics}


def eq5_actor_loss(teacher_critic, teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> td3.ActorLossFn:
  """Eq. 5 with teacher k bound, in the signature `td3.update` takes for its actor loss."""
  return lambda actor_params, critic_params, obs, cfg, mask: transfer.online_actor_loss(
      actor_params, critic_params, teacher_critic, obs, cfg, teacher_cfg, ktm_cfg.alpha, ktm_cfg.beta, mask)


def online_task_update(student: td3.TD3State, teacher_critic, batch, mask, policy_step, cfg: td3.TD3Config,
                       teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> Tuple[td3.TD3State, dict]:
  """Lines 16-20: TD3's update (critic on Eq. 3-4 with targets masked by g^k; every `policy_delay` epochs the
  actor and the soft target updates) with Eq. 5 as the actor loss. `student.step` is left to the epoch loop."""
  new, metrics = td3.update(student, batch, cfg, mask, policy_step, eq5_actor_loss(teacher_critic, teacher_cfg,
                                                                                   ktm_cfg))
  return new.replace(step=student.step), metrics


# ---- one epoch over all K tasks ----

def active_task(epoch: jnp.ndarray, num_tasks: int, ktm_cfg: KTMConfig) -> jnp.ndarray:
  """The flat ("w/o HER") schedule: task trained at `epoch`, switching every `switch_every` epochs."""
  return (epoch // ktm_cfg.switch_every) % num_tasks


def _pick(tree, k):
  return jax.tree.map(lambda x: x[k], tree)


def _summed(loss_fn, params, *per_task_args):
  """Sum over tasks of loss_fn(params, *task_args) -> (loss, metrics [K]); task args have a leading K axis."""
  losses, metrics = jax.vmap(loss_fn, in_axes=(None,) + (0,) * len(per_task_args))(params, *per_task_args)
  return jnp.sum(losses), metrics


def offline_epoch(student: td3.TD3State, teacher_critics, batches, masks, epoch, cfg: td3.TD3Config,
                  teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> Tuple[td3.TD3State, dict]:
  """Lines 3-7 for all tasks: teacher_critics [K], batches [K, B, ...], masks [K, act_size]; metrics [K] or []."""
  update = functools.partial(offline_task_update, cfg=cfg, teacher_cfg=teacher_cfg)
  if ktm_cfg.replay == 'flat':
    k = active_task(epoch, masks.shape[0], ktm_cfg)
    return update(student, _pick(teacher_critics, k), _pick(batches, k), masks[k])
  if ktm_cfg.combine == 'sequential':
    return jax.lax.scan(lambda s, xs: update(s, *xs), student, (teacher_critics, batches, masks))
  critic_loss = lambda p, t, b, m: transfer.offline_critic_loss(p, t, b, cfg, teacher_cfg, m)
  critic_params, critic_opt, metrics = td3.gradient_step(
      functools.partial(_summed, critic_loss), student.critic_params, student.critic_opt_state,
      td3.critic_optimizer(cfg), teacher_critics, batches, masks)
  actor_loss = lambda p, t, o, m: transfer.offline_actor_loss(p, t, o, cfg, teacher_cfg, m)
  actor_params, actor_opt, actor_metrics = td3.gradient_step(
      functools.partial(_summed, actor_loss), student.actor_params, student.actor_opt_state,
      td3.actor_optimizer(cfg), teacher_critics, batches.obs, masks)
  student = student.replace(critic_params=critic_params, critic_opt_state=critic_opt, actor_params=actor_params,
                            actor_opt_state=actor_opt)
  return student, {**metrics, **actor_metrics}


def _joint_online_update(student, teacher_critics, batches, masks, policy_step, cfg, teacher_cfg, ktm_cfg):
  """One optimizer step on the K tasks' summed Eq. 3-4 losses; if `policy_step`, one on the summed Eq. 5 losses
  and one soft target update."""
  key, noise_key = jax.random.split(student.key)
  keys = jax.random.split(noise_key, masks.shape[0])
  student = student.replace(key=key)
  critic_loss = lambda p, b, k, m: transfer.online_critic_loss(
      p, student.target_actor_params, student.target_critic_params, b, k, cfg, m)
  critic_params, critic_opt, metrics = td3.gradient_step(
      functools.partial(_summed, critic_loss), student.critic_params, student.critic_opt_state,
      td3.critic_optimizer(cfg), batches, keys, masks)
  student = student.replace(critic_params=critic_params, critic_opt_state=critic_opt)
  actor_loss = lambda p, t, o, m: transfer.online_actor_loss(p, student.critic_params, t, o, cfg, teacher_cfg,
                                                             ktm_cfg.alpha, ktm_cfg.beta, m)

  def actor_and_targets(s):
    actor_params, actor_opt, actor_metrics = td3.gradient_step(
        functools.partial(_summed, actor_loss), s.actor_params, s.actor_opt_state, td3.actor_optimizer(cfg),
        teacher_critics, batches.obs, masks)
    return td3.soft_update_targets(s.replace(actor_params=actor_params, actor_opt_state=actor_opt), cfg), actor_metrics

  zeros = jnp.zeros(masks.shape[:1])
  student, actor_metrics = jax.lax.cond(
      policy_step, actor_and_targets,
      lambda s: (s, {'actor_loss': zeros, 'teacher_q1_term': zeros, 'own_q1_term': zeros}), student)
  return student, {**metrics, **actor_metrics}


def online_epoch(student: td3.TD3State, teacher_critics, batches, masks, epoch, cfg: td3.TD3Config,
                 teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> Tuple[td3.TD3State, dict]:
  """Lines 15-20 for all tasks (after the env steps): teacher_critics [K], batches [K, B, ...], masks [K, A].
  The actor and targets update when `td3.is_policy_step(epoch)`, i.e. every `policy_delay` epochs."""
  policy_step = td3.is_policy_step(epoch, cfg)
  update = functools.partial(online_task_update, policy_step=policy_step, cfg=cfg, teacher_cfg=teacher_cfg,
                             ktm_cfg=ktm_cfg)
  if ktm_cfg.replay == 'flat':
    k = active_task(epoch, masks.shape[0], ktm_cfg)
    return update(student, _pick(teacher_critics, k), _pick(batches, k), masks[k])
  if ktm_cfg.combine == 'sequential':
    return jax.lax.scan(lambda s, xs: update(s, *xs), student, (teacher_critics, batches, masks))
  return _joint_online_update(student, teacher_critics, batches, masks, policy_step, cfg, teacher_cfg, ktm_cfg)


# ---- compiled chunks of epochs ----

def student_exploration(cfg: td3.TD3Config, masks: jnp.ndarray) -> rollout.PolicyFn:
  """The one student actor in all K tasks: obs [K, E, O] -> g^k(π(ŝ) + N(0, exploration_noise)) [K, E, A]."""
  return lambda actor_params, obs, key: td3.exploration_action(actor_params, obs, key, cfg) * masks[:, None, :]


def student_greedy(cfg: td3.TD3Config, masks: jnp.ndarray) -> rollout.PolicyFn:
  return lambda actor_params, obs, key: td3.policy(actor_params, obs, cfg) * masks[:, None, :]


def _mean_metrics(metrics):
  return jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)


@functools.partial(jax.jit, static_argnames=('cfg', 'teacher_cfg', 'ktm_cfg', 'num_epochs'), donate_argnums=0)
def offline_chunk(state: KTMState, teacher_critics, teacher_buffer: replay.ReplayBuffer, masks: jnp.ndarray,
                  cfg: td3.TD3Config, teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig,
                  num_epochs: int) -> Tuple[KTMState, dict]:
  """`num_epochs` offline epochs, each sampling one minibatch from every teacher buffer D_k."""
  def body(carry, key):
    student, epoch = carry
    batches = replay.sample(teacher_buffer, key, cfg.batch_size)
    student, metrics = offline_epoch(student, teacher_critics, batches, masks, epoch, cfg, teacher_cfg, ktm_cfg)
    return (student.replace(step=student.step + 1), epoch + 1), metrics

  key, chunk_key = jax.random.split(state.key)
  (student, epoch), metrics = jax.lax.scan(body, (state.student, state.epoch), jax.random.split(chunk_key, num_epochs))
  return state.replace(student=student, epoch=epoch, key=key), _mean_metrics(metrics)


@functools.partial(jax.jit, static_argnames=('suite', 'cfg', 'teacher_cfg', 'ktm_cfg', 'num_epochs'),
                   donate_argnums=0)
def online_chunk(state: KTMState, teacher_critics, suite: Suite, cfg: td3.TD3Config, teacher_cfg: td3.TD3Config,
                 ktm_cfg: KTMConfig, num_epochs: int) -> Tuple[KTMState, dict]:
  """`num_epochs` online epochs: first all their env steps (policy fixed), inserted into the donated D'_k, then
  their updates, which read the buffer without copying it. `num_epochs=1` is Algorithm 1 exactly."""
  masks = jnp.asarray(suite.action_masks)
  key, collect_key, learn_key = jax.random.split(state.key, 3)
  env, rows, stats = rollout.collect(student_exploration(cfg, masks), state.student.actor_params, state.env,
                                     collect_key, jnp.zeros((), jnp.int32), suite, num_epochs)
  buffer = replay.insert(state.online_buffer, rows)

  def body(carry, sample_key):
    student, epoch = carry
    batches = replay.sample(buffer, sample_key, cfg.batch_size)
    student, metrics = online_epoch(student, teacher_critics, batches, masks, epoch, cfg, teacher_cfg, ktm_cfg)
    return (student.replace(step=student.step + 1), epoch + 1), metrics

  (student, epoch), metrics = jax.lax.scan(body, (state.student, state.epoch), jax.random.split(learn_key, num_epochs))
  metrics = _mean_metrics(metrics)
  metrics['train_return'] = stats.mean()
  return KTMState(student=student, online_buffer=buffer, env=env, key=key, stage=state.stage, epoch=epoch), metrics


@functools.partial(jax.jit, static_argnames=('eval_suite', 'cfg'))
def evaluate(actor_params, key: jax.Array, eval_suite: Suite, cfg: td3.TD3Config) -> jnp.ndarray:
  """The student's deterministic returns [K, E], one episode per env of `eval_suite`."""
  return rollout.evaluate(student_greedy(cfg, jnp.asarray(eval_suite.action_masks)), actor_params, key, eval_suite)


def sync_targets(state: KTMState) -> KTMState:
  """Line 9: hard copy of the online networks into the targets (fresh buffers, so the state stays donatable)."""
  student = state.student
  return state.replace(student=student.replace(target_actor_params=jax.tree.map(jnp.copy, student.actor_params),
                                               target_critic_params=jax.tree.map(jnp.copy, student.critic_params)))
