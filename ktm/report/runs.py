"""Reading run directories (teachers, KTM-DRL and its ablations, baselines, sweeps) into one `Run` per seed.

A run directory holds config.json, results.json (once finished) and metrics.jsonl (evaluation rows
{"step": int, "eval_return/<Task>": float, ...}). Old and new layouts are both read:
- method: config["method"] if present; else "ktm" for a config with a "ktm" key, "ideal" for a teacher config
  (keys "benchmark", "td3", "train");
- seed: config["seed"], else config["ktm"]["seed"] / config["train"]["seed"];
- a sweep's results.json holds "members" [{"member", "seed", "values", "tasks"}], each read as one seed, with its
  curves from member_<i>/metrics.jsonl (member 0: the run directory's own); "swept" and members/<i>/ are older names.
A run without results.json (still training) is read from metrics.jsonl alone and marked incomplete.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ktm import checkpoint, metrics

METHOD_LABELS = {'ideal': 'Ideal', 'ktm': 'KTM', 'td3_mt': 'TD3-MT', 'sac_mt': 'SAC-MT', 'sharednet': 'SharedNet',
                 'gsurgery': 'G-Surgery', 'a2c_mt': 'A2C-MT'}
ABLATIONS = ('w/o Offline', 'w/o Online', 'Online w/o Teacher', 'Online only Teacher', 'w/o HER')
EVAL_PREFIX = 'eval_return/'
TRUST_PREFIX = 'teacher_trust/'
CORRUPTED = ' (corrupted teachers)'   # label suffix of runs whose teachers were corrupted on purpose


@dataclasses.dataclass(frozen=True)
class Run:
  """One seed of one method on one benchmark."""
  path: str                          # the run directory ('DIR#member<i>' for a sweep member)
  label: str                         # the method's column name in the tables ('KTM', 'w/o HER', 'TD3-MT', ...)
  method: str                        # 'ideal', 'ktm', 'td3_mt', ...
  benchmark: str
  seed: Optional[int]
  returns: Dict[str, float]          # task -> max over evaluations of the average evaluation return
  teacher_returns: Dict[str, float]  # task -> the Ideal return a student run recorded (results' teacher_return)
  curves: Dict[str, Tuple[np.ndarray, np.ndarray]]   # task -> (steps [T], average eval returns [T])
  config: dict
  wall_seconds: Optional[float]
  complete: bool                     # False: no results.json yet, returns taken from metrics.jsonl
  swept: dict                        # a sweep member's swept values ({} otherwise)
  command: Optional[str] = None      # the command line, if the run recorded one
  machine: Optional[str] = None      # the machine / device, if the run recorded it
  trust: Dict[str, Tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
  # task -> (steps, the teacher's logged trust: ktm/trust.py's weights) for the trusted student ({} otherwise)
  success: Dict[str, float] = dataclasses.field(default_factory=dict)
  # task -> success rate of the final evaluation, for tasks whose envs report info['success'] (results' success_rate)


def parse_spec(spec: str) -> Tuple[str, Optional[str]]:
  """'DIR' or 'DIR=LABEL' -> (DIR, LABEL or None); the label may itself contain '='."""
  if os.path.isdir(spec) or '=' not in spec:
    return spec, None
  path, label = spec.split('=', 1)
  return path, label or None


def read_json(path: str) -> Optional[dict]:
  """The file's JSON, None when it does not exist; a corrupt file is a CheckpointError naming it."""
  if not os.path.exists(path):
    return None
  return checkpoint.read_json(path)


def method_of(config: dict) -> str:
  if 'method' in config:
    return config['method']
  if 'ktm' in config:
    return 'ktm'
  if 'train' in config:
    return 'ideal'
  raise ValueError(f'cannot tell the method of a run from its config keys {sorted(config)}')


def seed_of(config: dict) -> Optional[int]:
  if 'seed' in config:
    return config['seed']
  for key in ('ktm', 'train'):
    if isinstance(config.get(key), dict) and 'seed' in config[key]:
      return config[key]['seed']
  return None


def ktm_label(ktm: dict) -> str:
  """The paper's Table 3 name of a KTM-DRL configuration ('KTM' when it is no ablation); 'KTM+' for the trusted
  student (ktm/trust.py); ' +offline patience N' (ktm/plateau.py) and ' +value scaling' (ktm/value_norm.py) for
  those options; ' (corrupted teachers)' appended when the run corrupted some on purpose."""
  label = _ktm_base_label(ktm)
  if ktm.get('trust_rule', 'none') != 'none' or ktm.get('trust_audit') is not None:
    label = 'KTM+' if label == 'KTM' else f'{label} +trust'
  if ktm.get('offline_patience'):
    label += f' +offline patience {ktm["offline_patience"]}'
  return label + _value_scaling(ktm) + (CORRUPTED if ktm.get('corrupt_teachers') else '')


def _value_scaling(section: dict) -> str:
  """Label suffix of a run with per-task value scaling (ktm/value_norm.py)."""
  return ' +value scaling' if section.get('value_norm', 'none') != 'none' else ''


def _ktm_base_label(ktm: dict) -> str:
  if ktm.get('offline_epochs', 1) == 0:
    return 'w/o Offline'
  if ktm.get('online_epochs', 1) == 0:
    return 'w/o Online'
  if ktm.get('alpha', 1) == 0:
    return 'Online w/o Teacher'
  if ktm.get('beta', 1) == 0:
    return 'Online only Teacher'
  if ktm.get('replay', 'hierarchical') == 'flat':
    return 'w/o HER'
  return 'KTM'


def default_label(method: str, config: dict) -> str:
  if method == 'ktm':
    return ktm_label(config.get('ktm', {}))
  sections = [v for v in config.values() if isinstance(v, dict)]   # TD3-MT keeps it in 'ktm', the others in 'cfg'
  return METHOD_LABELS.get(method, method) + next((_value_scaling(s) for s in sections if _value_scaling(s)), '')


def curves_of(rows: Sequence[dict], prefix: str = EVAL_PREFIX) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
  """task -> (steps, values of `prefix`<task>) from metrics.jsonl rows, the last row of a repeated step (a resumed
  run logs again the evaluations after its last checkpoint), sorted by step."""
  by_task: Dict[str, Dict[int, float]] = {}
  for row in rows:
    for key, value in row.items():
      if key.startswith(prefix) and value is not None:
        by_task.setdefault(key[len(prefix):], {})[int(row['step'])] = float(value)
  curves = {}
  for task, points in by_task.items():
    steps = np.array(sorted(points), dtype=np.int64)
    curves[task] = (steps, np.array([points[s] for s in steps.tolist()], dtype=np.float64))
  return curves


def _task_returns(rows: Sequence[dict]) -> Tuple[Dict[str, float], Dict[str, float]]:
  returns, teacher = {}, {}
  for row in rows:
    value = row.get('student_return', row.get('best_return'))
    if value is not None:
      returns[row['name']] = float(value)
    if row.get('teacher_return') is not None:
      teacher[row['name']] = float(row['teacher_return'])
  return returns, teacher


def _swept(member: dict) -> dict:
  """A member's swept values ('values' in results.json; 'swept' in older files)."""
  return member.get('values', member.get('swept', {}))


def _member_dir(path: str, index: int) -> str:
  """Where member `index` wrote its metrics (ktm.runs.member_dir: member 0 in the run directory itself)."""
  return path if index == 0 else os.path.join(path, f'member_{index}')


def _swept_suffix(members: Sequence[dict], i: int) -> str:
  """' k=v ...' for the swept names (other than the seed) whose values differ between members."""
  names = sorted({k for m in members for k in _swept(m)} - {'seed'})
  varying = [k for k in names if len({json.dumps(_swept(m).get(k)) for m in members}) > 1]
  swept = _swept(members[i])
  return ''.join(f' {k.rsplit(".", 1)[-1]}={swept[k]}' for k in varying if k in swept)


def _member_label(method: str, config: dict, members: Sequence[dict], i: int, label: Optional[str]) -> str:
  if label is None and method == 'ktm':
    swept = {k.rsplit('.', 1)[-1]: v for k, v in _swept(members[i]).items()}
    ktm = {**config.get('ktm', {}), **{k: v for k, v in swept.items() if k in config.get('ktm', {})}}
    label = ktm_label(ktm)
    if label != 'KTM':          # an ablation's name already says what was swept
      return label
  return (label or default_label(method, config)) + _swept_suffix(members, i)


def _text(value) -> Optional[str]:
  if value is None or value == '' or value == []:
    return None
  if isinstance(value, list):
    return ' '.join(str(v) for v in value)
  if isinstance(value, dict):
    return ', '.join(f'{k}={v}' for k, v in value.items())
  return str(value)


def command_of(path: str, config: dict, results: Optional[dict]) -> Optional[str]:
  """The command line from results.json or config.json ('command' or 'argv'), else from DIR/command.txt."""
  for source in (results or {}, config):
    for key in ('command', 'argv'):
      if _text(source.get(key)):
        return _text(source[key])
  if os.path.exists(os.path.join(path, 'command.txt')):
    with open(os.path.join(path, 'command.txt')) as f:
      return f.read().strip() or None
  return None


def machine_of(config: dict, results: Optional[dict]) -> Optional[str]:
  """What the run recorded about its machine: 'machine', 'device', 'backend', 'jax' in results.json/config.json."""
  parts = []
  for key in ('machine', 'device', 'backend', 'jax'):
    value = _text((results or {}).get(key)) or _text(config.get(key))
    if value:
      parts.append(value if key in ('machine', 'device') else f'{key} {value}')
  return ', '.join(parts) or None


def _task_success(rows: Sequence[dict]) -> Dict[str, float]:
  return {row['name']: float(row['success_rate']) for row in rows if row.get('success_rate') is not None}


def realized_stages(config: dict, path: str) -> dict:
  """`config` with KTM-DRL's offline / online epochs as the run trained them: an offline stage with a patience
  (ktm/plateau.py) may have ended early and given its epochs left to the online stage (read from metrics.jsonl)."""
  ktm = config.get('ktm')
  end = metrics.first_stage_end(path) if isinstance(ktm, dict) and ktm.get('offline_patience') else None
  if end is None or end >= ktm['offline_epochs']:
    return config
  total = ktm['offline_epochs'] + ktm['online_epochs']
  return dict(config, ktm=dict(ktm, offline_epochs=end, online_epochs=total - end))


def load_run(spec: str) -> List[Run]:
  """The runs of one directory spec ('DIR' or 'DIR=LABEL'): one Run, or one per sweep member."""
  path, label = parse_spec(spec)
  config = read_json(os.path.join(path, 'config.json'))
  if config is None:
    raise FileNotFoundError(f'{path} has no config.json: not a run directory')
  config = realized_stages(config, path)
  method = method_of(config)
  results = read_json(os.path.join(path, 'results.json'))
  benchmark = (results or {}).get('benchmark') or config.get('benchmark')
  about = dict(command=command_of(path, config, results), machine=machine_of(config, results))
  if results is None and len(config.get('sweep', {}).get('seeds', ())) > 1:   # a sweep still running
    sweep = config['sweep']
    results = dict(members=[dict(member=i, seed=seed, values={k: v[i] for k, v in sweep.get('values', {}).items()},
                                 unfinished=True) for i, seed in enumerate(sweep['seeds'])])
  if results is not None and 'members' in results:
    members = results['members']
    runs = []
    for i, m in enumerate(members):
      index = m.get('member', i)
      rows = metrics.read_rows(os.path.join(_member_dir(path, index), 'metrics.jsonl'))
      curves = curves_of(rows)
      if m.get('unfinished'):
        returns, teacher = {t: float(np.max(r)) for t, (_, r) in curves.items()}, {}
      else:
        returns, teacher = _task_returns(m.get('tasks', []))
      runs.append(Run(f'{path}#member{index}', _member_label(method, config, members, i, label), method,
                      benchmark, m.get('seed'), returns, teacher, curves, config,
                      m.get('wall_seconds', results.get('wall_seconds')), not m.get('unfinished'),
                      dict(_swept(m)), **about, trust=curves_of(rows, TRUST_PREFIX),
                      success=_task_success(m.get('tasks', []))))
    return runs
  rows = metrics.read_rows(os.path.join(path, 'metrics.jsonl'))
  curves = curves_of(rows)
  if results is not None:
    returns, teacher = _task_returns(results.get('tasks', []))
  elif curves:
    returns, teacher = {t: float(np.max(r)) for t, (_, r) in curves.items()}, {}
  else:
    raise FileNotFoundError(f'{path} has neither results.json nor evaluations in metrics.jsonl')
  return [Run(path, label or default_label(method, config), method, benchmark, seed_of(config), returns, teacher,
              curves, config, (results or {}).get('wall_seconds'), results is not None, {}, **about,
              trust=curves_of(rows, TRUST_PREFIX),
              success=_task_success((results or {}).get('tasks', [])))]


def load_runs(specs: Sequence[str], auto_teachers: bool = True) -> List[Run]:
  """All runs of the given specs. With `auto_teachers`, a student run's config["teacher_dir"] that holds a
  finished teacher run is added as an Ideal run, unless Ideal runs of that benchmark were given."""
  runs = [r for spec in specs for r in load_run(spec)]
  if auto_teachers:
    given = {r.benchmark for r in runs if r.method == 'ideal'}
    seen = {os.path.abspath(r.path) for r in runs}
    for r in list(runs):
      teacher_dir = r.config.get('teacher_dir')
      if (r.method != 'ideal' and r.benchmark not in given and teacher_dir and os.path.abspath(teacher_dir) not in seen
          and os.path.exists(os.path.join(teacher_dir, 'results.json'))):
        seen.add(os.path.abspath(teacher_dir))
        runs.extend(t for t in load_run(teacher_dir) if t.method == 'ideal')
  return runs
