"""Checks before any work: WORKDIR writable, memory and disk enough for the run (ktm.resources), and WORKDIR's
writer lock held for as long as a command writes there."""

import contextlib
import errno
import os
from typing import Optional, Tuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from ktm import lock, loop, replay, resources
from ktm import teachers as teachers_lib
from ktm.envs import Suite
from ktm.methods import Method
from ktm.runs import sweep_members
from ktm.sweep import Sweep


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


def teacher_memory(teacher_dir: Optional[str], suite: Suite, sweep: Sweep, seed: int) -> Tuple[int, bool]:
  """(bytes of one teacher set as the chunks hold it, whether each member holds its own) for the complete sets in
  TEACHER_DIR (from teacher.json alone); (0, False) when it holds none yet."""
  available = sweep_members.teacher_members(teacher_dir)
  if not available:
    return 0, False
  metas = teachers_lib.load_metas(teacher_dir, suite)
  size = resources.teacher_set_bytes(metas, suite, teachers_lib.load_config(teacher_dir))
  return size, sweep_members.teacher_sets_of_members(sweep, seed, available)[1]


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
