"""A run's configuration: the method built from config values, config.json, and the checks that a resume or an
`--init_from` start matches it.

config.json = {'method', 'benchmark', 'seed', 'loop': LoopConfig, <method field>: <its config>, 'teacher_dir',
'sweep', and 'init_from' for a run started from another's first stage}; tuples are stored as lists.
"""

import dataclasses
import json
import os
import shutil
from typing import Any, Dict, Optional, Tuple

from ktm import checkpoint, loop, metrics
from ktm import sweep as sweep_lib
from ktm.methods import METHODS, Method, TaskInfo
from ktm.runs import sweep_members
from ktm.sweep import Sweep, config_fields

CONFIG_FILE = 'config.json'


def _build(config_cls, values: dict):
  """A config dataclass from JSON values (lists become tuples)."""
  return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def method_config_json(method: Method) -> dict:
  return {name: dataclasses.asdict(getattr(method, name)) for name in config_fields(type(method))}


def build_method(name: str, tasks: TaskInfo, configs: Dict[str, Any], teacher_cfg=None) -> Method:
  """Method `name` for `tasks` from {field: config object or JSON dict}."""
  if name not in METHODS:
    raise ValueError(f'unknown method {name!r}; choose from {sorted(METHODS)}')
  cls = METHODS[name]
  kwargs = {field: value if isinstance(value, config_cls) else _build(config_cls, value)
            for field, config_cls in config_fields(cls).items() for value in [configs[field]]}
  if 'teacher_cfg' in {f.name for f in dataclasses.fields(cls)}:
    kwargs['teacher_cfg'] = teacher_cfg
  return cls(tasks=tasks, **kwargs)


def run_config(method: Method, benchmark: str, loop_cfg: loop.LoopConfig, teacher_dir: Optional[str],
               sweep: Optional[Sweep] = None, init_from: Optional[str] = None) -> dict:
  """What config.json holds (as it reads back: tuples become lists)."""
  sweep = sweep or sweep_lib.single(loop_cfg.seed)
  config = dict(method=method.name, benchmark=benchmark, seed=loop_cfg.seed, loop=dataclasses.asdict(loop_cfg),
                **method_config_json(method), teacher_dir=os.path.abspath(teacher_dir) if teacher_dir else None,
                sweep=sweep.to_json())
  if init_from:
    config['init_from'] = os.path.abspath(init_from)
  return json.loads(json.dumps(config))


def with_new_defaults(config: dict) -> dict:
  """A saved config.json with the config fields added since it was written set to their defaults (a new field's
  default keeps the behaviour from before it existed), so older runs resume and seed `--init_from` runs."""
  method_cls = METHODS.get(config.get('method'))
  sections = dict(config_fields(method_cls), loop=loop.LoopConfig) if method_cls else {}
  out = dict(config)
  for name, cls in sections.items():
    if isinstance(out.get(name), dict):
      defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
      out[name] = {**json.loads(json.dumps(defaults)), **out[name]}
  return out


def check_config(workdir: str, config: dict) -> bool:
  """Refuses a WORKDIR holding a run with another configuration (naming only the differing fields); returns
  whether config.json already exists (a resume)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return False
  saved = with_new_defaults(checkpoint.read_json(path))
  diff = sorted(_diff(saved, config))
  if diff:
    raise ValueError(f'{workdir} holds a run with another configuration: ' + '; '.join(diff)
                     + ' (use a new --workdir)')
  return True


def _diff(saved, wanted, prefix=''):
  """'field: saved -> requested' for every leaf that differs."""
  if isinstance(saved, dict) and isinstance(wanted, dict):
    for key in sorted(set(saved) | set(wanted)):
      yield from _diff(saved.get(key), wanted.get(key), f'{prefix}{key}.')
  elif saved != wanted:
    yield f'{prefix[:-1]}: {saved} -> {wanted}'


def _without(config: dict, dotted: Tuple[str, ...]) -> dict:
  """`config` less the fields named 'section.field' (and less 'init_from')."""
  out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items() if k != 'init_from'}
  for name in dotted:
    section, _, field = name.partition('.')
    if isinstance(out.get(section), dict):
      out[section].pop(field, None)
  return out


def first_stage_checkpoint(source: str, method: Method, config: dict) -> Tuple[int, str]:
  """(global epoch, checkpoint directory) of run SOURCE's first-stage end, once SOURCE is known to fit a new run of
  `config`: its config.json equals `config` except in `method.later_stage_fields` (fields the first stage never
  reads), and it kept a checkpoint at that epoch (verified when it is copied: hashing it is the costly part)."""
  boundaries = loop.stage_boundaries(method.stages())
  if not boundaries or not method.later_stage_fields:
    raise ValueError(f'--init_from: {method.name} with these settings has no first stage to start after')
  boundary = boundaries[0]
  if method.stages()[0].patience is not None:      # it may have ended early (ktm/plateau.py)
    boundary = metrics.first_stage_end(source)
    if boundary is None:
      raise ValueError(f'--init_from={source}: that run has not finished its first stage yet')
  source_config = load_run_config(source)
  diff = sorted(_diff(_without(source_config, method.later_stage_fields),
                      _without(config, method.later_stage_fields)))
  if diff:
    raise ValueError(f'--init_from={source}: that run differs in more than the settings only later stages read '
                     f'({", ".join(method.later_stage_fields)}): ' + '; '.join(diff))
  step_dir = os.path.join(source, 'checkpoints', str(boundary))
  if not os.path.isdir(step_dir):
    raise FileNotFoundError(f'--init_from={source}: it keeps no checkpoint at the end of its first stage (epoch '
                            f'{boundary:,}): a later checkpoint replaced it (runs keep it since 2026-11-26)')
  return boundary, step_dir


def start_from_first_stage(source: str, workdir: str, method: Method, config: dict) -> int:
  """Seeds the new run WORKDIR (config `config`) with run SOURCE's checkpoint at the end of its first stage and
  SOURCE's metrics up to there (`first_stage_checkpoint` checks SOURCE), so that training WORKDIR resumes there and
  runs only the later stages: bit for bit what training the first stage again would give (tests/test_run_ktm.py);
  the evaluations and wall time up to the boundary are SOURCE's. Returns the boundary's global epoch."""
  boundary, step_dir = first_stage_checkpoint(source, method, config)
  checkpoint.verify(step_dir)
  shutil.copytree(step_dir, os.path.join(workdir, 'checkpoints', str(boundary)), dirs_exist_ok=True)
  for m in range(sweep_members.config_sweep(config).size):
    src, dst = sweep_members.member_dir(source, m), sweep_members.member_dir(workdir, m)
    os.makedirs(dst, exist_ok=True)
    for name in ('metrics.csv', 'metrics.jsonl'):
      if os.path.exists(os.path.join(src, name)):
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    metrics.drop_rows_after(dst, boundary)
  return boundary


def load_run_config(workdir: str) -> dict:
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f'no run directory at {workdir}')
  config = checkpoint.read_json(os.path.join(workdir, CONFIG_FILE))
  if 'method' not in config and 'ktm' in config:   # written before the shared loop
    config = dict(config, method='ktm', cfg=config.get('td3'))
  if config.get('method') not in METHODS:
    raise checkpoint.CheckpointError(f'{os.path.join(workdir, CONFIG_FILE)} names no known method')
  return with_new_defaults(config)
