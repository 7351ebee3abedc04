"""Teacher trust (issue 24): how much of teacher k the student takes, per task and per sample.

The paper's KTM-DRL takes every teacher's critic everywhere: Eq. 1-2 offline, Eq. 5's teacher term online. These pure
functions let it take only what helps. For ONE task k (the K tasks are a `lax.scan` in ktm/methods/ktm_drl.py):

  audit      c_k = mean_i 1[Q1^k(s_i, π_k(s_i)) > Q1^k(s_i, u_i)],  s_i from D_k, u_i ~ U[-1, 1]^{act_dim_k}
             "does the teacher's critic rank its own actor's action above a random one?" A trained TD3 teacher's
             actor ascends its critic (c ~ 1); a negated critic ranks it below (c ~ 0); an untrained teacher is a
             coin (c ~ 0.5). Teacher k is used (offline and online) only when c_k >= the threshold: gate_k in {0, 1}.
             Blind spot: a teacher whose actor and critic are wrong TOGETHER passes (the audit checks consistency,
             not truth); the online rules below check the teacher against the student's own experience.
  qfilter    w_i = 1[Q1(ŝ_i, g^k(π_k(s_i))) > Q1(ŝ_i, g^k(π(ŝ_i)))]
             the Q-filter (Nair et al. 2018): sample i's teacher term counts only where the student's OWN critic values
             the teacher's action above the student's.
  agreement  w_i = 1[<∇_a Q1^k(s_i, f^k(a)), ∇_a Q1(ŝ_i, a)> > 0] at a = g^k(π(ŝ_i))
             the teacher term counts only where both critics push the student's action the same way (a negated or
             random teacher critic disagrees with a learned student critic).
  both       the product of the two.

The online actor loss with weights w_i (`trusted_actor_loss`) is Eq. 5 with its teacher term reweighted:
  -(alpha * mean_i gate_k w_i Q1^k(s_i, f^k(π(ŝ_i))) + beta * mean_i Q1(ŝ_i, g^k(π(ŝ_i)))),
so all-ones weights give exactly Eq. 5 and all-zeros exactly TD3's actor loss (TD3-MT), bit for bit.
"""

from typing import NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp

from ktm import padding, td3, transfer

Params = td3.Params
RULES = ('none', 'qfilter', 'agreement', 'both')
CORRUPTIONS = ('random', 'adversarial')
AUDIT_SAMPLES = 4096      # rows of D_k the audit reads (evenly spaced over the filled rows)


class Teacher(NamedTuple):
  """What the trusted updates read of teacher k: critic and actor params, its audit score c_k and gate_k (0 or 1;
  both 1 without an audit). Stacked [K] in the method's aux."""
  critic: Params
  actor: Params
  gate: jnp.ndarray
  audit: jnp.ndarray


def teacher_action(teacher_actor: Params, obs: jnp.ndarray, cfg: td3.TD3Config, teacher_cfg: td3.TD3Config,
                   action_mask: jnp.ndarray) -> jnp.ndarray:
  """g^k(π_k(s)) at the student's padded action size: obs [B, cfg.obs_size] -> [B, cfg.act_size]."""
  action = td3.policy(teacher_actor, obs[..., :teacher_cfg.obs_size], teacher_cfg)
  return padding.mask_action(padding.pad(action, cfg.act_size), action_mask)


def qfilter_weights(critic_params: Params, obs: jnp.ndarray, student_action: jnp.ndarray,
                    teacher_act: jnp.ndarray, cfg: td3.TD3Config) -> jnp.ndarray:
  """w_i = 1[Q1(ŝ_i, teacher_act_i) > Q1(ŝ_i, student_action_i)], both actions masked, [B] float32."""
  return (td3.q1(critic_params, obs, teacher_act, cfg) > td3.q1(critic_params, obs, student_action, cfg)
          ).astype(jnp.float32)


def agreement_weights(critic_params: Params, teacher_critic: Params, obs: jnp.ndarray, action: jnp.ndarray,
                      cfg: td3.TD3Config, teacher_cfg: td3.TD3Config, action_mask: jnp.ndarray) -> jnp.ndarray:
  """w_i = 1[<∇_a Q1^k(s_i, f^k(a_i)), ∇_a Q1(ŝ_i, a_i)> > 0] for masked actions a [B, act_size], [B] float32.
  Sample i's Q depends on row i alone, so the gradient of the batch sum holds the per-sample gradients."""
  own = jax.grad(lambda a: jnp.sum(td3.q1(critic_params, obs, a, cfg)))(action)
  teacher = jax.grad(lambda a: jnp.sum(td3.q1(teacher_critic, *transfer.teacher_inputs(obs, a, teacher_cfg,
                                                                                       action_mask), teacher_cfg)))(action)
  return (jnp.sum(own * teacher, axis=-1) > 0).astype(jnp.float32)


def sample_weights(rule: str, critic_params: Params, teacher: Teacher, obs: jnp.ndarray, action: jnp.ndarray,
                   cfg: td3.TD3Config, teacher_cfg: td3.TD3Config, action_mask: jnp.ndarray) -> jnp.ndarray:
  """gate_k * w_i of `rule` for the student's masked actions a [B, act_size]; no gradient flows through it."""
  critic_params, action = jax.lax.stop_gradient((critic_params, action))
  w = jnp.ones(action.shape[:-1], jnp.float32)
  if rule in ('qfilter', 'both'):
    w = w * qfilter_weights(critic_params, obs, action,
                            teacher_action(teacher.actor, obs, cfg, teacher_cfg, action_mask), cfg)
  if rule in ('agreement', 'both'):
    w = w * agreement_weights(critic_params, teacher.critic, obs, action, cfg, teacher_cfg, action_mask)
  return jax.lax.stop_gradient(teacher.gate * w)


def weighted_actor_loss(actor_params: Params, critic_params: Params, teacher_critic: Params, weights: jnp.ndarray,
                        obs: jnp.ndarray, cfg: td3.TD3Config, teacher_cfg: td3.TD3Config, alpha: float, beta: float,
                        action_mask: jnp.ndarray) -> Tuple[jnp.ndarray, dict]:
  """Eq. 5 with per-sample teacher weights w [B]: -(alpha * mean_i w_i Q1^k(s_i, f^k(π(ŝ_i))) + beta * mean_i
  Q1(ŝ_i, g^k(π(ŝ_i)))). Ones give `transfer.online_actor_loss`, zeros `td3.actor_loss` (times beta)."""
  action = td3.policy(actor_params, obs, cfg)
  teacher_q = td3.q1(teacher_critic, *transfer.teacher_inputs(obs, action, teacher_cfg, action_mask), teacher_cfg)
  teacher_term = jnp.mean(weights * teacher_q)
  own_term = transfer.own_actor_objective(actor_params, critic_params, obs, cfg, action_mask)
  loss = -(alpha * teacher_term + beta * own_term)
  return loss, {'actor_loss': loss, 'teacher_q1_term': teacher_term, 'own_q1_term': own_term,
                'teacher_trust': jnp.mean(weights), 'actor_updates': jnp.ones(())}


def trusted_actor_loss(actor_params: Params, critic_params: Params, teacher: Teacher, obs: jnp.ndarray,
                       cfg: td3.TD3Config, teacher_cfg: td3.TD3Config, alpha: float, beta: float, rule: str,
                       action_mask: jnp.ndarray) -> Tuple[jnp.ndarray, dict]:
  """Eq. 5 with the teacher term of each sample weighted by gate_k * w_i of `rule` (module docstring).

  A batch where no sample passes takes TD3's own actor loss (times beta), one where every sample passes takes Eq. 5
  itself (`lax.switch`): the zero and full trust limits are then TD3-MT's and the paper's updates bit for bit (with
  the weights merely multiplied in, XLA fuses the program differently and the last bits differ)."""
  weights = sample_weights(rule, critic_params, teacher, obs, td3.policy(actor_params, obs, cfg, action_mask), cfg,
                           teacher_cfg, action_mask)
  branch = jnp.where(jnp.all(weights == 1), 2, jnp.where(jnp.any(weights > 0), 1, 0))
  with_trust = lambda loss_metrics: (loss_metrics[0], {**loss_metrics[1], 'teacher_trust': jnp.mean(weights),
                                                       'actor_updates': jnp.ones(())})
  return jax.lax.switch(branch, [
      lambda p: with_trust(transfer.online_actor_loss(p, critic_params, teacher.critic, obs, cfg, teacher_cfg, 0.0,
                                                      beta, action_mask)),
      lambda p: weighted_actor_loss(p, critic_params, teacher.critic, weights, obs, cfg, teacher_cfg, alpha, beta,
                                    action_mask),
      lambda p: with_trust(transfer.online_actor_loss(p, critic_params, teacher.critic, obs, cfg, teacher_cfg, alpha,
                                                      beta, action_mask))], actor_params)


# ---- the per-task audit, once before training ----

def audit_rows(size: jnp.ndarray, num: int = AUDIT_SAMPLES) -> jnp.ndarray:
  """`num` row indices spread evenly over a task's `size` filled rows: floor(j * size / num), j < num, computed as
  j * (size // num) + j * (size % num) // num so that no int32 product overflows (j * size would past ~500k rows)."""
  j = jnp.arange(num)
  return j * (size // num) + (j * (size % num)) // num


def audit(teacher_actor: Params, teacher_critic: Params, obs: jnp.ndarray, key: jax.Array,
          teacher_cfg: td3.TD3Config, act_dim: int) -> jnp.ndarray:
  """c_k = mean_i 1[Q1^k(s_i, π_k(s_i)) > Q1^k(s_i, u_i)] for obs [N, obs_size] (teacher sizes) and u_i uniform in
  [-1, 1] on the task's `act_dim` entries (zero after, as g^k)."""
  mask = padding.action_mask(act_dim, teacher_cfg.act_size)
  own = td3.policy(teacher_actor, obs, teacher_cfg, mask)
  random = jax.random.uniform(key, own.shape, minval=-1.0, maxval=1.0) * mask
  return jnp.mean((td3.q1(teacher_critic, obs, own, teacher_cfg) > td3.q1(teacher_critic, obs, random, teacher_cfg)
                   ).astype(jnp.float32))


def audit_teachers(actors: Params, critics: Params, replay_obs: jnp.ndarray, sizes: jnp.ndarray,
                   teacher_cfg: td3.TD3Config, act_dims: Sequence[int], seed: int = 0) -> jnp.ndarray:
  """c [K] for K teachers (actors, critics [K]) on their replay D_k (obs [K, capacity, obs_size], sizes [K]); the
  random actions of task k come from fold_in(key(seed), k)."""
  rows = jax.vmap(audit_rows)(sizes)                                         # [K, N]
  obs = jnp.take_along_axis(replay_obs, rows[..., None], axis=1)[..., :teacher_cfg.obs_size]
  return jnp.stack([audit(jax.tree.map(lambda x, k=k: x[k], actors), jax.tree.map(lambda x, k=k: x[k], critics),
                          obs[k], jax.random.fold_in(jax.random.key(seed), k), teacher_cfg, d)
                    for k, d in enumerate(act_dims)])


# ---- bad teachers on purpose ----

def negate_critic(critic_params: Params) -> Params:
  """The critic whose outputs are exactly minus the given one's: its last layer's kernel and bias negated."""
  mlp = dict(critic_params['MLP_0'])
  last = max(mlp, key=lambda n: int(n.split('_')[-1]))
  mlp[last] = jax.tree.map(jnp.negative, mlp[last])
  return {**critic_params, 'MLP_0': mlp}


def corrupt(states: td3.TD3State, modes: Sequence[str], teacher_cfg: td3.TD3Config, seed: int = 0) -> td3.TD3State:
  """K teachers (states [K]) with teacher k replaced per modes[k]: '' keeps it, 'random' puts a freshly initialized
  TD3 (key fold_in(key(seed), k)) in its place, 'adversarial' negates its twin critics (Q^k -> -Q^k)."""
  out = []
  for k, mode in enumerate(modes):
    state = jax.tree.map(lambda x, k=k: x[k], states)
    if mode == 'random':
      state = td3.init(jax.random.fold_in(jax.random.key(seed), k), teacher_cfg)
    elif mode == 'adversarial':
      state = state.replace(critic_params=negate_critic(state.critic_params),
                            target_critic_params=negate_critic(state.target_critic_params))
    elif mode:
      raise ValueError(f'unknown teacher corruption {mode!r}; expected one of {CORRUPTIONS}')
    out.append(state)
  return jax.tree.map(lambda *x: jnp.stack(x), *out)


def parse_corruptions(spec: str, task_names: Sequence[str]) -> Tuple[str, ...]:
  """'TASK=MODE,...' (a task by name or index; MODE in CORRUPTIONS) -> modes [K] ('' for untouched teachers)."""
  modes = [''] * len(task_names)
  for item in filter(None, (s.strip() for s in spec.split(','))):
    task, _, mode = item.partition('=')
    task, mode = task.strip(), mode.strip()
    if mode not in CORRUPTIONS:
      raise ValueError(f'corrupt_teachers: {item!r} must be TASK=MODE with MODE one of {", ".join(CORRUPTIONS)}')
    if task in task_names:
      k = list(task_names).index(task)
    elif task.isdigit() and int(task) < len(task_names):
      k = int(task)
    else:
      raise ValueError(f'corrupt_teachers: no task {task!r}; the tasks are {", ".join(task_names)} '
                       f'(or their indices 0-{len(task_names) - 1})')
    if modes[k]:
      raise ValueError(f'corrupt_teachers: task {task_names[k]!r} is named twice')
    modes[k] = mode
  return tuple(modes)
