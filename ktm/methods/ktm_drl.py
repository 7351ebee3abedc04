"""KTM-DRL (Xu et al., 2020, Algorithm 1): one student for all K tasks, taught by K task-specific TD3 teachers.

Offline stage: every epoch, one minibatch from EACH teacher buffer D_k; critics regress teacher k's twin Q (Eq. 1)
and the actor ascends teacher k's Q1 (Eq. 2). Then a hard sync of the target networks. Online stage: every epoch,
each task takes one env step with the student's noisy action into its own sub-buffer D'_k, then one minibatch per
task; critics by TD3's target (Eq. 3-4), and every `policy_delay` epochs the actor by Eq. 5 and soft target updates.

`combine='sequential'` takes K optimizer steps per epoch in task order (a `lax.scan` over tasks, as the paper's loop);
`combine='joint'` takes one optimizer step on the K tasks' summed losses. `replay='flat'` (the "w/o HER" ablation)
trains on one task's samples for a whole episode, then switches to the next task. TD3-MT is this method with no
offline stage and alpha = 0 (`td3_mt_config`): the teachers are then never used.
"""

import dataclasses
import functools
from typing import Any, Optional, Tuple

import jax
import jax.numpy as jnp

from ktm import td3, transfer, trust, validate, value_norm
from ktm.value_norm import MODES as VALUE_NORM_MODES
from ktm.sweep import static_zero
from ktm.methods import base

OFFLINE, ONLINE = 0, 1


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
  online_start_steps: int = 0          # uniform-random online epochs (no updates) before learning; the paper has
                                       # none, the authors' code none in effect (ktm/presets.py)
  updates_per_step: validate.UpdateRatio = 1   # online updates per epoch (1: Algorithm 1); a fraction p / q is p
                                               # updates every q epochs (0.25: one every 4)
  online_adam: str = 'carry'           # 'carry': the online stage goes on with the offline stage's Adam moments;
                                       # 'fresh': new ones (the authors' code steps separate online optimizers)
  trust_rule: str = 'none'             # per-sample weight of Eq. 5's teacher term (ktm/trust.py): 'none' (the
                                       # paper), 'qfilter', 'agreement' or 'both'
  trust_audit: Optional[float] = None  # use teacher k only if its critic ranks its own actor's action above a
                                       # random one on at least this fraction of D_k (ktm/trust.py); None: no audit
  corrupt_teachers: str = ''           # experiments: 'TASK=random' (a fresh TD3 in place of teacher k) or
                                       # 'TASK=adversarial' (its critics negated), comma-separated; the set on disk
                                       # is not touched
  value_norm: str = 'none'             # 'scale': every task's losses divided by the running scale of its own
                                       # targets (ktm/value_norm.py); 'none': the paper
  offline_patience: Optional[int] = None   # end the offline stage once its last N evaluations raised no task's
                                           # best return by more than 1% (ktm/plateau.py); its epochs left go to
                                           # the online stage. None: the paper's fixed offline_epochs

  RANGES = dict(offline_epochs=validate.NON_NEGATIVE_INT, online_epochs=validate.NON_NEGATIVE_INT,
                alpha=validate.NON_NEGATIVE, beta=validate.NON_NEGATIVE,
                combine=validate.one_of('sequential', 'joint'), replay=validate.one_of('hierarchical', 'flat'),
                chunk_steps=validate.AT_LEAST_1, offline_chunk=validate.AT_LEAST_1,
                online_capacity=validate.AT_LEAST_1, switch_every=validate.AT_LEAST_1,
                online_start_steps=validate.NON_NEGATIVE_INT, updates_per_step=validate.UPDATE_RATIO,
                online_adam=validate.one_of('carry', 'fresh'), trust_rule=validate.one_of(*trust.RULES),
                trust_audit=validate.optional(validate.UNIT_INTERVAL),
                value_norm=validate.one_of(*VALUE_NORM_MODES),
                offline_patience=validate.optional(validate.AT_LEAST_1))

  def __post_init__(self):
    validate.check(self, self.RANGES)
    object.__setattr__(self, 'updates_per_step', validate.integral(self.updates_per_step))
    if self.offline_epochs == self.online_epochs == 0:
      raise ValueError('KTMConfig.offline_epochs = online_epochs = 0 is not allowed: nothing would be trained '
                       '(at least one of them must be >= 1)')
    if self.trusting and (self.combine != 'sequential' or self.replay != 'hierarchical'):
      raise ValueError("trust_rule and trust_audit need combine='sequential' and replay='hierarchical'")
    if self.value_norm != 'none' and (self.combine != 'sequential' or self.replay != 'hierarchical'):
      raise ValueError("value_norm needs combine='sequential' and replay='hierarchical'")
    if self.offline_patience is not None and not (self.offline_epochs and self.online_epochs):
      raise ValueError('KTMConfig.offline_patience ends the offline stage early for the online stage: it needs '
                       f'offline_epochs >= 1 and online_epochs >= 1 (got {self.offline_epochs} and '
                       f'{self.online_epochs})')
    if self.trusting and not self.uses_teachers:
      raise ValueError('trust_rule and trust_audit weigh the teachers, which this run does not use '
                       '(offline_epochs = 0 and alpha = 0)')

  @property
  def uses_teachers(self) -> bool:
    return self.offline_epochs > 0 or self.alpha > 0

  @property
  def trusting(self) -> bool:
    """Whether teacher trust (ktm/trust.py) is on; off, the method is the paper's exactly."""
    return self.trust_rule != 'none' or self.trust_audit is not None


# ---- one task's updates (Algorithm 1's loop body) ----

def offline_task_update(student: td3.TD3State, teacher_critic, batch, mask, cfg: td3.TD3Config,
                        teacher_cfg: td3.TD3Config, critic_loss_fn=transfer.offline_critic_loss,
                        actor_loss_fn=transfer.offline_actor_loss, scale_task=None) -> Tuple[td3.TD3State, dict]:
  """Lines 5-6: a critic step on Eq. 1, then an actor step on Eq. 2, on task k's batch [B, ...]. (The joint
  mode passes its summed losses, with all K teachers, batches [K, B, ...] and masks.) With `scale_task` = k
  (value_norm 'scale'), teacher k's twin-Q values are folded into task k's statistics and weigh both losses."""
  weight_metrics = {}
  if scale_task is not None:
    teacher_q = td3.twin_q(teacher_critic, *transfer.teacher_inputs(batch.obs, batch.action, teacher_cfg, mask),
                           teacher_cfg)
    student, critic_weight, actor_weight, weight_metrics = value_norm.fold_in(student, scale_task, teacher_q)
    critic_loss_fn = td3.weighted(critic_loss_fn, critic_weight)
    actor_loss_fn = td3.weighted(actor_loss_fn, actor_weight)
  critic_params, critic_opt, metrics = td3.gradient_step(
      critic_loss_fn, student.critic_params, student.critic_opt_state, td3.critic_optimizer(cfg),
      teacher_critic, batch, cfg, teacher_cfg, mask)
  actor_params, actor_opt, actor_metrics = td3.gradient_step(
      actor_loss_fn, student.actor_params, student.actor_opt_state, td3.actor_optimizer(cfg),
      teacher_critic, batch.obs, cfg, teacher_cfg, mask)
  student = student.replace(critic_params=critic_params, critic_opt_state=critic_opt, actor_params=actor_params,
                            actor_opt_state=actor_opt)
  return student, {**metrics, **actor_metrics, **weight_metrics}


def eq5_actor_loss(teacher_critic, teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> td3.ActorLossFn:
  """Eq. 5 with teacher k bound, in the signature `td3.update` takes for its actor loss."""
  return lambda actor_params, critic_params, obs, cfg, mask: transfer.online_actor_loss(
      actor_params, critic_params, teacher_critic, obs, cfg, teacher_cfg, ktm_cfg.alpha, ktm_cfg.beta, mask)


def online_task_update(student: td3.TD3State, teacher_critic, batch, mask, policy_step, cfg: td3.TD3Config,
                       teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig, actor_loss_builder=eq5_actor_loss,
                       scale_task=None) -> Tuple[td3.TD3State, dict]:
  """Lines 16-20: TD3's update (critic on Eq. 3-4 with targets masked by g^k; every `policy_delay` epochs the
  actor and the soft target updates) with Eq. 5 as the actor loss. `student.step` is left to the epoch loop.
  With batch [K, B, ...], masks [K, 1, A] and `joint_eq5_actor_loss`, this is the joint mode's update. With
  `scale_task` = k (value_norm 'scale'), the TD targets are folded into task k's statistics and weigh the losses."""
  new, metrics = td3.update(student, batch, cfg, mask, policy_step,
                            actor_loss_builder(teacher_critic, teacher_cfg, ktm_cfg),
                            None if scale_task is None else value_norm.task_weights(scale_task))
  return new.replace(step=student.step), metrics


def trusted_eq5_actor_loss(teacher: trust.Teacher, teacher_cfg: td3.TD3Config,
                           ktm_cfg: KTMConfig) -> td3.ActorLossFn:
  """Eq. 5 with teacher k's term weighted per sample by `ktm_cfg.trust_rule` and its audit gate (ktm/trust.py)."""
  def loss_fn(actor_params, critic_params, obs, cfg, mask):
    loss, metrics = trust.trusted_actor_loss(actor_params, critic_params, teacher, obs, cfg, teacher_cfg,
                                             ktm_cfg.alpha, ktm_cfg.beta, ktm_cfg.trust_rule, mask)
    return loss, (dict(metrics, teacher_audit=teacher.audit) if ktm_cfg.trust_audit is not None else metrics)
  return loss_fn


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
    teacher = (_teacher_q1_means(teacher_critics, obs, action, masks, teacher_cfg)
               if not static_zero(ktm_cfg.alpha) else zeros)
    own = (jnp.mean(td3.q1(critic_params, obs, action * masks, cfg), axis=-1) if not static_zero(ktm_cfg.beta)
           else zeros)
    per_task = -(ktm_cfg.alpha * teacher + ktm_cfg.beta * own)
    return jnp.sum(per_task), {'actor_loss': per_task, 'teacher_q1_term': teacher, 'own_q1_term': own}
  return loss_fn


# ---- one epoch over all K tasks ----

def active_task(epoch: jnp.ndarray, num_tasks: int, ktm_cfg: KTMConfig) -> jnp.ndarray:
  """The flat ("w/o HER") schedule: task trained at `epoch`, switching every `switch_every` epochs."""
  return (epoch // ktm_cfg.switch_every) % num_tasks


def _pick(tree, k):
  return jax.tree.map(lambda x: x[k], tree)


def gated_offline_task_update(student: td3.TD3State, teacher: trust.Teacher, batch, mask, cfg: td3.TD3Config,
                              teacher_cfg: td3.TD3Config, scale_task=None) -> Tuple[td3.TD3State, dict]:
  """`offline_task_update` from teacher k only if it passed its audit (gate_k = 1); else the student unchanged
  (no optimizer step, so Adam's moments do not move it either) and zero loss metrics."""
  run = lambda s: offline_task_update(s, teacher.critic, batch, mask, cfg, teacher_cfg, scale_task=scale_task)
  student, metrics = td3.update_if(teacher.gate > 0, run, student)
  return student, {**metrics, 'teacher_trust': teacher.gate, 'actor_updates': jnp.ones(()),
                   'teacher_audit': teacher.audit}


def over_tasks(update, student: td3.TD3State, teacher_critics, batches, masks, ktm_cfg: KTMConfig):
  """Algorithm 1's loop over the K tasks in order (a `lax.scan`): `update(student, teacher_k, batch_k, mask_k)`,
  given also `scale_task=k` with value_norm on. Returns the student and the metrics [K]."""
  if ktm_cfg.value_norm == 'none':
    return jax.lax.scan(lambda s, xs: update(s, *xs), student, (teacher_critics, batches, masks))
  tasks = jnp.arange(masks.shape[0])
  return jax.lax.scan(lambda s, xs: update(s, *xs[:3], scale_task=xs[3]), student,
                      (teacher_critics, batches, masks, tasks))


def offline_epoch(student: td3.TD3State, teacher_critics, batches, masks, epoch, cfg: td3.TD3Config,
                  teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> Tuple[td3.TD3State, dict]:
  """Lines 3-7 for all tasks: teacher_critics [K], batches [K, B, ...], masks [K, act_size]; metrics [K] or [].
  With teacher trust on, teacher_critics is a `trust.Teacher` [K]; with an audit, untrusted teachers are skipped
  (without one, every teacher is used and this stage is the paper's)."""
  if ktm_cfg.trust_audit is not None:
    update = functools.partial(gated_offline_task_update, cfg=cfg, teacher_cfg=teacher_cfg)
    return over_tasks(update, student, teacher_critics, batches, masks, ktm_cfg)
  if ktm_cfg.trusting:
    teacher_critics = teacher_critics.critic
  update = functools.partial(offline_task_update, cfg=cfg, teacher_cfg=teacher_cfg)
  if ktm_cfg.replay == 'flat':
    k = active_task(epoch, masks.shape[0], ktm_cfg)
    return update(student, _pick(teacher_critics, k), _pick(batches, k), masks[k])
  if ktm_cfg.combine == 'sequential':
    return over_tasks(update, student, teacher_critics, batches, masks, ktm_cfg)
  return update(student, teacher_critics, batches, masks, critic_loss_fn=joint_offline_critic_loss,
                actor_loss_fn=joint_offline_actor_loss)


def online_epoch(student: td3.TD3State, teacher_critics, batches, masks, epoch, cfg: td3.TD3Config,
                 teacher_cfg: td3.TD3Config, ktm_cfg: KTMConfig,
                 policy_step: Optional[jnp.ndarray] = None) -> Tuple[td3.TD3State, dict]:
  """Lines 15-20 for all tasks (after the env steps): teacher_critics [K], batches [K, B, ...], masks [K, A].
  The actor and targets update when `policy_step`, by default `td3.is_policy_step(epoch)`, i.e. every
  `policy_delay` epochs. With teacher trust on, teacher_critics is a `trust.Teacher` [K] and Eq. 5 is
  `trusted_eq5_actor_loss`."""
  if policy_step is None:
    policy_step = td3.is_policy_step(epoch, cfg)
  update = functools.partial(online_task_update, policy_step=policy_step, cfg=cfg, teacher_cfg=teacher_cfg,
                             ktm_cfg=ktm_cfg,
                             actor_loss_builder=trusted_eq5_actor_loss if ktm_cfg.trusting else eq5_actor_loss)
  if ktm_cfg.replay == 'flat':
    k = active_task(epoch, masks.shape[0], ktm_cfg)
    return update(student, _pick(teacher_critics, k), _pick(batches, k), masks[k])
  if ktm_cfg.combine == 'sequential':
    return over_tasks(update, student, teacher_critics, batches, masks, ktm_cfg)
  return update(student, teacher_critics, batches, masks[:, None, :], actor_loss_builder=joint_eq5_actor_loss)


# ---- the method on the shared loop ----

def student_exploration(actor_params, obs, key, cfg: td3.TD3Config, masks: jnp.ndarray) -> jnp.ndarray:
  """The one student actor in all K tasks: obs [K, E, O] -> g^k(clip(π(ŝ) + N(0, exploration_noise))) [K, E, A]."""
  return td3.exploration_action(actor_params, obs, key, cfg) * masks[:, None, :]


def student_greedy(actor_params, obs, cfg: td3.TD3Config, masks: jnp.ndarray) -> jnp.ndarray:
  """g^k(π(ŝ)) [K, E, A] for obs [K, E, O]."""
  return td3.policy(actor_params, obs, cfg) * masks[:, None, :]


def sync_targets(student: td3.TD3State) -> td3.TD3State:
  """Line 9: hard copy of the online networks into the targets (fresh buffers, so the state stays donatable)."""
  return student.replace(target_actor_params=jax.tree.map(jnp.copy, student.actor_params),
                         target_critic_params=jax.tree.map(jnp.copy, student.critic_params))


def begin_online(student: td3.TD3State, cfg: td3.TD3Config, ktm_cfg: KTMConfig) -> td3.TD3State:
  """Line 9's target sync, and with `online_adam='fresh'` new Adam states (moments and step count) for both nets."""
  student = sync_targets(student)
  if ktm_cfg.online_adam == 'fresh':
    student = student.replace(actor_opt_state=td3.actor_optimizer(cfg).init(student.actor_params),
                              critic_opt_state=td3.critic_optimizer(cfg).init(student.critic_params))
  return student


@dataclasses.dataclass(frozen=True)
class KTMMethod(base.Method):
  """The student (`td3.TD3State`, its `step` counting epochs over both stages). aux: (teacher critics [K], D_k
  replay [K, n]) with the teachers' own config `teacher_cfg`; both None when the teachers are not used."""
  cfg: td3.TD3Config
  ktm: KTMConfig
  teacher_cfg: Any = None

  name = 'ktm'
  # Read by the online stage's epochs only (Eq. 1-2 and the offline loop read none of them): Table 3's "Online w/o
  # Teacher" and "Online only Teacher" can start from KTM-DRL's offline end (`run_ktm.py --init_from`). Not
  # online_adam: `begin_stage(ONLINE)` reads it, and it runs before the boundary checkpoint is saved.
  later_stage_fields = ('ktm.online_epochs', 'ktm.alpha', 'ktm.beta', 'ktm.chunk_steps', 'ktm.online_start_steps',
                        'ktm.updates_per_step', 'ktm.trust_rule',
                        'cfg.exploration_noise', 'cfg.target_noise', 'cfg.target_noise_clip', 'cfg.tau',
                        'cfg.gamma', 'cfg.policy_delay')

  @property
  def uses_teachers(self) -> bool:
    return self.ktm.uses_teachers

  def stages(self) -> Tuple[base.Stage, ...]:
    return (base.Stage('offline', self.ktm.offline_epochs, self.ktm.offline_chunk, collect=False,
                       patience=self.ktm.offline_patience),
            base.Stage('online', self.ktm.online_epochs, self.ktm.chunk_steps,
                       random_epochs=self.ktm.online_start_steps, updates_per_epoch=self.ktm.updates_per_step))

  @property
  def replay_capacity(self) -> int:
    return self.ktm.online_capacity

  def __post_init__(self):
    trust.parse_corruptions(self.ktm.corrupt_teachers, self.tasks.task_names)   # a bad spec fails before training

  def make_aux(self, teachers):
    """(teacher critics [K], D_k); with teacher trust on, (`trust.Teacher` [K], D_k). Corrupted teachers (the
    `corrupt_teachers` experiments) are corrupted here, in memory."""
    if not self.uses_teachers:
      return (None, None)
    states = teachers.states
    modes = trust.parse_corruptions(self.ktm.corrupt_teachers, self.tasks.task_names)
    if any(modes):
      states = trust.corrupt(states, modes, teachers.cfg)
    if not self.ktm.trusting:
      return (states.critic_params, teachers.buffer)
    num_tasks = self.tasks.num_tasks
    if self.ktm.trust_audit is None:
      audit, gate = jnp.ones(num_tasks), jnp.ones(num_tasks)
    else:
      audit = jax.jit(trust.audit_teachers, static_argnums=(4, 5))(
          states.actor_params, states.critic_params, teachers.buffer.data.obs, teachers.buffer.size, teachers.cfg,
          self.tasks.act_dims)
      gate = (audit >= self.ktm.trust_audit).astype(jnp.float32)
      print('teacher audit (fraction of D_k where the critic ranks its actor above a random action; used if >= '
            f'{self.ktm.trust_audit:g}): ' + ', '.join(f'{n} {float(a):.2f}' + ('' if g else ' NOT USED')
                                                    for n, a, g in zip(self.tasks.task_names, audit, gate)))
    return (trust.Teacher(states.critic_params, states.actor_params, gate, audit), teachers.buffer)

  def init(self, key: jax.Array) -> td3.TD3State:
    student = td3.init(key, self.cfg)
    return student if self.ktm.value_norm == 'none' else value_norm.with_stats(student, self.tasks.num_tasks)

  def act(self, learner: td3.TD3State, obs, key, explore: bool):
    masks = jnp.asarray(self.tasks.action_masks)
    if explore:
      return student_exploration(learner.actor_params, obs, key, self.cfg, masks)
    return student_greedy(learner.actor_params, obs, self.cfg, masks)

  def sample_source(self, stage, buffer, aux):
    return aux[1] if stage == OFFLINE else buffer

  def begin_stage(self, learner, stage):
    return begin_online(learner, self.cfg, self.ktm) if stage == ONLINE else learner

  def update(self, learner, batch, aux, stage, epoch, update_index):
    masks = jnp.asarray(self.tasks.action_masks)
    teacher_critics = None if aux is None else aux[0]
    if stage == OFFLINE:
      learner, metrics = offline_epoch(learner, teacher_critics, batch, masks, epoch, self.cfg, self.teacher_cfg,
                                       self.ktm)
    else:
      # Algorithm 1 (line 18) counts the policy delay in epochs, one update each; at any other ratio, in updates
      delay_count = epoch if self.ktm.updates_per_step == 1 else update_index
      learner, metrics = online_epoch(learner, teacher_critics, batch, masks, epoch, self.cfg, self.teacher_cfg,
                                      self.ktm, td3.is_policy_step(delay_count, self.cfg))
    return learner.replace(step=learner.step + 1), metrics


@dataclasses.dataclass(frozen=True)
class TD3MTMethod(KTMMethod):
  """TD3-MT: one TD3 agent on all K tasks from scratch with the hierarchical replay and g^k, which is exactly
  KTM-DRL with no offline stage and alpha = 0 (no teacher term): K sequential TD3 steps per epoch."""
  name = 'td3_mt'

  def __post_init__(self):
    super().__post_init__()
    if self.ktm.offline_epochs or self.ktm.alpha:
      raise ValueError(f'TD3-MT is KTM-DRL with offline_epochs = 0 and alpha = 0; got offline_epochs = '
                       f'{self.ktm.offline_epochs}, alpha = {self.ktm.alpha}')
