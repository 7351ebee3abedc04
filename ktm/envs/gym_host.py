"""Host side of the gymnasium backend: K tasks x N envs of gymnasium objects, stepped from one host callback.

The JAX program cannot carry a gymnasium env's state (an arbitrary Python object), so the envs live here and the
program carries a `token` per env instead: the reset seed, plus one per step since. The host keeps each env's token;
a row whose token differs from the host's (a new process, or a run restored from a checkpoint in this process) is
STALE: its env is re-created if missing and reset with the step's seed, no step is taken, and the suite ends the
interrupted episode there as truncated (ktm/envs/gym_suite.py).

Rows: the callback flattens its leading dims ([..., K, E], e.g. a sweep's members) into N rows per task; the envs
of (task k, N) are made once and reused while the program is, in row-major order. So one program must not call
back from several devices at once (shard_map): ktm.runs.sweep_members.member_mesh keeps a gym suite's sweep members
on one device.
"""

from typing import Callable, Sequence

import numpy as np


def scale_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
  """[-1, 1] actions [..., act_dim] -> the Box [low, high] in float64: low + (clip(a) + 1) / 2 * (high - low)."""
  a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
  return low + (a + 1.0) * 0.5 * (high - low)


class GymHost:
  """The envs of a gymnasium suite. factories[k]() makes task k's env; low/high [act_dim] are its action Box."""

  def __init__(self, factories: Sequence[Callable], lows: Sequence[np.ndarray], highs: Sequence[np.ndarray],
               obs_size: int):
    self.factories, self.lows, self.highs, self.obs_size = list(factories), list(lows), list(highs), obs_size
    self._envs = {}     # (k, n) -> list of n envs
    self._tokens = {}   # (k, n) -> uint32 [n], the token each env is at

  def _rows(self, k: int, n: int):
    if (k, n) not in self._envs:
      self._envs[(k, n)] = [None] * n
      self._tokens[(k, n)] = np.zeros(n, np.uint32)
    return self._envs[(k, n)], self._tokens[(k, n)]

  def _env(self, k: int, envs: list, i: int):
    if envs[i] is None:
      envs[i] = self.factories[k]()
    return envs[i]

  def _pad(self, obs) -> np.ndarray:
    obs = np.ravel(np.asarray(obs, np.float32))
    return np.pad(obs, (0, self.obs_size - obs.size))

  def _per_task(self, lead, fn):
    """Runs fn(k, n) -> tuple of per-row arrays [n, ...] for every task; stacks them to [*lead, ...] ([..., K, E])."""
    num_tasks, n = lead[-2], int(np.prod(lead[:-2], dtype=int)) * lead[-1]
    cols = [fn(k, n) for k in range(num_tasks)]
    return tuple(np.stack([np.asarray(c[j]).reshape(lead[:-2] + (lead[-1],) + np.shape(c[j])[1:]) for c in cols],
                          axis=len(lead) - 2) for j in range(len(cols[0])))

  def reset(self, seeds: np.ndarray):
    """Every env reset with its seed, seeds [..., K, E] uint32 -> (obs [..., K, E, obs_size] f32, tokens = seeds)."""
    def task(k, n):
      envs, tokens = self._rows(k, n)
      s = seeds[..., k, :].reshape(-1)
      tokens[:] = s
      return (np.stack([self._pad(self._env(k, envs, i).reset(seed=int(s[i]))[0]) for i in range(n)]),
              tokens.copy())
    return self._per_task(seeds.shape, task)

  def _step_row(self, k, envs, tokens, i, token, action, seed, limit):
    """One env: (next_obs, obs to act on next, reward, terminated, truncated, stale, success: info['success'] as
    1.0 / 0.0, NaN where the env does not report it)."""
    env = envs[i]
    if env is None or tokens[i] != token:
      obs = self._pad(self._env(k, envs, i).reset(seed=int(seed))[0])
      tokens[i] = seed
      return np.zeros_like(obs), obs, 0.0, False, True, True, np.nan
    next_obs, reward, terminated, truncated, info = env.step(scale_action(action, self.lows[k], self.highs[k]))
    next_obs = self._pad(next_obs)
    truncated = bool(truncated) or bool(limit)
    tokens[i] = (int(token) + 1) & 0xFFFFFFFF   # uint32, wrapping
    obs = self._pad(env.reset()[0]) if terminated or truncated else next_obs
    success = float(bool(info['success'])) if 'success' in info else np.nan
    return next_obs, obs, float(reward), bool(terminated), truncated, False, success

  def step(self, tokens: np.ndarray, actions: np.ndarray, seeds: np.ndarray, limits: np.ndarray):
    """tokens, seeds (for stale rows) uint32 and limits (the suite's time limit reached) bool [..., K, E]; actions
    [..., K, E, act_size] in [-1, 1] (each task reads its first act_dim). Returns next_obs, obs (after auto-reset)
    [..., K, E, obs_size] f32, reward f32, terminated, truncated, stale bool, success f32 (1 / 0 / NaN: not
    reported) and the new tokens uint32 [..., K, E].
    Ended episodes restart with env.reset() (no seed: the env's own generator, as gymnasium's vector envs)."""
    def task(k, n):
      envs, host_tokens = self._rows(k, n)
      a = actions[..., k, :, :len(self.lows[k])].reshape(n, -1)
      t, s, lim = (x[..., k, :].reshape(-1) for x in (tokens, seeds, limits))
      rows = [self._step_row(k, envs, host_tokens, i, t[i], a[i], s[i], lim[i]) for i in range(n)]
      types = (np.float32, np.float32, np.float32, bool, bool, bool, np.float32)
      return tuple(np.asarray(c, d) for c, d in zip(zip(*rows), types)) + (host_tokens.copy(),)
    return self._per_task(tokens.shape, task)
