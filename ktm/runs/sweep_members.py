"""Where each sweep member of a run lives: its devices (the 'member' mesh), the process that writes its files, its
directory (WORKDIR for member 0, WORKDIR/member_<m> for m > 0), and the teacher set it learns from."""

import os
from typing import List, Optional, Tuple

import jax
import numpy as np

from ktm import loop
from ktm import sweep as sweep_lib
from ktm import teachers as teachers_lib
from ktm.sweep import Sweep


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


def config_sweep(config: dict) -> Sweep:
  """The sweep a run's config.json describes (a plain run: one member at its seed)."""
  return Sweep.from_json(config['sweep']) if 'sweep' in config else sweep_lib.single(config.get('seed', 0))


def teacher_members(teacher_dir: Optional[str]) -> int:
  """How many members' complete teacher sets TEACHER_DIR holds (member 0 in TEACHER_DIR, m in member_<m>/)."""
  n = 0
  while teacher_dir and teachers_lib.complete(member_dir(teacher_dir, n)):
    n += 1
  return n


def teacher_sets_of_members(sweep: Sweep, seed: int, available: int) -> Tuple[List[int], bool]:
  """(the teacher set of each member, whether they differ): member of seed `seed + i` uses set i when TEACHER_DIR
  holds `available` sets covering every member's seed and the seeds differ, else every member uses set 0."""
  index = [s - seed for s in sweep.seeds]
  per_member = available > 0 and len(set(sweep.seeds)) > 1 and max(index) < available
  return (index if per_member else [0] * sweep.size), per_member


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
