"""Run directories for any method: validate everything, train on the shared loop, write the results.

A run directory (WORKDIR) holds
  config.json      {'method', 'benchmark', 'seed', 'loop': LoopConfig, <method field>: <its config>, 'teacher_dir'}
                   written only once training really starts; a resumed run must match it (differing fields named)
  checkpoints/     the whole RunState every `checkpoint_every` epochs (orbax, checksummed, newest two kept)
  metrics.csv / metrics.jsonl / tensorboard/   one row per evaluation
  results.json     {'benchmark', 'method', 'tasks': [{'name', 'student_return', 'teacher_return', 'ratio'}], ...}
Teacher runs (method 'ideal') also write WORKDIR/teachers/<Task>/ (see ktm.teachers), complete as a set.
"""

import dataclasses
import errno
import json
import os
import platform
import sys
import typing
from typing import Any, Dict, List, Optional

import jax
import numpy as np

from ktm import checkpoint, loop, metrics, replay
from ktm import teachers as teachers_lib
from ktm.envs import Suite, make_suite
from ktm.methods import METHODS, Method, TaskInfo

CONFIG_FILE, RESULTS_FILE = 'config.json', 'results.json'


# ---- methods <-> JSON ----

def config_fields(cls) -> Dict[str, type]:
  """{field: config dataclass} of a method class: the fields a user sets (not `tasks` / `teacher_cfg`)."""
  hints = typing.get_type_hints(cls)
  return {f.name: hints[f.name] for f in dataclasses.fields(cls)
          if f.name not in ('tasks', 'teacher_cfg') and dataclasses.is_dataclass(hints[f.name])}


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


def run_config(method: Method, benchmark: str, loop_cfg: loop.LoopConfig, teacher_dir: Optional[str]) -> dict:
  """What config.json holds (as it reads back: tuples become lists)."""
  config = dict(method=method.name, benchmark=benchmark, seed=loop_cfg.seed, loop=dataclasses.asdict(loop_cfg),
                **method_config_json(method), teacher_dir=os.path.abspath(teacher_dir) if teacher_dir else None)
  return json.loads(json.dumps(config))


def check_config(workdir: str, config: dict) -> bool:
  """Refuses a WORKDIR holding a run with another configuration (naming only the differing fields); returns
  whether config.json already exists (a resume)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return False
  saved = checkpoint.read_json(path)
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


def load_run_config(workdir: str) -> dict:
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f'no run directory at {workdir}')
  config = checkpoint.read_json(os.path.join(workdir, CONFIG_FILE))
  if 'method' not in config and 'ktm' in config:   # written before the shared loop
    config = dict(config, method='ktm', cfg=config.get('td3'))
  if config.get('method') not in METHODS:
    raise checkpoint.CheckpointError(f'{os.path.join(workdir, CONFIG_FILE)} names no known method')
  return config


# ---- checks before any work ----

def check_workdir_writable(workdir: str) -> None:
  """The nearest existing ancestor of WORKDIR must be a writable directory (nothing is created here)."""
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    raise NotADirectoryError(f'{path} is not a directory (--workdir={workdir})')
  if not os.access(path, os.W_OK | os.X_OK):
    raise PermissionError(f'cannot write to {path} (--workdir={workdir}): permission denied')


def check_resources(method: Method, suite: Suite, workdir: str) -> None:
  """Before anything is allocated or written: MemoryError (one line) if the method's replay would not fit in free
  memory, OSError (ENOSPC) if the disk under WORKDIR cannot hold three checkpoints of it (orbax writes the new one
  before it deletes the oldest of the two it keeps)."""
  need = replay.buffer_bytes(suite.num_tasks, method.replay_capacity, suite.obs_size, suite.act_size) \
      if method.replay_capacity else 0
  replay.check_fits(need, f'{method.name} replay ({suite.num_tasks} tasks x {method.replay_capacity:,} transitions)')
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  stat = os.statvfs(path)
  free = stat.f_bavail * stat.f_frsize
  if 3 * need > free:
    raise OSError(errno.ENOSPC, f'checkpoints of this run need about {3 * need / 2**30:.2f} GiB but {path} has '
                                f'{free / 2**30:.2f} GiB free; lower the replay capacity or choose another --workdir')


# ---- host-side reporting ----

class RunReporter(loop.Reporter):
  """Progress bar, metrics files and TensorBoard for one run."""

  def __init__(self, workdir: str, total: int, desc: str, task_names, tensorboard: bool, progress_bar: bool,
               extra_fn=None):
    self.workdir, self.total, self.desc, self.task_names = workdir, total, desc, task_names
    self.tensorboard, self.progress_bar, self.extra_fn = tensorboard, progress_bar, extra_fn
    self.writer = self.bar = None
    self.done = 0

  def resumed(self, global_epoch, restored_from):
    if restored_from is not None:
      print(f'resuming {self.workdir} from its checkpoint at epoch {restored_from:,} of {self.total:,}')
      metrics.drop_rows_after(self.workdir, global_epoch)
    self.done = global_epoch
    self.writer = metrics.MetricsWriter(self.workdir, tensorboard=self.tensorboard)
    self.bar = metrics.Progress(self.total, self.desc, initial=global_epoch, disable=not self.progress_bar)

  def chunk(self, stage_name, global_epoch, train_metrics, returns):
    self.bar.update(global_epoch - self.done)
    self.done = global_epoch
    if returns is not None:
      extra = self.extra_fn(stage_name) if self.extra_fn else None
      metrics.log_evaluation(self.writer, self.bar, global_epoch, self.task_names, returns, train_metrics, extra)

  def close(self):
    if self.bar is not None:
      self.bar.close()
    if self.writer is not None:
      self.writer.close()


def provenance() -> dict:
  """The command line and the machine, for results.json (the report shows them)."""
  device = jax.devices()[0]
  return dict(command=' '.join([os.path.basename(sys.executable)] + sys.argv),
              machine=f'{platform.node() or "?"}: {platform.processor() or platform.machine()}, {os.cpu_count()} '
                      f'cores; jax {jax.__version__} on {device.platform} ({device.device_kind})')


def results_table(task_names, student_returns, teacher_returns=None) -> List[dict]:
  """Rows {name, student_return, teacher_return, ratio}; teacher_return and ratio are None without teachers."""
  teacher_returns = [None] * len(task_names) if teacher_returns is None else teacher_returns
  return [dict(name=n, student_return=float(s), teacher_return=None if t is None else float(t),
               ratio=None if t is None else (float(s / t) if t else float('nan')))
          for n, s, t in zip(task_names, student_returns, teacher_returns)]


def print_table(rows: List[dict]) -> None:
  print(f'{"task":<32} {"student":>9} {"teacher":>9} {"ratio":>7}')
  for r in rows:
    teacher = '—' if r['teacher_return'] is None else f'{r["teacher_return"]:.1f}'
    ratio = '—' if r['ratio'] is None else f'{r["ratio"]:.3f}'
    print(f'{r["name"]:<32} {r["student_return"]:>9.1f} {teacher:>9} {ratio:>7}')


# ---- teachers ----

def ensure_teachers(benchmark: str, suite: Suite, teacher_dir: str, teacher_preset: Optional[dict], backend: str,
                    tensorboard: bool, progress_bar: bool, seed: int) -> List[dict]:
  """The validated teacher.json of each task in `teacher_dir`; trains (or resumes training) the teachers there
  with `teacher_preset` when the set is not complete yet."""
  if teachers_lib.complete(teacher_dir):
    return teachers_lib.load_metas(teacher_dir, suite)
  if teacher_preset is None:
    raise FileNotFoundError(f'no complete teacher set in {teacher_dir} (train it with experiments/train_teachers.py)')
  print(f'no complete teacher set in {teacher_dir}: training the teachers first')
  train_teachers(benchmark, teacher_preset['cfg'], teacher_preset['schedule'],
                 loop.LoopConfig(**{**teacher_preset.get('loop', {}), 'seed': seed}), teacher_dir, backend,
                 tensorboard=tensorboard, progress_bar=progress_bar)
  return teachers_lib.load_metas(teacher_dir, suite)


def train_teachers(benchmark: str, td3_kwargs: dict, schedule_kwargs: dict, loop_cfg: loop.LoopConfig,
                   workdir: str, backend: str = 'auto', tensorboard: bool = True, progress_bar: bool = True,
                   exit_after_checkpoint: Optional[int] = None) -> List[dict]:
  """Trains (or resumes) one TD3 teacher per task of `benchmark` in WORKDIR and saves the set to WORKDIR/teachers;
  returns the per-task results (also in WORKDIR/results.json)."""
  suite = make_suite(benchmark, num_envs=loop_cfg.num_envs, backend=backend)
  method = build_method('ideal', TaskInfo.from_suite(suite),
                        dict(cfg=dict(obs_size=suite.obs_size, act_size=suite.act_size, **td3_kwargs),
                             schedule=schedule_kwargs))
  if teachers_lib.complete(workdir):
    raise FileExistsError(f'{teachers_lib.set_path(workdir)} already holds a complete teacher set; use a new '
                          '--workdir (or delete it)')
  state, history, wall = train(method, benchmark, suite, loop_cfg, workdir, None, backend, tensorboard,
                               progress_bar, exit_after_checkpoint, desc='teachers')
  teachers_lib.save(workdir, suite, state.learner, state.buffer,
                    method.cfg, run_config(method, benchmark, loop_cfg, None), history)
  rows = teachers_lib.summarize(suite.task_names, history, method.schedule.steps, wall)
  checkpoint.write_json(os.path.join(workdir, RESULTS_FILE), dict(benchmark=benchmark, method='ideal',
                                                                  seed=loop_cfg.seed, wall_seconds=wall, tasks=rows,
                                                                  **provenance()))
  print(f'{"task":<32} {"final":>9} {"best":>9}')
  for r in rows:
    print(f'{r["name"]:<32} {r["final_return"]:>9.1f} {r["best_return"]:>9.1f}')
  print(f'{wall:.0f} s; teachers in {teachers_lib.set_path(workdir)}')
  return rows


def teacher_returns(metas) -> np.ndarray:
  """Each teacher's best average evaluation return during its training (the "Ideal" baseline) [K]."""
  return np.array([max(np.mean(h['returns']) for h in m['eval_history']) for m in metas])


# ---- one run of any method ----

def train(method: Method, benchmark: str, suite: Suite, loop_cfg: loop.LoopConfig, workdir: str, teachers,
          backend: str, tensorboard: bool, progress_bar: bool, exit_after_checkpoint: Optional[int],
          desc: Optional[str] = None, teacher_dir: Optional[str] = None):
  """Validates the run directory and memory, then trains on the shared loop; config.json is written when the
  first chunk is about to run. Returns (final RunState, history, wall seconds)."""
  check_workdir_writable(workdir)
  config = run_config(method, benchmark, loop_cfg, teacher_dir)
  resuming = check_config(workdir, config)
  if not resuming:
    check_resources(method, suite, workdir)
  eval_suite = make_suite(benchmark, num_envs=loop_cfg.eval_episodes, backend=backend)
  aux = method.make_aux(teachers)
  stages = method.stages()
  print(f'{method.name} on {benchmark}: {suite.num_tasks} tasks on {suite.backend_name} physics, '
        f'{jax.devices()[0].platform}; ' + ' + '.join(f'{s.epochs:,} {s.name}' for s in stages if s.epochs)
        + ' epochs')
  reporter = RunReporter(workdir, int(loop.stage_offsets(stages)[-1]), desc or method.name, suite.task_names,
                         tensorboard, progress_bar,
                         extra_fn=(lambda name: {'stage': float(name == 'online')}) if len(stages) > 1 else None)

  def on_start():
    os.makedirs(workdir, exist_ok=True)
    if not resuming:
      checkpoint.write_json(os.path.join(workdir, CONFIG_FILE), config)

  try:
    return loop.train(method, suite, eval_suite, aux, loop_cfg, workdir, reporter, exit_after_checkpoint, on_start)
  finally:
    reporter.close()


def run(method_name: str, benchmark: str, configs: Dict[str, Any], loop_cfg: loop.LoopConfig, workdir: str,
        teacher_dir: Optional[str] = None, teacher_preset: Optional[dict] = None, backend: str = 'auto',
        tensorboard: bool = True, progress_bar: bool = True, exit_after_checkpoint: Optional[int] = None) -> dict:
  """Any student method end to end: teachers (needed by KTM and A2C-MT; trained first in `teacher_dir` if the set
  is incomplete and a preset is given), then the method, resuming from WORKDIR/checkpoints. Writes results.json
  with the teachers' returns as the ratio's denominator (if `teacher_dir` holds teachers) and prints the table.

  `configs` maps each of the method's config fields to keyword arguments (TD3Config-like configs get the suite's
  padded obs/act sizes here)."""
  suite = make_suite(benchmark, num_envs=loop_cfg.num_envs, backend=backend)
  tasks = TaskInfo.from_suite(suite)
  configs = {name: (dict(obs_size=suite.obs_size, act_size=suite.act_size, **kwargs)
                    if 'obs_size' in {f.name for f in dataclasses.fields(cls)} else kwargs)
             for name, cls in config_fields(METHODS[method_name]).items() for kwargs in [configs.get(name, {})]}
  method = build_method(method_name, tasks, configs)          # validates every config before any work
  check_workdir_writable(workdir)
  if not check_config(workdir, run_config(method, benchmark, loop_cfg, teacher_dir)):
    check_resources(method, suite, workdir)                   # before the teachers are trained or loaded
  metas = teachers = None
  if method.uses_teachers or (teacher_dir and teacher_preset is not None):
    metas = ensure_teachers(benchmark, suite, teacher_dir, teacher_preset, backend, tensorboard, progress_bar,
                            loop_cfg.seed)
  elif teachers_lib.complete(teacher_dir):
    metas = teachers_lib.load_metas(teacher_dir, suite)
  if method.uses_teachers:
    teachers = teachers_lib.load(teacher_dir, suite)
    method = build_method(method_name, tasks, configs, teachers.cfg)
  state, history, wall = train(method, benchmark, suite, loop_cfg, workdir, teachers, backend, tensorboard,
                               progress_bar, exit_after_checkpoint, teacher_dir=teacher_dir)
  del state
  rows = results_table(suite.task_names, loop.best_returns(history),
                       None if metas is None else teacher_returns(metas))
  results = dict(benchmark=benchmark, method=method.name, seed=loop_cfg.seed, tasks=rows, wall_seconds=wall,
                 **provenance())
  checkpoint.write_json(os.path.join(workdir, RESULTS_FILE), results)
  print_table(rows)
  print(f'{wall:.0f} s ({method.name}); results in {os.path.join(workdir, RESULTS_FILE)}')
  return results


# ---- evaluation of a finished (or running) run ----

def restore(workdir: str, backend: str = 'auto'):
  """(method, learner, config) of the newest valid checkpoint of any run directory."""
  config = load_run_config(workdir)
  suite = make_suite(config['benchmark'], backend=backend)
  teacher_cfg = None
  if config.get('teacher_dir') and teachers_lib.complete(config['teacher_dir']):
    teacher_cfg = teachers_lib.load_config(config['teacher_dir'])
  try:
    method = build_method(config['method'], TaskInfo.from_suite(suite), config, teacher_cfg)
  except (KeyError, TypeError) as e:
    raise checkpoint.CheckpointError(f'{os.path.join(workdir, CONFIG_FILE)} is not a complete run config: {e}') from e
  like = jax.eval_shape(lambda: loop.init(jax.random.key(0), method, suite))
  manager = checkpoint.CheckpointManager(os.path.join(workdir, 'checkpoints'))
  try:
    state, _ = manager.restore(like)
  finally:
    manager.close()
  return method, state.learner, config


def evaluate_checkpoint(workdir: str, episodes: Optional[int] = None, evaluate_teachers: bool = False,
                        backend: str = 'auto', seed: int = 0) -> List[dict]:
  """Restores the newest checkpoint of any method's WORKDIR and evaluates it (and, if asked, its teachers) over
  `episodes` deterministic episodes per task; returns the per-task table."""
  if episodes is not None and episodes < 1:
    raise ValueError(f'--episodes must be >= 1, got {episodes}')
  method, learner, config = restore(workdir, backend)
  episodes = episodes or config['loop']['eval_episodes']
  eval_suite = make_suite(config['benchmark'], num_envs=episodes, backend=backend)
  key = jax.random.key(seed)
  returns = np.asarray(loop.evaluate(learner, key, method, eval_suite)).mean(axis=1)
  teacher_dir = config.get('teacher_dir')
  reference = None
  if teacher_dir and teachers_lib.complete(teacher_dir):
    if evaluate_teachers:
      teachers = teachers_lib.load(teacher_dir, eval_suite)
      reference = np.asarray(teachers_lib.evaluate(teachers, key, eval_suite)).mean(axis=1)
    else:   # their training evaluations: teacher.json alone, no parameters or replay data
      reference = teacher_returns(teachers_lib.load_metas(teacher_dir, eval_suite))
  elif evaluate_teachers:
    raise FileNotFoundError(f'run {workdir} has no teachers to evaluate')
  return results_table(eval_suite.task_names, returns, reference)
