"""One writer per directory: an exclusive `flock` on DIR/.ktm-lock for as long as a process writes into DIR.

Why flock on an open file, not a pid file created with O_EXCL: the kernel drops the lock when its last file
descriptor closes, so a holder that dies in any way (exception, SIGTERM, SIGKILL, power loss of a local disk's
host) leaves no stale lock to detect or to take over, and taking a free lock is one atomic call with no window in
which two processes both see it free. The file holds the holder's `pid host start-time command` only so that the
process refused can name it; a file whose process is gone is simply locked again and rewritten. (flock works on
local file systems and on NFS v4, where Linux maps it to a POSIX lock; it does not lock across hosts on NFS v3.)

When the holder leaves on an exception, the lock file is removed if it created it, and so are the directories the
lock had to create (DIR itself and its missing parents) if nothing else was written there: a refused command
leaves no trace.
"""

import contextlib
import datetime
import fcntl
import os
import platform
import sys
import time
from typing import Iterator, List, Optional

LOCK_FILE = '.ktm-lock'


class DirectoryBusy(OSError):
  """Another live process holds DIR's lock (its message names the process)."""


def _missing_dirs(path: str) -> List[str]:
  """PATH and those of its ancestors that do not exist yet, deepest first."""
  missing = []
  while not os.path.exists(path):
    missing.append(path)
    path = os.path.dirname(path)
  return missing


def holder(directory: str) -> str:
  """'PID <pid> on <host>, running since <time> (<command>)' as the holder of DIR's lock wrote it."""
  path = os.path.join(directory, LOCK_FILE)
  for _ in range(50):                 # the holder writes its line right after it takes the lock
    try:
      with open(path) as f:
        fields = f.read().split(' ', 3)
    except FileNotFoundError:
      fields = []
    if len(fields) == 4:
      pid, host, since, command = fields
      return f'PID {pid} on {host}, running since {since} ({command.strip()})'
    time.sleep(0.02)
  return 'a process that has not written its name yet'


def _try_lock(directory: str) -> Optional[int]:
  """An fd holding the flock of DIR/.ktm-lock (DIR exists), or None when another process holds it. A lock file
  unlinked by its previous holder between our open and our flock is not a lock: then we try again."""
  path = os.path.join(directory, LOCK_FILE)
  while True:
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:        # DIR was removed by a holder that left it empty
      os.makedirs(directory, exist_ok=True)
      continue
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      return None
    try:
      same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same = False
    if same:
      return fd
    os.close(fd)
    os.makedirs(directory, exist_ok=True)


@contextlib.contextmanager
def hold(directory: str, what: str = 'run') -> Iterator[None]:
  """Holds DIR's lock (creating DIR if needed) for the `with` block; raises DirectoryBusy naming the holder, having
  created nothing, when another process holds it. `what` names DIR in that message ('run', 'teacher directory')."""
  directory = os.path.abspath(directory)
  created = _missing_dirs(directory)
  new_file = not os.path.exists(os.path.join(directory, LOCK_FILE))
  os.makedirs(directory, exist_ok=True)
  fd = _try_lock(directory)
  if fd is None:                       # what we created, the holder needs: nothing to remove
    raise DirectoryBusy(f'{directory} is in use by another process: {holder(directory)}; it writes this {what}, so '
                        'this command stops here and writes nothing (wait for it to end, or stop it and re-run: the '
                        'run resumes from its last checkpoint)')
  since = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
  command = ' '.join([os.path.basename(sys.argv[0] or 'python')] + sys.argv[1:])
  os.ftruncate(fd, 0)
  os.pwrite(fd, f'{os.getpid()} {platform.node() or "?"} {since} {command}\n'.encode(), 0)
  ok = False
  try:
    yield
    ok = True
  finally:
    if not ok:
      _remove_created(directory, created, new_file)
    os.ftruncate(fd, 0)
    os.close(fd)                       # releases the flock


def _remove_created(directory: str, created: List[str], new_file: bool) -> None:
  """Removes the lock file we hold if we created it (`new_file`), then the directories in `created` if nothing
  else was written there."""
  if new_file:
    os.unlink(os.path.join(directory, LOCK_FILE))
  if not created or os.listdir(directory):
    return
  for path in created:
    try:
      os.rmdir(path)
    except OSError:                    # not empty (another process wrote there): keep it
      return
