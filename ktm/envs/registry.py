"""Registered suites and `make_suite`."""

import os

import jax
from mujoco import rollout as mj_rollout

from ktm.envs import models as models_lib
from ktm.envs import tasks as tasks_lib
from ktm.envs.suite import Suite, _group_info

BENCHMARK_B = ('Ant', 'Hopper', 'Walker2d', 'HalfCheetah', 'InvertedPendulum',
               'InvertedDoublePendulum')

# suite name -> list of groups, each a tuple of task names sharing one kinematic tree.
SUITES = {
    'halfcheetah_group': [tuple(v.name for v in models_lib.HALFCHEETAH_VARIANTS)],
    'benchmark_b': [(name,) for name in BENCHMARK_B],
    'pendulum_group': [tuple(v.name for v in models_lib.PENDULUM_VARIANTS)],
}
SINGLE_TASKS = tuple(tasks_lib.TASKS) + tuple(models_lib.VARIANTS)


def task_spec(name: str) -> tasks_lib.TaskSpec:
  """The TaskSpec of a base task or of a registered variant."""
  base = models_lib.VARIANTS[name].base if name in models_lib.VARIANTS else name
  return tasks_lib.TASKS[base]


def _resolve(name: str) -> list[tuple[str, ...]]:
  if name in SUITES:
    return SUITES[name]
  single = name[len('single:'):] if name.startswith('single:') else name
  if single in SINGLE_TASKS:
    return [(single,)]
  raise ValueError(f'unknown suite {name!r}; registered suites: {sorted(SUITES)}; or a '
                   f"single task ('single:NAME' or NAME) from {sorted(SINGLE_TASKS)}")


def _pick_backend(backend: str) -> str:
  if backend == 'auto':
    return 'native' if jax.default_backend() == 'cpu' else 'mjx'
  if backend not in ('mjx', 'native'):
    raise ValueError(f"backend must be 'auto', 'mjx' or 'native', got {backend!r}")
  return backend


def make_suite(name: str, num_envs: int = 1, backend: str = 'auto',
               episode_length: int = 1000, nthread: int | None = None) -> Suite:
  """Builds a registered suite ('halfcheetah_group', 'benchmark_b', 'pendulum_group') or a
  single task ('Hopper', 'single:HalfCheetahBigTorso', ...).

  backend: 'auto' (native MuJoCo on CPU, MJX on GPU/TPU), 'mjx' or 'native'.
  nthread: native rollout threads (default: all CPU cores).
  """
  groups = _resolve(name)
  backend = _pick_backend(backend)
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
