"""Suites of gymnasium environments (any env with Box spaces), stepped on the host from inside compiled programs.

  from ktm.envs import custom
  SUITE = custom.gym_suite('my_gym', ['Hopper-v5', ('MyTask', make_my_env)])   # ids or (name, factory)

or `--benchmark=gym:Hopper-v5,InvertedPendulum-v5`. Like the native MuJoCo backend, one `jax.pure_callback` per
step moves all K x E envs (ktm/envs/gym_host.py); the suite pads observations with zeros to the largest task's
size, gives each task the first act_dim entries of the padded action mapped from [-1, 1] onto its action Box, and
restarts ended episodes itself.

Flags: `terminated` is the env's own (no bootstrap); `truncated` is the env's (e.g. gymnasium's TimeLimit) or the
suite's `episode_length`, whichever comes first. Seeds: env (k, e) is reset with seeds [k, e] drawn from the
reset key (`reset_seeds`); later episodes restart with env.reset() (the env's own generator, as gymnasium's vector
envs do).

Checkpoints: a gymnasium env's state is a Python object, so the run state carries only a token per env. On resume
the env is re-created (in a new process) and reset with a seed from the run's key, and the interrupted episode ends
there as truncated: that step's transition is (obs, action, reward 0, next_obs = obs, not terminated), its
episode's partial return is reported like any ended episode's. A resumed run therefore differs from an
uninterrupted one (by one such transition per env per resume and the episodes that follow).
"""

import dataclasses
import functools
import threading
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ktm import padding
from ktm.envs.gym_host import GymHost
from ktm.envs.types import EnvState, PhysicsState, StepOutput


@dataclasses.dataclass(frozen=True)
class GymTask:
  """One task: its name (teacher directories use it) and a function making its gymnasium env."""
  name: str
  factory: Callable


@dataclasses.dataclass(frozen=True)
class GymSuiteDef:
  """A gymnasium suite: `make_suite(gym_suite_def)` builds it."""
  name: str
  tasks: tuple[GymTask, ...]

  @property
  def task_names(self) -> tuple[str, ...]:
    return tuple(t.name for t in self.tasks)


def _fail(message: str):
  raise ValueError(' '.join(str(message).split()))


def make_env(env_id: str):
  """gymnasium.make(env_id), errors as one ValueError line."""
  import gymnasium  # pylint: disable=import-outside-toplevel
  try:
    return gymnasium.make(env_id)
  except Exception as e:  # pylint: disable=broad-except  (unknown ids, missing extras ...: one line)
    _fail(f'gymnasium cannot make {env_id!r}: {type(e).__name__}: {e}')


def task_of(entry) -> GymTask:
  """A GymTask from a gymnasium id ('Hopper-v5'), a (name, factory) pair or a GymTask."""
  if isinstance(entry, GymTask):
    return entry
  if isinstance(entry, str) and entry:
    return GymTask(entry, functools.partial(make_env, entry))
  if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str) and entry[0] and callable(entry[1]):
    return GymTask(*entry)
  _fail(f'a gymnasium task is an env id or a (name, factory) pair, got {entry!r}')


def spaces_of(task: GymTask):
  """(obs_dim, action low [act_dim], action high [act_dim]) of a task's env; Box spaces only, finite actions."""
  import gymnasium  # pylint: disable=import-outside-toplevel
  try:
    env = task.factory()
  except Exception as e:  # pylint: disable=broad-except  (any failure of user code is reported in one line)
    _fail(e if isinstance(e, ValueError) else
          f'gymnasium task {task.name!r}: its factory fails: {type(e).__name__}: {e}')
  obs_space, act_space = env.observation_space, env.action_space
  env.close()
  for what, space in (('observation', obs_space), ('action', act_space)):
    if not isinstance(space, gymnasium.spaces.Box):
      _fail(f'gymnasium task {task.name!r}: its {what} space is {space}, only Box spaces are supported')
  if len(act_space.shape) != 1 or not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
    _fail(f'gymnasium task {task.name!r}: its action space must be a 1-D Box with finite bounds, got {act_space}')
  return int(np.prod(obs_space.shape)), act_space.low.astype(np.float64), act_space.high.astype(np.float64)


def reset_seeds(key: jax.Array, shape) -> jnp.ndarray:
  """The seeds [K, E] (uint32) envs are reset with: random bits of `key`."""
  return jax.random.bits(key, shape, jnp.uint32)


def definition(name: str, entries: Sequence) -> GymSuiteDef:
  """A checked GymSuiteDef: tasks from ids / (name, factory) pairs, unique names, Box spaces (each env made once)."""
  tasks = tuple(task_of(e) for e in entries)
  if not tasks:
    _fail(f'gymnasium suite {name!r} has no tasks')
  names = [t.name for t in tasks]
  if len(set(names)) != len(names):
    _fail(f'gymnasium suite {name!r} lists a task twice: {names}')
  for t in tasks:
    spaces_of(t)
  return GymSuiteDef(name, tasks)


class GymSuite:
  """K gymnasium tasks x E envs with pure `reset(key)` / `step(state, actions)` (the interface of envs.Suite)."""

  backend_name = 'gym'

  def __init__(self, definition: GymSuiteDef, num_envs: int, episode_length: int):
    self.definition, self.num_envs, self.episode_length = definition, num_envs, episode_length
    spaces = [spaces_of(t) for t in definition.tasks]
    self.task_names = definition.task_names
    self.obs_dims = tuple(s[0] for s in spaces)
    self.act_dims = tuple(s[1].size for s in spaces)
    self.obs_size, self.act_size = max(self.obs_dims), max(self.act_dims)
    self.num_tasks = len(self.task_names)
    self.action_masks = padding.action_masks(self.act_dims, self.act_size)  # [K, act_size]
    self.host = GymHost([t.factory for t in definition.tasks], [s[1] for s in spaces], [s[2] for s in spaces],
                        self.obs_size)
    self._lock = threading.Lock()   # a sharded sweep's devices call back concurrently

  def _call(self, fn, shapes, *args):
    def host(*a):
      with self._lock:
        return fn(*(np.asarray(x) for x in a))
    return jax.pure_callback(host, shapes, *args, vmap_method='broadcast_all')

  def reset(self, key: jax.Array) -> EnvState:
    """All K x E envs reset with seeds `reset_seeds` of a subkey of `key`."""
    key, sub = jax.random.split(key)
    return self.reset_to(key, reset_seeds(sub, (self.num_tasks, self.num_envs)))

  def reset_to(self, key: jax.Array, seeds: jnp.ndarray) -> EnvState:
    """All envs reset with the given seeds [K, E] (uint32); `key` seeds the resets of stale envs later on."""
    shape = (self.num_tasks, self.num_envs)
    out = (jax.ShapeDtypeStruct(shape + (self.obs_size,), jnp.float32), jax.ShapeDtypeStruct(shape, jnp.uint32))
    obs, tokens = self._call(self.host.reset, out, jnp.asarray(seeds, jnp.uint32))
    return EnvState(physics=PhysicsState((tokens,), ()), obs=obs, step_count=jnp.zeros(shape, jnp.int32),
                    episode_return=jnp.zeros(shape, jnp.float32), key=key)

  def step(self, state: EnvState, actions: jnp.ndarray) -> tuple[EnvState, StepOutput]:
    """actions [K, E, act_size] in [-1, 1] (padded entries ignored) -> (state, StepOutput); see the module doc for
    stale envs (after a resume): done and truncated, next_obs = obs, reward 0."""
    shape = state.step_count.shape
    key, sub = jax.random.split(state.key)
    obs_struct = jax.ShapeDtypeStruct(shape + (self.obs_size,), jnp.float32)
    out = (obs_struct, obs_struct, jax.ShapeDtypeStruct(shape, jnp.float32)) + tuple(
        jax.ShapeDtypeStruct(shape, bool) for _ in range(3)) + (jax.ShapeDtypeStruct(shape, jnp.float32),
                                                                 jax.ShapeDtypeStruct(shape, jnp.uint32))
    step_count = state.step_count + 1
    next_obs, obs, reward, terminated, truncated, stale, success, tokens = self._call(
        self.host.step, out, state.physics.backend[0], actions.astype(jnp.float32), reset_seeds(sub, shape),
        step_count >= self.episode_length)
    next_obs = jnp.where(stale[..., None], state.obs, next_obs)
    done = terminated | truncated
    ep_return = state.episode_return + reward
    new_state = EnvState(physics=PhysicsState((tokens,), ()), obs=obs, step_count=jnp.where(done, 0, step_count),
                         episode_return=jnp.where(done, 0.0, ep_return), key=key)
    return new_state, StepOutput(next_obs=next_obs, reward=reward, terminated=terminated, truncated=truncated,
                                 done=done, episode_return=jnp.where(done, ep_return, 0.0), success=success)
