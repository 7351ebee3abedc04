"""The uniform-random policy's return per task (the lower reference of rliable's normalized score), measured once
and cached in a small JSON next to the report.

Measured as the runs evaluate: `ktm.rollout.evaluate` over `episodes` episodes per task of the suite's episode
length (an episode's return stops at its first termination), with actions uniform in [-1, 1] per dimension drawn
from `jax.random.key(seed)`; the value per task is the mean over the episodes.
"""

import json
import os
from typing import Dict, Optional

import numpy as np

CACHE_NAME = 'random_returns.json'


def measure(benchmark: str, episodes: int = 10, seed: int = 0) -> Dict[str, Dict[str, float]]:
  """task -> {'mean', 'std', 'min', 'max'} over `episodes` uniform-random episodes (std with ddof = 1)."""
  import jax  # pylint: disable=import-outside-toplevel
  from ktm import rollout  # pylint: disable=import-outside-toplevel
  from ktm.envs import make_suite  # pylint: disable=import-outside-toplevel
  suite = make_suite(benchmark, num_envs=episodes, backend='native')
  policy = lambda params, obs, key: rollout.uniform_actions(key, suite)
  totals = np.asarray(jax.jit(lambda key: rollout.evaluate(policy, None, key, suite))(jax.random.key(seed)))
  return {t: dict(mean=float(r.mean()), std=float(r.std(ddof=1)), min=float(r.min()), max=float(r.max()))
          for t, r in zip(suite.task_names, totals.astype(np.float64))}


def load_or_measure(path: str, benchmarks, episodes: int = 10, seed: int = 0, measure_fn=measure,
                    command: Optional[str] = None) -> dict:
  """{benchmark: {task: stats}} from the JSON at `path`; benchmarks missing there are measured with `measure_fn`
  and added to the file (with the episodes and seed that produced them). Never re-measures a cached benchmark; a
  benchmark that is no buildable suite (ValueError, e.g. a test's synthetic one) is left out. `command`, the
  command line that measured, is recorded beside each new benchmark."""
  cache = {}
  if os.path.exists(path):
    with open(path) as f:
      cache = json.load(f)
  measured = {}
  for b in [b for b in benchmarks if b not in cache.get('benchmarks', {})]:
    try:
      measured[b] = measure_fn(b, episodes, seed)
    except ValueError:
      continue
  if measured:
    cache.setdefault('how', f'ktm.report.random_policy.measure: {episodes} episodes per task of uniform-random '
                            f'actions in [-1, 1], jax.random.key({seed}), native MuJoCo, 1000-step episodes')
    cache.setdefault('benchmarks', {}).update(measured)
    cache.setdefault('measured_by', {}).update({b: command for b in measured})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
      json.dump(cache, f, indent=1, sort_keys=True)
  return {b: cache['benchmarks'][b] for b in benchmarks if b in cache.get('benchmarks', {})}


def means(tasks: Dict[str, Dict[str, float]]) -> Dict[str, float]:
  """task -> mean return, from one benchmark's cached stats."""
  return {t: v['mean'] for t, v in tasks.items()}


def describe(path: str) -> str:
  """How the cached values were measured (the cache's 'how'), and where they are."""
  if not os.path.exists(path):
    return 'not measured'
  with open(path) as f:
    how = json.load(f).get('how', 'how: not recorded')
  return f'{how}; cached in `{path}`'
