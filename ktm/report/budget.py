"""What each method's run spent, from its config.json: the budget table, and the x of its learning curves in env
steps per task.

Per method with K tasks (formulas from ktm/loop.py, ktm/methods/*):
- env steps per task: off-policy epochs collect one step per env (num_envs of them per task); KTM-DRL's offline
  epochs collect none; A2C-MT's epoch is n_steps steps in each of num_envs envs per task.
- optimizer steps (critic steps; TD3 actors step every policy_delay of them): per update (floor(e x
  updates_per_step) updates after e epochs past the uniform-random warm-up; one per offline epoch), K for
  combine='sequential' (one per task's minibatch), 1 for 'joint', SharedNet, G-Surgery and KTM-DRL's
  replay='flat' (w/o HER: one task's minibatch per epoch), 1 for A2C-MT's epoch; a teacher (Ideal) is K separate
  learners, one step each per update (counted per teacher).
- samples per optimizer step: batch_size for one task's minibatch, K x batch_size for a summed step, K x n_steps x
  num_envs for A2C-MT.
"""

from typing import Dict, List, Optional

import numpy as np

from ktm.methods.base import updates_after
from ktm.report.runs import Run, method_of
from ktm.report.tables import MISSING, fmt_value, markdown
from ktm.validate import update_ratio

SUMMED = ('sharednet', 'gsurgery')    # one optimizer step per epoch on the K tasks' summed losses


def _sections(config: dict):
  return config.get('cfg', {}), config.get('schedule', {}), config.get('loop', {}), config.get('ktm')


def env_steps_per_epoch(config: dict) -> int:
  """Env steps per task in one (online) epoch."""
  cfg, _, loop, _ = _sections(config)
  num_envs = loop.get('num_envs', 1)
  return cfg.get('n_steps', 1) * num_envs if method_of(config) == 'a2c_mt' else num_envs


def offline_epochs(config: dict) -> int:
  """Epochs without env steps (KTM-DRL's offline stage; 0 for every other method)."""
  ktm = _sections(config)[3]
  return int(ktm.get('offline_epochs', 0)) if ktm else 0


def env_steps(config: dict, steps: np.ndarray) -> np.ndarray:
  """Logged steps (global epochs; env steps for teachers) -> env steps per task; offline epochs map to
  step - offline_epochs <= 0 (drawn left of 0: no env step there)."""
  return (np.asarray(steps, np.int64) - offline_epochs(config)) * env_steps_per_epoch(config)


def _teacher_access(method: str, cfg: dict, ktm: Optional[dict]) -> str:
  if method == 'a2c_mt':
    return 'actors (distillation)' if cfg.get('distill_coef', 0) else 'none'
  if method != 'ktm' or not ktm:
    return 'none'
  parts = []
  if ktm.get('offline_epochs', 0):
    parts.append('replay + critics (offline)')
  if ktm.get('online_epochs', 0) and ktm.get('alpha', 1):
    parts.append('critics + actors (online)' if ktm.get('trust_rule', 'none') in ('qfilter', 'both')
                 else 'critics (online)')
  return ', '.join(parts) or 'none'


def teachers_of(config: dict) -> str:
  """How a run used its teachers: '—' for none (the Ideal itself, TD3-MT, ...), 'as trained', or the ones it
  corrupted on purpose ('corrupted: Task=random, ...': ktm/trust.py)."""
  cfg, _, _, ktm = _sections(config)
  if _teacher_access(method_of(config), cfg, ktm) == 'none':
    return '—'
  corrupted = (ktm or {}).get('corrupt_teachers')
  return f'corrupted: {corrupted}' if corrupted else 'as trained'


def budget_row(config: dict, num_tasks: int) -> Optional[Dict[str, object]]:
  """One method's budget from its config (see the module docstring); None for a config without the fields."""
  try:
    return _budget_row(config, num_tasks)
  except (KeyError, TypeError):      # an older config layout (no 'cfg' / 'schedule' sections)
    return None


def _budget_row(config: dict, num_tasks: int) -> Dict[str, object]:
  cfg, schedule, _, ktm = _sections(config)
  method, k = method_of(config), num_tasks
  batch = None if method == 'a2c_mt' else cfg['batch_size']
  if method == 'a2c_mt':
    epochs, warm, per_update, samples = schedule['epochs'], 0, 1, k * env_steps_per_epoch(config)
    ratio = 1
  elif ktm is not None:
    one = ktm.get('replay') == 'flat' or ktm.get('combine') == 'joint'
    epochs, warm, ratio = ktm['offline_epochs'] + ktm['online_epochs'], ktm.get('online_start_steps', 0), \
        ktm.get('updates_per_step', 1)
    per_update, samples = (1, batch * (k if ktm.get('combine') == 'joint' else 1)) if one else (k, batch)
  else:
    summed = method in SUMMED or cfg.get('combine') == 'joint'
    epochs, warm, ratio = schedule['steps'], schedule.get('start_steps', 0), schedule.get('updates_per_step', 1)
    per_update = 1 if summed or method == 'ideal' else k
    samples = batch * (k if summed else 1)
  online = epochs - offline_epochs(config)
  updates = offline_epochs(config) + updates_after(max(online - warm, 0), update_ratio(ratio))
  return dict(method=method, env_steps=online * env_steps_per_epoch(config), offline_epochs=offline_epochs(config),
              optimizer_steps=updates * per_update, per_teacher=method == 'ideal',
              samples_per_step=samples, teacher_access=_teacher_access(method, cfg, ktm),
              hidden_sizes=cfg.get('hidden_sizes'), dtype=cfg.get('compute_dtype', 'float32'),
              target_noise=cfg.get('target_noise'))


def budget_table(runs_by_label: Dict[str, List[Run]], num_tasks: int) -> str:
  """One row per method (its first run's config: a sweep's seeds share it)."""
  header = ['Method', 'env steps per task', 'offline epochs (no env step)', 'optimizer steps',
            'samples per optimizer step', 'teacher access', 'hidden sizes', 'dtype', 'target noise']
  rows = []
  for label, runs in runs_by_label.items():
    b = budget_row(runs[0].config, num_tasks)
    if b is None:
      rows.append([label] + [MISSING] * (len(header) - 1))
      continue
    steps = f'{b["optimizer_steps"]:,}' + (' per teacher' if b['per_teacher'] else '')
    noise = MISSING if b['target_noise'] is None else fmt_value(float(b['target_noise']), 1)
    rows.append([label, f'{b["env_steps"]:,}', f'{b["offline_epochs"]:,}', steps, f'{b["samples_per_step"]:,}',
                 b['teacher_access'], '-'.join(map(str, b['hidden_sizes'] or [])) or MISSING, b['dtype'], noise])
  return markdown(header, rows)
