"""Run directories for any method: validate everything, train on the shared loop, write the results.

A run directory (WORKDIR) holds
  config.json      {'method', 'benchmark', 'seed', 'loop': LoopConfig, <method field>: <its config>, 'teacher_dir',
                   'sweep', and 'init_from' for a run started from another's first stage} written only once training
                   really starts; a resumed run must match it (differing fields named)
  checkpoints/     the whole RunState of all members every `checkpoint_every` epochs (orbax, checksummed, two kept,
                   and the one at each stage boundary)
  metrics.csv / metrics.jsonl / tensorboard/   one row per evaluation, per member (member m > 0 in member_<m>/)
  results.json     {'benchmark', 'method', 'members': [{'member', 'seed', 'values', 'tasks': [{'name',
                   'student_return', 'teacher_return', 'ratio'}]}], 'summary': per setting and task, mean and std over
                   seeds, ...}; a one-member run also keeps 'tasks' (its rows) at the top
Teacher runs (method 'ideal') also write WORKDIR/teachers/<Task>/ (see ktm.teachers), complete as a set; member m > 0
of a teacher sweep writes WORKDIR/member_<m>/teachers/.
"""

import contextlib
import dataclasses
import errno
import json
import os
import platform
import shutil
import sys
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from ktm import checkpoint, lock, loop, metrics, replay, resources
from ktm import sweep as sweep_lib
from ktm import teachers as teachers_lib
from ktm.envs import Suite, make_suite
from ktm.methods import METHODS, Method, TaskInfo
from ktm.sweep import Sweep, config_fields

CONFIG_FILE, RESULTS_FILE = 'config.json', 'results.json'


# ---- methods <-> JSON ----

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
  for m in range(config_sweep(config).size):
    src, dst = member_dir(source, m), member_dir(workdir, m)
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



# ---- checks before any work ----

def check_workdir_writable(workdir: str, flag: str = '--workdir') -> None:
  """The nearest existing ancestor of WORKDIR (or of the directory `flag` names) must be a writable directory
  (nothing is created here)."""
  if not workdir:
    raise ValueError(f'{flag} is empty: name the {"run " if flag == "--workdir" else ""}directory')
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    raise NotADirectoryError(f'{path} is not a directory ({flag}={workdir})')
  if not os.access(path, os.W_OK | os.X_OK):
    raise PermissionError(f'cannot write to {path} ({flag}={workdir}): permission denied')



def check_resources(method: Method, suite: Suite, workdir: str, loop_cfg: loop.LoopConfig, members: int = 1,
                    devices: int = 1, teacher_bytes: int = 0, teachers_per_member: bool = False) -> None:
  """Before anything is allocated or written: ValueError if a chunk collects more than the replay holds,
  MemoryError (one line) if what the members one device holds (all `members` split over `devices`; the terms of
  `ktm.resources`) would not fit in its free memory, OSError (ENOSPC) if the disk under WORKDIR cannot hold three
  checkpoints of all members (orbax writes the new one before it deletes the oldest of the two it keeps)."""
  resources.check_chunk_fits_replay(method, loop_cfg)
  terms = resources.terms(method, suite, loop_cfg, teacher_bytes, teachers_per_member)
  resources.check(terms, members, devices, f'{method.name} on {suite.num_tasks} tasks')
  if jax.devices()[0].platform != 'cpu':
    resources.check(resources.host_terms(terms), members, 1, f'{method.name} on {suite.num_tasks} tasks',
                    replay.host_available_bytes(), 'the host')
  need = resources.checkpoint_bytes(terms, members)
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  stat = os.statvfs(path)
  free = stat.f_bavail * stat.f_frsize
  if 3 * need > free:
    raise OSError(errno.ENOSPC, f'checkpoints of this run need about {3 * need / 2**30:.2f} GiB but {path} has '
                                f'{free / 2**30:.2f} GiB free; lower the replay capacity or choose another --workdir')


def teacher_sets_of_members(sweep: Sweep, seed: int, available: int) -> Tuple[List[int], bool]:
  """(the teacher set of each member, whether they differ): member of seed `seed + i` uses set i when TEACHER_DIR
  holds `available` sets covering every member's seed and the seeds differ, else every member uses set 0."""
  index = [s - seed for s in sweep.seeds]
  per_member = available > 0 and len(set(sweep.seeds)) > 1 and max(index) < available
  return (index if per_member else [0] * sweep.size), per_member


def teacher_memory(teacher_dir: Optional[str], suite: Suite, sweep: Sweep, seed: int) -> Tuple[int, bool]:
  """(bytes of one teacher set as the chunks hold it, whether each member holds its own) for the complete sets in
  TEACHER_DIR (from teacher.json alone); (0, False) when it holds none yet."""
  available = teacher_members(teacher_dir)
  if not available:
    return 0, False
  metas = teachers_lib.load_metas(teacher_dir, suite)
  size = resources.teacher_set_bytes(metas, suite, teachers_lib.load_config(teacher_dir))
  return size, teacher_sets_of_members(sweep, seed, available)[1]


def member_mesh(members: int, host_envs: bool = False) -> Optional[loop.Mesh]:
  """The device mesh (axis 'member') the sweep's members are split over, or None on one device. With D devices
  and S members, the members go to the largest d <= D dividing S (printed when d < D). One process only: a
  multi-host run (`jax.distributed`) uses every device of every process, so S must divide by their number.
  host_envs (a gymnasium suite): None, every member on one device (its envs live on the host, found by their row
  in each callback, and the host steps them one call at a time anyway); one process only."""
  devices = jax.devices()
  if host_envs and jax.process_count() > 1:
    raise ValueError('a gymnasium suite runs in one process (its envs live on the host): not with jax.distributed')
  if len(devices) == 1 or host_envs:
    return None
  if jax.process_count() > 1:
    if members % len(devices):
      raise ValueError(f'{members} sweep members cannot be split over the {len(devices)} devices of '
                       f'{jax.process_count()} processes: use a multiple of {len(devices)} members')
    return loop.Mesh(np.array(devices), (loop.MEMBER_AXIS,))
  d = max(n for n in range(1, len(devices) + 1) if members % n == 0 and n <= len(devices))
  if d < len(devices):
    print(f'note: {members} members over {d} of {len(devices)} devices ({members} is not a multiple of '
          f'{len(devices)})')
  return None if d == 1 else loop.Mesh(np.array(devices[:d]), (loop.MEMBER_AXIS,))


def local_members(sweep: Sweep, mesh) -> List[int]:
  """The members whose files this process writes: all of them, except across processes (their devices')."""
  if mesh is None or jax.process_count() == 1:
    return list(range(sweep.size))
  per_device = sweep.size // mesh.devices.size
  return [m for m in range(sweep.size) if mesh.devices.flat[m // per_device].process_index == jax.process_index()]


def member_dir(workdir: str, m: int) -> str:
  """Where member m of a sweep writes its own files: WORKDIR itself for member 0, else WORKDIR/member_<m>."""
  return workdir if m == 0 else os.path.join(workdir, f'member_{m}')


@contextlib.contextmanager
def writing(directory: str, what: str = 'run'):
  """DIRECTORY's writer lock (ktm.lock) for the block, so that a second command on it stops before it writes.
  Across the processes of one jax.distributed run, process 0 alone holds it for all of them (the others write only
  their members' metrics, for the same run); all processes learn its verdict and stop together if it is refused."""
  if jax.process_count() == 1:
    with lock.hold(directory, what):
      yield
    return
  held, busy = contextlib.ExitStack(), None
  if jax.process_index() == 0:
    try:
      held.enter_context(lock.hold(directory, what))
    except lock.DirectoryBusy as e:
      busy = e
  if int(multihost_utils.broadcast_one_to_all(np.int32(busy is not None))):
    raise busy or lock.DirectoryBusy(f'{directory} is in use by another process (process 0 of this run was refused)')
  with held:
    yield


# ---- host-side reporting ----

class RunReporter(loop.Reporter):
  """Progress bar (returns averaged over members), and per member: metrics files and TensorBoard."""

  def __init__(self, workdir: str, total: int, desc: str, task_names, tensorboard: bool, progress_bar: bool,
               extra_fn=None, sweep: Optional[Sweep] = None, members: Optional[List[int]] = None):
    self.workdir, self.total, self.desc, self.task_names = workdir, total, desc, task_names
    self.tensorboard, self.progress_bar, self.extra_fn = tensorboard, progress_bar, extra_fn
    self.sweep = sweep or sweep_lib.single(0)
    self.members = list(range(self.sweep.size)) if members is None else members   # whose files this process writes
    self.writers, self.bar = {}, None
    self.done = 0
    self.diverged_members = {}   # member -> global epoch by which it diverged

  def resumed(self, global_epoch, restored_from):
    if restored_from is not None and jax.process_index() == 0:
      print(f'resuming {self.workdir} from its checkpoint at epoch {restored_from:,} of {self.total:,}')
    for m in self.members:     # also without a checkpoint: a run killed before its first leaves rows to drop
      directory = member_dir(self.workdir, m)
      metrics.drop_rows_after(directory, global_epoch)
      restart = global_epoch + 1 if os.path.isdir(os.path.join(directory, 'tensorboard')) else None
      self.writers[m] = metrics.MetricsWriter(directory, tensorboard=self.tensorboard, restart_step=restart)
    self.done = global_epoch
    self.bar = metrics.Progress(self.total, self.desc, initial=global_epoch,
                                disable=not self.progress_bar or jax.process_index() > 0)

  def chunk(self, stage_name, global_epoch, train_metrics, returns):
    self.bar.update(global_epoch - self.done)
    self.done = global_epoch
    if returns is None:
      return
    extra = self.extra_fn(stage_name) if self.extra_fn else None
    for m, writer in self.writers.items():
      metrics.log_evaluation(writer, self.bar, global_epoch, self.task_names, returns[m],
                             loop.member(train_metrics, m), extra)
    with np.errstate(invalid='ignore'):
      self.bar.show_returns(self.task_names, np.nanmean(np.mean(returns, axis=-1), axis=0))

  def diverged(self, m, global_epoch, task):
    self.diverged_members[m] = global_epoch
    where = f', task {task}' if task else ''
    self.bar.write(f'warning: sweep member {m} ({self.sweep.describe(m)}) diverged (NaN/Inf) by epoch '
                   f'{global_epoch:,}{where}: it is left out of the results; the other members train on')

  def close(self):
    if self.bar is not None:
      self.bar.close()
    for writer in self.writers.values():
      writer.close()


def provenance() -> dict:
  """The command line and the machine, for results.json (the report shows them)."""
  device = jax.devices()[0]
  return dict(command=' '.join([os.path.basename(sys.executable)] + sys.argv),
              machine=f'{platform.node() or "?"}: {platform.processor() or platform.machine()}, {os.cpu_count()} '
                      f'cores; jax {jax.__version__} on {device.platform} ({device.device_kind})')



def results_table(task_names, student_returns, teacher_returns=None) -> List[dict]:
  """Rows {name, student_return, teacher_return, ratio}; teacher_return and ratio are None without teachers, and
  the ratio is None where the teacher's return is not positive (a ratio of two negative returns says nothing; the
  report leaves such tasks out of its ratios too)."""
  teacher_returns = [None] * len(task_names) if teacher_returns is None else teacher_returns
  return [dict(name=n, student_return=_number(s), teacher_return=None if t is None else float(t),
               ratio=float(s / t) if t is not None and t > 0 and np.isfinite(s) else None)
          for n, s, t in zip(task_names, student_returns, teacher_returns)]


def _number(x) -> Optional[float]:
  return float(x) if np.isfinite(x) else None


def sweep_results(task_names, sweep: Sweep, best: np.ndarray, teacher_returns: Optional[np.ndarray],
                  diverged: Dict[int, int], success: Optional[list] = None) -> dict:
  """{'members': one row per member, 'summary': per setting and task, mean and std over its finite seeds}.
  best [S, K]; teacher_returns [S, K] (each member's own teachers) or None; success [S][K]: the final evaluation's
  success rates (loop.success_rates), rows get 'success_rate' when given."""
  members = []
  for m in range(sweep.size):
    rows = results_table(task_names, best[m], None if teacher_returns is None else teacher_returns[m])
    for k, row in enumerate(rows if success is not None else []):
      row['success_rate'] = success[m][k]
    members.append(dict(member=m, seed=sweep.seeds[m], values=sweep.member(m), tasks=rows,
                        diverged_at_epoch=diverged.get(m)))
  summary = []
  for setting in dict.fromkeys(sweep.setting(m) for m in range(sweep.size)):
    group = [r for r in members if sweep.setting(r['member']) == setting and r['diverged_at_epoch'] is None]
    tasks = []
    for k, name in enumerate(task_names):
      entry = dict(name=name)
      for field in ('student_return', 'ratio') + (('success_rate',) if success is not None else ()):
        vals = [r['tasks'][k][field] for r in group if r['tasks'][k][field] is not None]
        entry[f'{field}_mean'] = float(np.mean(vals)) if vals else None
        entry[f'{field}_std'] = float(np.std(vals)) if vals else None
      entry['seeds'] = len(group)
      tasks.append(entry)
    summary.append(dict(values=dict(setting), tasks=tasks))
  return dict(members=members, summary=summary)


def print_table(rows: List[dict]) -> None:
  print(f'{"task":<32} {"student":>9} {"teacher":>9} {"ratio":>7}')
  for r in rows:
    student = '—' if r['student_return'] is None else f'{r["student_return"]:.1f}'
    teacher = '—' if r['teacher_return'] is None else f'{r["teacher_return"]:.1f}'
    ratio = '—' if r['ratio'] is None else f'{r["ratio"]:.3f}'
    print(f'{r["name"]:<32} {student:>9} {teacher:>9} {ratio:>7}')


def print_summary(summary: List[dict]) -> None:
  """Per setting and task: mean ± std over seeds of the return (and ratio)."""
  print(f'{"setting":<28} {"task":<28} {"return (mean ± std)":>22} {"ratio":>15} {"seeds":>5}')
  for s in summary:
    setting = ' '.join(f'{k}={v:g}' for k, v in s['values'].items()) or '—'
    for t in s['tasks']:
      ret = '—' if t['student_return_mean'] is None else f'{t["student_return_mean"]:.1f} ± {t["student_return_std"]:.1f}'
      ratio = '—' if t['ratio_mean'] is None else f'{t["ratio_mean"]:.3f} ± {t["ratio_std"]:.3f}'
      print(f'{setting:<28} {t["name"]:<28} {ret:>22} {ratio:>15} {t["seeds"]:>5}')


# ---- teachers ----

def teacher_members(teacher_dir: Optional[str]) -> int:
  """How many members' complete teacher sets TEACHER_DIR holds (member 0 in TEACHER_DIR, m in member_<m>/)."""
  n = 0
  while teacher_dir and teachers_lib.complete(member_dir(teacher_dir, n)):
    n += 1
  return n


def ensure_teachers(benchmark: str, suite: Suite, teacher_dir: str, teacher_preset: Optional[dict], backend: str,
                    tensorboard: bool, progress_bar: bool, seed: int, num_seeds: int = 1) -> List[List[dict]]:
  """The validated teacher.json files of each available teacher member ([members][K]); trains (or resumes) a
  teacher run of `num_seeds` seeds with `teacher_preset` when TEACHER_DIR holds no complete set yet."""
  if not teachers_lib.complete(teacher_dir):
    if teacher_preset is None:
      raise FileNotFoundError(f'no complete teacher set in {teacher_dir} (train it with '
                              'experiments/train_teachers.py)')
    print(f'no complete teacher set in {teacher_dir}: training the teachers first ({num_seeds} seed(s))')
    train_teachers(benchmark, teacher_preset['cfg'], teacher_preset['schedule'],
                   loop.LoopConfig(**{**teacher_preset.get('loop', {}), 'seed': seed}), teacher_dir, backend,
                   tensorboard=tensorboard, progress_bar=progress_bar, sweep=sweep_lib.grid(seed, num_seeds, ()))
  return [teachers_lib.load_metas(member_dir(teacher_dir, m), suite) for m in range(teacher_members(teacher_dir))]


def train_teachers(benchmark: str, td3_kwargs: dict, schedule_kwargs: dict, loop_cfg: loop.LoopConfig,
                   workdir: str, backend: str = 'auto', tensorboard: bool = True, progress_bar: bool = True,
                   exit_after_checkpoint: Optional[int] = None, sweep: Optional[Sweep] = None) -> List[dict]:
  """Trains (or resumes) one TD3 teacher per task of `benchmark` for every member of `sweep` (default: one, with
  `loop_cfg.seed`) in WORKDIR, all in one program, and saves member m's set to member_dir(WORKDIR, m)/teachers;
  returns the per-task rows of a one-member run, else one row per member (all in WORKDIR/results.json)."""
  sweep = sweep or sweep_lib.single(loop_cfg.seed)
  suite = make_suite(benchmark, num_envs=loop_cfg.num_envs, backend=backend)
  method = build_method('ideal', TaskInfo.from_suite(suite),
                        dict(cfg=dict(obs_size=suite.obs_size, act_size=suite.act_size, **td3_kwargs),
                             schedule=schedule_kwargs))
  resources.check_chunk_fits_replay(method, loop_cfg)
  check_workdir_writable(workdir)
  with writing(workdir, 'teacher directory'):
    return _train_teachers(method, benchmark, suite, loop_cfg, workdir, backend, tensorboard, progress_bar,
                           exit_after_checkpoint, sweep)


def _train_teachers(method, benchmark, suite, loop_cfg, workdir, backend, tensorboard, progress_bar,
                    exit_after_checkpoint, sweep) -> List[dict]:
  """`train_teachers` once WORKDIR's lock is held."""
  if teachers_lib.complete(workdir):
    raise FileExistsError(f'{teachers_lib.set_path(workdir)} already holds a complete teacher set; use a new '
                          '--workdir (or delete it)')
  state, history, wall, mesh, diverged = train(method, benchmark, suite, loop_cfg, workdir, None, backend,
                                               tensorboard, progress_bar, exit_after_checkpoint,
                                               desc='teachers', sweep=sweep)
  learners, buffers = loop.host_members((state.learner, state.buffer))   # across processes: gathered from all
  # member 0 last: its complete set marks the whole run's teachers saved; process 0 writes every member's set
  for m in reversed(range(sweep.size)):
    if m not in diverged and jax.process_index() == 0:
      teachers_lib.save(member_dir(workdir, m), suite, loop.member(learners, m), loop.member(buffers, m), method.cfg,
                        run_config(method, benchmark, loop_cfg, None, sweep), loop.member_history(history, m))
  best = loop.best_returns(history)
  results = dict(benchmark=benchmark, method='ideal', seed=loop_cfg.seed, wall_seconds=wall,
                 **sweep_results(suite.task_names, sweep, best, None, diverged), **provenance())
  if sweep.size == 1:
    results['tasks'] = teachers_lib.summarize(suite.task_names, loop.member_history(history, 0),
                                              method.schedule.steps, wall, suite.num_envs)
  _write_results(workdir, results)
  if jax.process_index() == 0:
    if sweep.size == 1:
      print(f'{"task":<32} {"final":>9} {"best":>9}')
      for r in results['tasks']:
        print(f'{r["name"]:<32} {r["final_return"]:>9.1f} {r["best_return"]:>9.1f}')
    else:
      print_summary(results['summary'])
    print(f'{wall:.0f} s; teachers in {teachers_lib.set_path(workdir)}'
          + (f' (member m > 0: {os.path.join(workdir, "member_<m>", "teachers")})' if sweep.size > 1 else ''))
  return results['tasks'] if sweep.size == 1 else results['members']


def _write_results(workdir: str, results: dict) -> None:
  if jax.process_index() == 0:
    checkpoint.write_json(os.path.join(workdir, RESULTS_FILE), results)


def teacher_returns(metas) -> np.ndarray:
  """Each teacher's best average evaluation return during its training (the "Ideal" baseline) [K]."""
  return np.array([max(np.mean(h['returns']) for h in m['eval_history']) for m in metas])


# ---- one run of any method ----

def train(method: Method, benchmark: str, suite: Suite, loop_cfg: loop.LoopConfig, workdir: str, teachers,
          backend: str, tensorboard: bool, progress_bar: bool, exit_after_checkpoint: Optional[int],
          desc: Optional[str] = None, teacher_dir: Optional[str] = None, sweep: Optional[Sweep] = None,
          aux_axis: Optional[int] = None, init_from: Optional[str] = None):
  """Validates the run directory, the sweep and memory, then trains all members on the shared loop; config.json
  is written when the first chunk is about to run. `teachers` is one set, or with aux_axis=0 a list of one set per
  member; `init_from`: a run to start from the first-stage end of (`start_from_first_stage`). Returns (final
  RunState [S, ...], history, wall seconds, mesh, diverged members {m: epoch})."""
  sweep = sweep or sweep_lib.single(loop_cfg.seed)
  sweep_lib.member_methods(method, sweep)                     # every member's values validated
  check_workdir_writable(workdir)
  config = run_config(method, benchmark, loop_cfg, teacher_dir, sweep, init_from)
  resuming = check_config(workdir, config)
  mesh = member_mesh(sweep.size, suite.backend_name == 'gym')
  if not resuming:
    per_member = aux_axis == 0
    check_resources(method, suite, workdir, loop_cfg, sweep.size, 1 if mesh is None else mesh.devices.size,
                    resources.tree_bytes(teachers[0] if per_member else teachers), per_member)
    warning = resources.evaluation_warning(method, suite, loop_cfg)
    if warning and jax.process_index() == 0:
      print(warning, file=sys.stderr)
    if init_from:
      if jax.process_index() == 0:
        boundary = start_from_first_stage(init_from, workdir, method, config)
        print(f'starting from {init_from} at the end of its first stage (epoch {boundary:,})')
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices('ktm init_from copied')
  eval_suite = make_suite(benchmark, num_envs=loop_cfg.eval_episodes, backend=backend)
  if aux_axis is None:
    aux = method.make_aux(teachers)
  else:
    aux = jax.tree.map(lambda *x: jnp.stack(x), *[method.make_aux(t) for t in teachers])
  stages = method.stages()
  print(f'{method.name} on {benchmark}: {suite.num_tasks} tasks on {suite.backend_name} physics, '
        f'{jax.devices()[0].platform}; ' + ' + '.join(f'{s.epochs:,} {s.name}' for s in stages if s.epochs)
        + ' epochs' + (f'; {sweep.size} sweep members in one program' if sweep.size > 1 else ''))
  reporter = RunReporter(workdir, int(loop.stage_offsets(stages)[-1]), desc or method.name, suite.task_names,
                         tensorboard, progress_bar,
                         extra_fn=(lambda name: {'stage': float(name == 'online')}) if len(stages) > 1 else None,
                         sweep=sweep, members=local_members(sweep, mesh))

  def on_start():
    os.makedirs(workdir, exist_ok=True)
    if not resuming and jax.process_index() == 0:
      checkpoint.write_json(os.path.join(workdir, CONFIG_FILE), config)

  try:
    state, history, wall = loop.train(method, suite, eval_suite, aux, loop_cfg, workdir, reporter,
                                      exit_after_checkpoint, on_start, sweep, aux_axis, mesh)
  finally:
    reporter.close()
  return state, history, wall, mesh, reporter.diverged_members


def run(method_name: str, benchmark: str, configs: Dict[str, Any], loop_cfg: loop.LoopConfig, workdir: str,
        teacher_dir: Optional[str] = None, teacher_preset: Optional[dict] = None, backend: str = 'auto',
        tensorboard: bool = True, progress_bar: bool = True, exit_after_checkpoint: Optional[int] = None,
        sweep: Optional[Sweep] = None, init_from: Optional[str] = None) -> dict:
  """Any student method end to end, for every member of `sweep` (default: one, with `loop_cfg.seed`): teachers
  (needed by KTM and A2C-MT; trained first in `teacher_dir` if the set is incomplete and a preset is given), then
  the method, resuming from WORKDIR/checkpoints. A member of seed `loop_cfg.seed + i` uses teacher set i (the
  teachers of the same seed, when TEACHER_DIR holds a teacher sweep of `--seeds` seeds), else all members use the
  first set (printed). With `init_from`, a new run starts from that run's first-stage end (`start_from_first_stage`).
  Writes results.json with the teachers' returns as the ratio's denominator (if `teacher_dir` holds teachers) and
  prints the table.

  `configs` maps each of the method's config fields to keyword arguments (TD3Config-like configs get the suite's
  padded obs/act sizes here)."""
  sweep = sweep or sweep_lib.single(loop_cfg.seed)
  suite = make_suite(benchmark, num_envs=loop_cfg.num_envs, backend=backend)
  tasks = TaskInfo.from_suite(suite)
  configs = {name: (dict(obs_size=suite.obs_size, act_size=suite.act_size, **kwargs)
                    if 'obs_size' in {f.name for f in dataclasses.fields(cls)} else kwargs)
             for name, cls in config_fields(METHODS[method_name]).items() for kwargs in [configs.get(name, {})]}
  method = build_method(method_name, tasks, configs)          # validates every config before any work
  members = sweep_lib.member_methods(method, sweep)           # and every member's values
  check_workdir_writable(workdir)
  config = run_config(method, benchmark, loop_cfg, teacher_dir, sweep, init_from)
  if not check_config(workdir, config):                       # before teachers are trained/loaded:
    uses_teachers = any(m.uses_teachers for m in members)
    check_resources(method, suite, workdir, loop_cfg, sweep.size, len(jax.devices()),
                    *(teacher_memory(teacher_dir, suite, sweep, loop_cfg.seed) if uses_teachers else (0, False)))
    if init_from:
      first_stage_checkpoint(init_from, method, config)
  with writing(workdir):
    return _run(method_name, benchmark, suite, tasks, configs, method, loop_cfg, workdir, teacher_dir,
                teacher_preset, backend, tensorboard, progress_bar, exit_after_checkpoint, sweep, init_from)


def _run(method_name, benchmark, suite, tasks, configs, method, loop_cfg, workdir, teacher_dir, teacher_preset,
         backend, tensorboard, progress_bar, exit_after_checkpoint, sweep, init_from) -> dict:
  """`run` once WORKDIR's lock is held."""
  uses_teachers = any(m.uses_teachers for m in sweep_lib.member_methods(method, sweep))
  metas = teachers = None
  if uses_teachers or (teacher_dir and teacher_preset is not None):
    metas = ensure_teachers(benchmark, suite, teacher_dir, teacher_preset, backend, tensorboard, progress_bar,
                            loop_cfg.seed, len(set(sweep.seeds)))
  elif teachers_lib.complete(teacher_dir):
    metas = [teachers_lib.load_metas(member_dir(teacher_dir, m), suite) for m in range(teacher_members(teacher_dir))]
  index, per_member = teacher_sets_of_members(sweep, loop_cfg.seed, 0 if metas is None else len(metas))
  if metas is not None and sweep.size > 1:
    print(f'teachers: each member uses the teacher set of its seed in {teacher_dir}' if per_member else
          f'teachers: {teacher_dir} holds {len(metas)} teacher set(s) for seeds {min(sweep.seeds)}..'
          f'{max(sweep.seeds)}, so every member uses the first set (seed {loop_cfg.seed})')
  if uses_teachers:
    sets = {i: teachers_lib.load(member_dir(teacher_dir, i), suite) for i in sorted(set(index))}
    teachers = [sets[i] for i in index] if per_member else sets[0]
    method = build_method(method_name, tasks, configs, sets[0].cfg)
  state, history, wall, _, diverged = train(method, benchmark, suite, loop_cfg, workdir, teachers, backend,
                                            tensorboard, progress_bar, exit_after_checkpoint,
                                            teacher_dir=teacher_dir, sweep=sweep,
                                            aux_axis=0 if uses_teachers and per_member else None,
                                            init_from=init_from)
  del state
  reference = None
  if metas is not None:
    reference = np.array([teacher_returns(metas[i]) for i in index])
  results = dict(benchmark=benchmark, method=method.name, seed=loop_cfg.seed, wall_seconds=wall,
                 **sweep_results(suite.task_names, sweep, loop.best_returns(history), reference, diverged,
                                 history[-1].get('success')),
                 **provenance())
  if sweep.size == 1:
    results['tasks'] = results['members'][0]['tasks']
  _write_results(workdir, results)
  if jax.process_index() == 0:
    if sweep.size == 1:
      print_table(results['tasks'])
    else:
      print_summary(results['summary'])
    print(f'{wall:.0f} s ({method.name}); results in {os.path.join(workdir, RESULTS_FILE)}')
  return results


# ---- evaluation of a finished (or running) run ----

def restore(workdir: str, backend: str = 'auto', member: int = 0):
  """(method, learner, config) of sweep member `member` (default: the only one of a plain run) in the newest valid
  checkpoint of any run directory; the method carries the member's swept values."""
  method, learners, config, sweep = restore_members(workdir, backend)
  if not 0 <= member < sweep.size:
    raise ValueError(f'--member={member} is not allowed: {workdir} has members 0..{sweep.size - 1}')
  return sweep_lib.member_methods(method, sweep)[member], loop.member(learners, member), config


def restore_members(workdir: str, backend: str = 'auto'):
  """(method, learners [S, ...], config, sweep) of the newest valid checkpoint of any run directory."""
  config = load_run_config(workdir)
  suite = make_suite(config['benchmark'], backend=backend)
  sweep = config_sweep(config)
  teacher_cfg = None
  if config.get('teacher_dir') and teachers_lib.complete(config['teacher_dir']):
    teacher_cfg = teachers_lib.load_config(config['teacher_dir'])
  try:
    method = build_method(config['method'], TaskInfo.from_suite(suite), config, teacher_cfg)
  except (KeyError, TypeError) as e:
    raise checkpoint.CheckpointError(f'{os.path.join(workdir, CONFIG_FILE)} is not a complete run config: {e}') from e
  like = jax.eval_shape(lambda: loop.init_members(sweep, method, suite))
  manager = checkpoint.CheckpointManager(os.path.join(workdir, 'checkpoints'))
  try:
    state, _ = manager.restore(like)
  finally:
    manager.close()
  return method, state.learner, config, sweep


def config_sweep(config: dict) -> Sweep:
  """The sweep a run's config.json describes (a plain run: one member at its seed)."""
  return Sweep.from_json(config['sweep']) if 'sweep' in config else sweep_lib.single(config.get('seed', 0))


def member_teacher_dir(config: dict, member: int) -> Optional[str]:
  """The complete teacher set sweep member `member` of a run (its config.json) learned from: its seed's set when
  the teacher dir holds one per seed, else the dir's one set; None when the run names no complete set."""
  teacher_dir = config.get('teacher_dir')
  if not teacher_dir:
    return None
  sweep = config_sweep(config)
  own = member_dir(teacher_dir, sweep.seeds[member] - config.get('seed', 0))
  path = own if teachers_lib.complete(own) else teacher_dir
  return path if teachers_lib.complete(path) else None


def evaluate_checkpoint(workdir: str, episodes: Optional[int] = None, evaluate_teachers: bool = False,
                        backend: str = 'auto', seed: int = 0, member: Optional[int] = None) -> List[dict]:
  """Restores the newest checkpoint of any method's WORKDIR and evaluates its members (all, or `member`) and, if
  asked, their teachers over `episodes` deterministic episodes per task; returns one table per member
  [{'member', 'seed', 'values', 'tasks': rows}]."""
  if episodes is not None and episodes < 1:
    raise ValueError(f'--episodes must be >= 1, got {episodes}')
  method, learners, config, sweep = restore_members(workdir, backend)
  members = range(sweep.size) if member is None else [member]
  if member is not None and not 0 <= member < sweep.size:
    raise ValueError(f'--member={member} is not allowed: {workdir} has members 0..{sweep.size - 1}')
  member_methods = sweep_lib.member_methods(method, sweep)
  episodes = episodes or config['loop']['eval_episodes']
  eval_suite = make_suite(config['benchmark'], num_envs=episodes, backend=backend)
  key = jax.random.key(seed)
  out = []
  for m in members:
    returns = np.asarray(loop.evaluate(loop.member(learners, m), key, member_methods[m], eval_suite)).mean(axis=1)
    reference = None
    m_dir = member_teacher_dir(config, m)
    if m_dir:
      if evaluate_teachers:
        teachers = teachers_lib.load(m_dir, eval_suite)
        reference = np.asarray(teachers_lib.evaluate(teachers, key, eval_suite)).mean(axis=1)
      else:   # their training evaluations: teacher.json alone, no parameters or replay data
        reference = teacher_returns(teachers_lib.load_metas(m_dir, eval_suite))
    elif evaluate_teachers:
      raise FileNotFoundError(f'run {workdir} has no teachers to evaluate')
    out.append(dict(member=m, seed=sweep.seeds[m], values=sweep.member(m),
                    tasks=results_table(eval_suite.task_names, returns, reference)))
  return out
