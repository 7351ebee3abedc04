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
                        teacher_cfg: td3.TD3Config, critic_loss_fn=transfer.offline_critic_loss,
                        actor_loss_fn=transfer.offline_actor_loss) -> Tuple[td3.TD3State, dict]:
  """Lines 5-6: a critic step on Eq. 1, then an actor step on Eq. 2, on task k's batch [B, ...]. (The joint
  mode passes its summed losses, with all K teachers, batches [K, B, ...] and masks.)"""
  critic_params, critic_opt, metrics = td3.gradient_step(
      critic_loss_fn, student.critic_params, student.critic_opt_state, td3.critic_optimizer(cfg),
      teacher_critic, batch, cfg, teacher_cfg, mask)
  actor_params, actor_opt, actor_metrics = td3.gradient_step(
      actor_loss_fn, student.actor_params, student.actor_opt_state, td3.actor_optimizer(cfg),
      teacher_critic, batch.obs, cfg, teacher_cfg, mask)
  student = student.replace(critic_params=critic_params, critic_opt_state=critic_opt, actor_params=actor_params,
                            actor_opt_state=actor_opt)
  return student, {**metrics, **actor_metrics}


def eq5_actor_loss(teacher_critic, teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> td3.ActorLossFn:
  """Eq. 5 with teacher k bound, in the signature `td3.update` takes for its actor loss."""
  return lambda actor_params, critic_params, obs, cfg, mask: transfer.online_actor_loss(
      actor_params, critic_params, teacher_critic, obs, cfg, teacher_cfg, ktm_cfg.alpha, ktm_cfg.beta, mask)


def online_task_update(student: td3.TD3State, teacher_critic, batch, mask, policy_step, cfg: td3.TD3Config,
                       teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig,
                       actor_loss_builder=eq5_actor_loss) -> Tuple[td3.TD3State, dict]:
  """Lines 16-20: TD3's update (critic on Eq. 3-4 with targets masked by g^k; every `policy_delay` epochs the
  actor and the soft target updates) with Eq. 5 as the actor loss. `student.step` is left to the epoch loop.
  With batch [K, B, ...], masks [K, 1, A] and `joint_eq5_actor_loss`, this is the joint mode's update."""
  new, metrics = td3.update(student, batch, cfg, mask, policy_step,
                            actor_loss_builder(teacher_critic, teacher_cfg, ktm_cfg))
  return new.replace(step=student.step), metrics


# ---- joint mode: the student's networks run once on all K x B rows (one big matmul); the teachers are vmapped ----

def _teacher_q1_means(teacher_critics, obs, action, masks, teacher_cfg) -> jnp.ndarray:
  """mean_i Q1^k(s_i, f^k(â_i)) per task: obs [K, B, O], action [K, B, A], masks [K, A] or [K, 1, A] -> [K]."""
  return jax.vmap(lambda t, o, a, m: transfer.teacher_q1_mean(t, o, a, teacher_cfg, m.reshape(-1)))(
      teacher_critics, obs, action, masks)


def joint_offline_critic_loss(critic_params, teacher_critics, batches, cfg: td3.TD3Config,
                              teacher_cfg: td3.TD3Config, masks) -> Tuple[jnp.ndarray, dict]:
  """Eq. 1 summed over the K tasks (batches [K, B, ...]); metrics per task [K]."""
  teacher_q = jax.vmap(lambda t, b, m: td3.twin_q(t, *transfer.teacher_inputs(b.obs, b.action, teacher_cfg, m),
                                                  teacher_cfg), out_axes=1)(teacher_critics, batches, masks)
  q = td3.twin_q(critic_params, batches.obs, batches.action, cfg)          # [2, K, B]
  per_task = jnp.sum(jnp.mean(jnp.square(jax.lax.stop_gradient(teacher_q) - q), axis=-1), axis=0)
  return jnp.sum(per_task), {'critic_loss': per_task}


def joint_offline_actor_loss(actor_params, teacher_critics, obs, cfg: td3.TD3Config, teacher_cfg: td3.TD3Config,
                             masks) -> Tuple[jnp.ndarray, dict]:
  """Minus Eq. 2's objective summed over the K tasks (obs [K, B, O])."""
  per_task = -_teacher_q1_means(teacher_critics, obs, td3.policy(actor_params, obs, cfg), masks, teacher_cfg)
  return jnp.sum(per_task), {'actor_loss': per_task}


def joint_eq5_actor_loss(teacher_critics, teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> td3.ActorLossFn:
  """Eq. 5 summed over the K tasks, in `td3.update`'s actor-loss signature (obs [K, B, O], masks [K, 1, A])."""
  def loss_fn(actor_params, critic_params, obs, cfg, masks):
    action = td3.policy(actor_params, obs, cfg)
    zeros = jnp.zeros(obs.shape[:1])
    teacher = _teacher_q1_means(teacher_critics, obs, action, masks, teacher_cfg) if ktm_cfg.alpha else zeros
    own = jnp.mean(td3.q1(critic_params, obs, action * masks, cfg), axis=-1) if ktm_cfg.beta else zeros
    per_task = -(ktm_cfg.alpha * teacher + ktm_cfg.beta * own)
    return jnp.sum(per_task), {'actor_loss': per_task, 'teacher_q1_term': teacher, 'own_q1_term': own}
  return loss_fn


# ---- one epoch over all K tasks ----

def active_task(epoch: jnp.ndarray, num_tasks: int, ktm_cfg: KTMConfig) -> jnp.ndarray:
  """The flat ("w/o HER") schedule: task trained at `epoch`, switching every `switch_every` epochs."""
  return (epoch // ktm_cfg.switch_every) % num_tasks


def _pick(tree, k):
  return jax.tree.map(lambda x: x[k], tree)


def offline_epoch(student: td3.TD3State, teacher_critics, batches, masks, epoch, cfg: td3.TD3Config,
                  teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> Tuple[td3.TD3State, dict]:
  """Lines 3-7 for all tasks: teacher_critics [K], batches [K, B, ...], masks [K, act_size]; metrics [K] or []."""
  update = functools.partial(offline_task_update, cfg=cfg, teacher_cfg=teacher_cfg)
  if ktm_cfg.replay == 'flat':
    k = active_task(epoch, masks.shape[0], ktm_cfg)
    return update(student, _pick(teacher_critics, k), _pick(batches, k), masks[k])
  if ktm_cfg.combine == 'sequential':
    return jax.lax.scan(lambda s, xs: update(s, *xs), student, (teacher_critics, batches, masks))
  return update(student, teacher_critics, batches, masks, critic_loss_fn=joint_offline_critic_loss,
                actor_loss_fn=joint_offline_actor_loss)


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
  return update(student, teacher_critics, batches, masks[:, None, :], actor_loss_builder=joint_eq5_actor_loss)


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
