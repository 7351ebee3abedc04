"""How far a trained student's actions are from its teachers', task by task (a diagnostic for issue 12).

On states of each teacher's own replay D_k (where the teacher's policy goes), it compares the student's greedy
action for task k, f^k(pi_S(s_hat)), with
  - teacher k's action (`rmse_own`: root mean square over the N states and the task's act_dim entries, in the
    policy's [-1, 1] units), and the value teacher k's critic gives each (`q_gap` = mean Q1^k(s, student action) -
    mean Q1^k(s, teacher k's action): below 0 when the teacher's critic prefers its own action);
  - every other teacher j whose task has the same obs/act sizes (`rmse_other[j]`, and `q_gap_other[j]`: teacher j's
    action valued by teacher k's critic, as `q_gap`): a student that cannot tell task k from task j (it has no task
    id) is closer to teacher j than to teacher k, with a Q1 gap like teacher j's.
Policies that saturate at +-1 (HalfCheetah's are nearly bang-bang) differ by RMS distances near 1 even when they
return the same, so read the Q1 gaps alongside the distances.

  from ktm import agreement
  rows = agreement.measure('/tmp/ktm/run', member=0)     # one dict per task, suite order
"""

from typing import List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ktm import td3, transfer
from ktm import teachers as teachers_lib
from ktm.envs import make_suite
from ktm.runs import restore, sweep_members


def action_distances(student_actions: jnp.ndarray, teacher_actions: jnp.ndarray, act_dims) -> np.ndarray:
  """RMS distances [K, J]: entry (k, j) compares the student's actions on task k's states [K, N, A] with teacher
  j's actions on the same states [J, K, N, A], over N and task k's first act_dims[k] entries."""
  out = np.zeros((student_actions.shape[0], teacher_actions.shape[0]))
  diff = np.asarray(teacher_actions, np.float64) - np.asarray(student_actions, np.float64)[None]
  for k, d in enumerate(act_dims):
    out[k] = np.sqrt(np.mean(np.square(diff[:, k, :, :d]), axis=(1, 2)))
  return out


def sample_rows(sizes, samples: int, seed: int) -> np.ndarray:
  """Row indices [K, samples] drawn uniformly from each of the K teacher replays of `sizes` filled rows."""
  rng = np.random.default_rng(seed)
  return np.stack([rng.integers(0, int(n), samples) for n in sizes])


def measure(workdir: str, member: int = 0, samples: int = 4096, backend: str = 'auto', seed: int = 0,
            teacher_dir: Optional[str] = None) -> List[dict]:
  """One row per task of the run's suite: {'task', 'rmse_own', 'q_gap', 'teacher_q1', 'closest',
  'rmse_other': {task: rmse}, 'q_gap_other': {task: gap}}, from `samples` states drawn from each D_k
  (`sample_rows`); the teachers are the member's own set unless `teacher_dir` names another."""
  if samples < 1:
    raise ValueError(f'samples must be >= 1, got {samples}')
  method, learner, config = restore.restore(workdir, backend, member)
  suite = make_suite(config['benchmark'], backend=backend)
  teacher_dir = teacher_dir or sweep_members.member_teacher_dir(config, member)
  if teacher_dir is None:
    raise FileNotFoundError(f'run {workdir} names no complete teacher set (teacher_dir: {config.get("teacher_dir")})')
  teachers = teachers_lib.load(teacher_dir, suite)
  rows = sample_rows(np.asarray(teachers.buffer.size), samples, seed)                          # [K, N]
  obs = jnp.take_along_axis(teachers.buffer.data.obs, jnp.asarray(rows)[..., None], axis=1)   # [K, N, obs_size]
  cfg = teachers.cfg        # the teachers' sizes: the suite's padded ones, or their task's raw ones
  masks = jnp.asarray(suite.action_masks)[:, :cfg.act_size]
  student = method.act(learner, obs, jax.random.key(seed), False)[..., :cfg.act_size]        # [K, N, A_t]
  teacher_obs = obs[..., :cfg.obs_size]
  # teacher j on every task's states, with its own mask: [J, K, N, A_t]
  by_teacher = jax.vmap(lambda p, m: jax.vmap(lambda o: td3.policy(p, o, cfg, m))(teacher_obs))(
      teachers.states.actor_params, masks)
  q1 = jax.vmap(lambda c, o, a, m: td3.q1(c, *transfer.teacher_inputs(o, a, cfg, m), cfg))
  q_student = np.asarray(q1(teachers.states.critic_params, obs, student, masks)).mean(axis=1)       # [K]
  q_by_teacher = np.asarray(jax.vmap(lambda a: q1(teachers.states.critic_params, obs, a, masks))(by_teacher)
                            ).mean(axis=2)                          # [J, K]: teacher j's actions, task k's critic
  q_teacher = np.diagonal(q_by_teacher)                             # teacher k's own actions
  dist = action_distances(student, by_teacher, suite.act_dims)
  out = []
  for k, name in enumerate(suite.task_names):
    same = [j for j in range(suite.num_tasks) if j != k and suite.obs_dims[j] == suite.obs_dims[k]
            and suite.act_dims[j] == suite.act_dims[k]]
    closest = min([k] + same, key=lambda j: dist[k, j])
    out.append(dict(task=name, rmse_own=float(dist[k, k]), q_gap=float(q_student[k] - q_teacher[k]),
                    teacher_q1=float(q_teacher[k]), closest=suite.task_names[closest],
                    rmse_other={suite.task_names[j]: float(dist[k, j]) for j in same},
                    q_gap_other={suite.task_names[j]: float(q_by_teacher[j, k] - q_teacher[k]) for j in same}))
  return out


def print_rows(rows: List[dict], file=None) -> None:
  """The agreement table, one line per task; then, per task with same-sized tasks, the other teachers' actions
  measured the same way (RMS distance to the student, Q1 gap under task k's critic)."""
  print(f"{'task':<28} {'rmse own':>9} {'Q1 gap':>9} {'teacher Q1':>11}  closest teacher", file=file)
  for r in rows:
    print(f"{r['task']:<28} {r['rmse_own']:9.3f} {r['q_gap']:9.2f} {r['teacher_q1']:11.2f}  {r['closest']}", file=file)
  for r in rows:
    if r['rmse_other']:
      print(f"  on {r['task']}'s states, other teachers (rmse to the student / Q1 gap): " + ', '.join(
          f"{t} {v:.3f} / {r['q_gap_other'][t]:.2f}" for t, v in r['rmse_other'].items()), file=file)
