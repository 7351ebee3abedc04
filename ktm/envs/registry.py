"""Registered suites and `make_suite`.

A suite is named by a registered name, a single task, or a reference 'module.path:ATTR' (or 'file.py:ATTR') to a
user definition (ktm/envs/custom.py): the module is imported, which registers its tasks, and ATTR names the suite.
"""

import importlib
import importlib.util
import os
import sys
import traceback

import jax
from mujoco import rollout as mj_rollout

from ktm.envs import gym_suite
from ktm.envs import metaworld_suite
from ktm.envs import models as models_lib
from ktm.envs import task_id
from ktm.envs import tasks as tasks_lib
from ktm.envs.suite import Suite, _group_info
from ktm.envs.types import Group, SuiteDef

BENCHMARK_B = ('Ant', 'Hopper', 'Walker2d', 'HalfCheetah', 'InvertedPendulum',
               'InvertedDoublePendulum')

# suite name -> list of groups, each a tuple of task names sharing one kinematic tree.
SUITES = {
    'halfcheetah_group': [tuple(v.name for v in models_lib.HALFCHEETAH_VARIANTS)],
    'benchmark_b': [(name,) for name in BENCHMARK_B],
    'pendulum_group': [tuple(v.name for v in models_lib.PENDULUM_VARIANTS)],
}
GYM_SUITES = {}   # name -> gym_suite.GymSuiteDef (ktm.envs.custom.gym_suite)
# Suites registered on first use where their package imports (else asking for one raises its install line).
OPTIONAL_GYM_SUITES = {metaworld_suite.NAME: metaworld_suite.definition}
SINGLE_TASKS = tuple(tasks_lib.TASKS) + tuple(models_lib.VARIANTS)   # the built-in ones
_KTM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FILE_MODULES = {}   # absolute path -> module, for 'file.py:ATTR' references


def task_spec(name: str) -> tasks_lib.TaskSpec:
  """The TaskSpec of a base task or of a registered variant."""
  base = models_lib.VARIANTS[name].base if name in models_lib.VARIANTS else name
  return tasks_lib.TASKS[base]


def register_suite(name: str, groups: list[tuple[str, ...]]) -> None:
  """Adds a suite (a list of groups of task names); a name taken by a different suite raises ValueError."""
  groups = [tuple(g) for g in groups]
  if name in SUITES and SUITES[name] != groups:
    raise ValueError(f'a different suite named {name!r} is already registered')
  SUITES[name] = groups


def _import_module(module: str, reference: str):
  """Imports 'pkg.mod' (the working directory on sys.path, as `python -m` has it) or a file 'path/to/mod.py'."""
  try:
    if module.endswith('.py'):
      path = os.path.abspath(module)
      if path not in _FILE_MODULES:
        if not os.path.isfile(path):
          raise FileNotFoundError(f'no file {path}')
        spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _FILE_MODULES[path] = mod
      return _FILE_MODULES[path]
    if os.getcwd() not in sys.path and '' not in sys.path:
      sys.path.insert(0, os.getcwd())
    return importlib.import_module(module)
  except (ImportError, FileNotFoundError) as e:
    raise ValueError(f'cannot import the module of suite {reference!r}: {e}') from e
  except Exception as e:  # pylint: disable=broad-except  (the user's module failed: say where, in one line)
    frames = [f for f in traceback.extract_tb(e.__traceback__)       # the user's own files, not ours or libraries'
              if not f.filename.startswith(('<', _KTM_DIR, sys.prefix, sys.base_prefix))]
    where = f' ({frames[-1].filename}, line {frames[-1].lineno})' if frames else ''
    raise ValueError(f'importing the module of suite {reference!r} failed{where}: {type(e).__name__}: {e} '
                     '(KTM_TRACEBACK=1 shows the traceback)') from e


def resolve_reference(reference: str):
  """The object named by 'module.path:ATTR' or 'file.py:ATTR' (importing the module registers its definitions)."""
  module, _, attr = reference.rpartition(':')
  if not module or not attr:
    raise ValueError(f"a suite reference is 'module.path:ATTR', got {reference!r}")
  mod = _import_module(module, reference)
  if not hasattr(mod, attr):
    raise ValueError(f'module {module!r} has no {attr!r} (suite reference {reference!r})')
  return getattr(mod, attr)


def register_gym_suite(suite_def: gym_suite.GymSuiteDef) -> None:
  """Adds a gymnasium suite; a name taken by a different suite raises ValueError."""
  old = GYM_SUITES.get(suite_def.name)
  if suite_def.name in SUITES or (old is not None and old.task_names != suite_def.task_names):
    raise ValueError(f'a different suite named {suite_def.name!r} is already registered')
  GYM_SUITES[suite_def.name] = suite_def


def _gym_definition(name):
  """The GymSuiteDef `name` refers to ('gym:ID,ID,...', a registered gymnasium suite, a reference to one, or the
  object), else None."""
  if isinstance(name, gym_suite.GymSuiteDef):
    return name
  if not isinstance(name, str):
    return None
  if name.startswith('gym:'):
    return gym_suite.definition(name, [i.strip() for i in name[len('gym:'):].split(',') if i.strip()])
  if name in GYM_SUITES:
    return GYM_SUITES[name]
  if name in OPTIONAL_GYM_SUITES:
    register_gym_suite(OPTIONAL_GYM_SUITES[name]())
    return GYM_SUITES[name]
  if ':' in name and not name.startswith('single:'):
    obj = resolve_reference(name)
    return obj if isinstance(obj, gym_suite.GymSuiteDef) else None
  return None


def _groups_of(obj, reference: str) -> list[tuple[str, ...]]:
  """Groups of a user object: a custom.SuiteDef, custom.Group, TaskSpec or a registered name."""
  if isinstance(obj, SuiteDef):
    return [tuple(g) for g in obj.groups]
  if isinstance(obj, Group):
    return [obj.names]
  if isinstance(obj, tasks_lib.TaskSpec):
    return [(obj.name,)]
  if isinstance(obj, str) and ':' not in obj:
    return _resolve(obj)
  raise ValueError(f'{reference!r} is a {type(obj).__name__}, not a suite (make one with ktm.envs.custom.suite)')


def _resolve(name) -> list[tuple[str, ...]]:
  if not isinstance(name, str):
    return _groups_of(name, repr(name))
  if name in SUITES:
    return SUITES[name]
  if ':' in name and not name.startswith('single:'):
    return _groups_of(resolve_reference(name), name)
  single = name[len('single:'):] if name.startswith('single:') else name
  if single in tasks_lib.TASKS or single in models_lib.VARIANTS:
    return [(single,)]
  raise ValueError(f'unknown suite {name!r}; registered suites: {sorted(SUITES) + sorted(GYM_SUITES)}; '
                   f"gymnasium ones: 'gym:ID,ID,...', {sorted(OPTIONAL_GYM_SUITES)} (optional packages); or a "
                   f"single task ('single:NAME' or NAME) from {sorted(SINGLE_TASKS)}; or a user suite "
                   "'module.path:SUITE'")


# 'auto' takes MJX only on an accelerator and from this many envs per task. Measured on an H200 (WORKSPACE.md, GPU):
# MJX steps halfcheetah_group at 366 env-steps/s at E = 1 and 29.6k at E = 64 (a step is a long chain of small
# kernels), 149k at E = 512 and 350k at E = 4096, while the native backend through its host callback makes the paper's
# E = 1 KTM online epoch 8-10x faster than MJX there (290-367 vs 37 epochs/s).
MJX_MIN_ENVS = 512


def _pick_backend(backend: str, num_envs: int = 1, platform: str | None = None) -> str:
  if backend == 'auto':
    platform = platform or jax.default_backend()
    return 'mjx' if platform != 'cpu' and num_envs >= MJX_MIN_ENVS else 'native'
  if backend not in ('mjx', 'native'):
    raise ValueError(f"backend must be 'auto', 'mjx' or 'native', got {backend!r}")
  return backend


def make_suite(name, num_envs: int = 1, backend: str = 'auto',
               episode_length: int = 1000, nthread: int | None = None) -> Suite:
  """Builds a registered suite ('halfcheetah_group', 'benchmark_b', 'pendulum_group'), a
  single task ('Hopper', 'single:HalfCheetahBigTorso', ...), a user suite by reference
  ('my_module:SUITE', 'path/to/file.py:SUITE') or a user definition object (custom.SuiteDef).

  backend: 'auto' (native MuJoCo, except MJX on a GPU/TPU at num_envs >= MJX_MIN_ENVS), 'mjx' or 'native'.
  nthread: native rollout threads (default: all CPU cores).
  A gymnasium suite ('gym:Hopper-v5,InvertedPendulum-v5', ktm.envs.custom.gym_suite, or 'mt10': Meta-World MT10
  where metaworld is installed, ktm/envs/metaworld_suite.py) is stepped on the host: backend 'auto' or 'native'.
  NAME + '+task_id' (e.g. 'benchmark_b+task_id'): suite NAME with a one-hot of the task appended to every
  observation (ktm/envs/task_id.py).
  """
  if isinstance(name, str) and name.endswith(task_id.SUFFIX):
    return task_id.TaskIdSuite(make_suite(name[:-len(task_id.SUFFIX)], num_envs, backend, episode_length, nthread))
  gym_def = _gym_definition(name)
  if gym_def is not None:
    if backend not in ('auto', 'native'):   # native: stepped on the host (ktm.report's random policy asks for it)
      raise ValueError(f'suite {gym_def.name!r} steps gymnasium envs on the host: backend {backend!r} is not '
                       "available for it (use auto)")
    return gym_suite.GymSuite(gym_def, num_envs, episode_length)
  groups = _resolve(name)
  backend = _pick_backend(backend, num_envs)
  infos, mj_groups = [], []
  for names in groups:
    spec = task_spec(names[0])
    mj_models = [models_lib.build_model(n, spec.xml) for n in names]
    infos.append(_group_info(spec, names, mj_models))
    mj_groups.append((spec, mj_models))
  if backend == 'native':
    from ktm.envs import native  # pylint: disable=g-import-not-at-top
    nthread = os.cpu_count() if nthread is None else nthread
    pool = mj_rollout.Rollout(nthread=nthread if nthread > 1 else 0)
    be = native.NativeBackend([native.NativeGroup(s, ms, num_envs, pool, nthread)
                               for s, ms in mj_groups])
  else:
    from ktm.envs import mjx_backend  # pylint: disable=g-import-not-at-top
    be = mjx_backend.MjxBackend([mjx_backend.MjxGroup(s, ms) for s, ms in mj_groups])
  nvs = [ms[0].nv for _, ms in mj_groups]
  return Suite(infos, be, backend, num_envs, episode_length, nvs)
