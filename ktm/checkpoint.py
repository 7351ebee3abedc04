"""Small, atomic, verified file helpers over orbax: pytrees, JSON, and directories that appear whole or not at all.

Every checkpoint directory (`save_pytree`, and each step of a `CheckpointManager`) gets a manifest written LAST:
the size and sha256 of every file in it. Restoring verifies it first, so a flipped bit, a truncated or deleted
file, or a write that never finished (no manifest) is detected before any array is read. Orbax has no such check
of its own (its zarr3 crc32c covers only shard indexes, and OCDBT checks no data). A `CheckpointManager` whose
newest checkpoint fails the check reports that in one line and restores the newest valid one.

Every failure to read names the file and raises `CheckpointError` (or FileNotFoundError), never an orbax internal.
"""

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from typing import Any, Callable, Iterator, List, Optional, Sequence, Set, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as preservation
from jax.experimental import multihost_utils

MANIFEST = 'ktm_manifest.json'
_BLOCK = 8 << 20


class CheckpointError(RuntimeError):
  """A checkpoint file or directory exists but cannot be read (corrupt, incomplete or of another shape)."""


def is_key(x) -> bool:
  """Whether `x` (an array or ShapeDtypeStruct) holds typed PRNG keys."""
  return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _storable(x):
  """PRNG keys as their uint32 key data (numpy when this process holds all of it: orbax refuses host-local
  jax.Arrays across processes)."""
  if is_key(x):
    x = jax.random.key_data(x)
    if jax.process_count() > 1 and x.is_fully_addressable:
      x = np.asarray(x)
  return x


def _flat(tree: Any) -> dict:
  """{'path/to/leaf': leaf} without zero-size leaves (orbax cannot save those; `_unflat` recreates them), PRNG keys
  as their key data."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): _storable(x) for p, x in leaves if x.size > 0}


def _unflat(flat: dict, like: Any) -> Any:
  paths, treedef = jax.tree_util.tree_flatten_with_path(like)
  leaves = []
  for p, x in paths:
    if x.size == 0:
      leaves.append(jnp.zeros(x.shape, x.dtype))
    else:
      value = flat[jax.tree_util.keystr(p)]
      leaves.append(jax.random.wrap_key_data(value) if is_key(x) else value)
  return jax.tree.unflatten(treedef, leaves)


def _abstract(like: Any) -> dict:
  def one(x):
    sharding = getattr(x, 'sharding', None)
    if is_key(x):
      data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(x.shape, x.dtype))
      return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=sharding)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
  paths = jax.tree_util.tree_flatten_with_path(like)[0]
  return {jax.tree_util.keystr(p): one(x) for p, x in paths if x.size > 0}


def _single_process_checkpointer() -> ocp.StandardCheckpointer:
  """A checkpointer for this process's own files (teacher sets): across processes, no barriers with the others."""
  if jax.process_count() == 1:
    return ocp.StandardCheckpointer()
  me = jax.process_index()
  return ocp.StandardCheckpointer(multiprocessing_options=ocp.options.MultiprocessingOptions(
      primary_host=me, active_processes={me}, barrier_sync_key_prefix=f'ktm-process-{me}'))


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(_BLOCK), b''):
      digest.update(block)
  return digest.hexdigest()


def _files(directory: str) -> List[str]:
  """Relative paths of every file under `directory` except the manifest, sorted."""
  out = []
  for root, _, names in os.walk(directory):
    out += [os.path.relpath(os.path.join(root, n), directory) for n in names]
  return sorted(f for f in out if f != MANIFEST)


def write_manifest(directory: str) -> None:
  """Records size and sha256 of every file under `directory` in MANIFEST (atomically, fsync'ed): call it last."""
  files = {f: dict(size=os.path.getsize(os.path.join(directory, f)), sha256=_sha256(os.path.join(directory, f)))
           for f in _files(directory)}
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.json')
  try:
    with os.fdopen(fd, 'w') as f:
      json.dump(dict(format=1, files=files), f, indent=1)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, os.path.join(directory, MANIFEST))
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def problem(directory: str) -> Optional[str]:
  """None if `directory` matches its manifest, else the first problem in a few words: no manifest (a write that
  did not finish), a missing file, a wrong size (truncated) or a wrong sha256 (corrupt). Files added after the
  manifest are ignored."""
  if not os.path.isdir(directory):
    return 'missing'
  path = os.path.join(directory, MANIFEST)
  if not os.path.isfile(path):
    return f'incomplete (no {MANIFEST}: the write did not finish)'
  try:
    with open(path) as f:
      files = json.load(f)['files']
  except (ValueError, KeyError, TypeError) as e:
    return f'corrupt ({MANIFEST} unreadable: {e})'
  for name, want in files.items():
    full = os.path.join(directory, name)
    if not os.path.isfile(full):
      return f'incomplete ({name} is missing)'
    size = os.path.getsize(full)
    if size != want['size']:
      return f'corrupt ({name} has {size} bytes, expected {want["size"]})'
    if _sha256(full) != want['sha256']:
      return f'corrupt ({name} fails its sha256 check)'
  return None


def verify(directory: str) -> None:
  """Raises CheckpointError naming `directory` and its `problem`, if it has one."""
  why = problem(directory)
  if why is not None:
    raise CheckpointError(f'cannot restore checkpoint {directory}: it is {why}')


_OS_ERRORS = ((errno.ENOSPC, 'No space left on device'), (errno.EDQUOT, 'Disk quota exceeded'),
              (errno.EROFS, 'Read-only file system'), (errno.EACCES, 'Permission denied'))


@contextlib.contextmanager
def _orbax_call(directory: str) -> Iterator[None]:
  """Runs orbax quietly (its background threads log each failure with several tracebacks) and turns its wrapped
  OS failures (a full disk, a read-only or forbidden directory) into an OSError naming `directory`."""
  logger = logging.getLogger('absl')
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  except Exception as e:  # orbax/tensorstore wrap OS errors in ValueError and others
    if isinstance(e, OSError):
      raise
    for code, text in _OS_ERRORS:
      if text in str(e):
        raise OSError(code, os.strerror(code), directory) from e
    raise
  finally:
    logger.setLevel(level)


def save_pytree(path: str, tree: Any) -> None:
  """Writes `tree` (arrays, PRNG keys, scalars) to a new orbax checkpoint directory at `path`, then its manifest."""
  path = os.path.abspath(path)
  checkpointer = _single_process_checkpointer()
  try:
    with _orbax_call(path):
      checkpointer.save(path, _flat(tree))
      checkpointer.wait_until_finished()
  finally:
    checkpointer.close()
  write_manifest(path)


def restore_pytree(path: str, like: Any) -> Any:
  """Reads the checkpoint at `path` into the structure, shapes and dtypes of `like` (arrays or ShapeDtypeStructs),
  after verifying its manifest (CheckpointError if it fails)."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f'checkpoint not found: {path}')
  verify(path)
  checkpointer = _single_process_checkpointer()
  try:
    with _orbax_call(path):
      return _unflat(checkpointer.restore(path, _abstract(like)), like)
  except Exception as e:  # orbax raises many types; callers get one, naming the file
    raise CheckpointError(f'cannot restore checkpoint {path}: {type(e).__name__}: {str(e)[:500]}') from e
  finally:
    checkpointer.close()


def write_json(path: str, obj: Any) -> None:
  """Writes JSON atomically (temporary file, then rename)."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.json')
  with os.fdopen(fd, 'w') as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)


def read_json(path: str) -> Any:
  if not os.path.isfile(path):
    raise FileNotFoundError(f'file not found: {path}')
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CheckpointError(f'corrupt JSON in {path}: {e}') from e


@contextlib.contextmanager
def atomic_directory(path: str, overwrite: bool = False) -> Iterator[str]:
  """Yields a temporary sibling directory; on success it replaces `path` in one rename.

  An existing `path` raises FileExistsError unless `overwrite`; on failure nothing at `path` changes.
  """
  path = os.path.abspath(path)
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f'{path} already exists; pass overwrite=True (--overwrite) to replace it')
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=f'.{os.path.basename(path)}.tmp-')
  try:
    yield tmp
    if os.path.exists(path):
      old = tempfile.mkdtemp(dir=parent, prefix=f'.{os.path.basename(path)}.old-')
      os.replace(path, os.path.join(old, 'x'))
      os.replace(tmp, path)
      shutil.rmtree(old)
    else:
      os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)


def _stderr_line(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


@dataclasses.dataclass
class _KeptSteps:
  """orbax preservation policy: keep the checkpoints whose step is in `steps` (a set that may grow)."""
  steps: Set[int]

  def should_preserve(self, checkpoints, *, context) -> List[bool]:
    del context
    return [c.step in self.steps for c in checkpoints]


class CheckpointManager:
  """Numbered, verified checkpoints of (state pytree, JSON-able extras) under `directory`; the newest
  `max_to_keep` (>= 2) are kept, and also every step in `keep_steps` (e.g. the loop's stage boundaries), each
  written atomically (orbax) and then given its manifest.

  `restore` uses the newest checkpoint that passes `verify` and restores cleanly; when it has to skip newer ones it
  reports them in ONE line through `report` (default: stderr) and keeps it in `restore_message`. `restored_step`
  is the step it used. Nothing is created on disk before the first `save`.
  """

  def __init__(self, directory: str, max_to_keep: int = 2, report: Optional[Callable[[str], None]] = _stderr_line,
               keep_steps: Sequence[int] = ()):
    if max_to_keep < 2:
      raise ValueError(f'max_to_keep = {max_to_keep} is not allowed: must be >= 2 (a fallback must exist)')
    self.directory = os.path.abspath(directory)
    self.report = report
    self.restored_step: Optional[int] = None
    self.restore_message: Optional[str] = None
    self._kept = _KeptSteps(set(keep_steps))
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(
            create=False, cleanup_tmp_directories=True,
            preservation_policy=preservation.AnyPreservationPolicy([preservation.LatestN(max_to_keep), self._kept])),
        item_names=('state', 'extra'))

  def keep(self, step: int) -> None:
    """Keep checkpoint `step` too (once written), like the `keep_steps` (a stage that ended early: its end)."""
    self._kept.steps.add(step)

  def all_steps(self) -> List[int]:
    """Every checkpoint step on disk, newest first (not verified)."""
    return sorted(self._manager.all_steps(), reverse=True)

  def latest_step(self) -> Optional[int]:
    """The newest checkpoint step on disk (not verified: `restore` falls back if it is bad), or None."""
    return self._manager.latest_step()

  def step_directory(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state: Any, extra: Any) -> None:
    """Writes checkpoint `step`. Steps >= `step` already on disk are leftovers of a run that resumed before them
    (they failed verification), so they are deleted first."""
    os.makedirs(self.directory, exist_ok=True)
    stale = [s for s in self.all_steps() if s >= step]
    for s in stale:
      self._manager.delete(s)
    if stale:
      self._manager.reload()
    with _orbax_call(self.directory):
      self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_flat(state)),
                                                         extra=ocp.args.JsonSave(extra)))
      self._manager.wait_until_finished()
    if jax.process_count() > 1:   # every process has written its shards; one writes the manifest
      multihost_utils.sync_global_devices(f'ktm checkpoint {step} written')
    if jax.process_index() == 0:
      write_manifest(self.step_directory(step))
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'ktm checkpoint {step} manifest')

  def _restore_step(self, like: Any, step: int) -> Tuple[Any, Any]:
    """Checkpoint `step` after verifying it; CheckpointError('<what is wrong>') if it is not usable."""
    why = problem(self.step_directory(step))
    if why is not None:
      raise CheckpointError(why)
    try:
      with _orbax_call(self.step_directory(step)):
        out = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(like)), extra=ocp.args.JsonRestore()))
      return _unflat(out.state, like), out.extra
    except MemoryError:
      raise
    except Exception as e:  # orbax raises many types; callers get one
      raise CheckpointError(f'unreadable ({type(e).__name__}: {" ".join(str(e).split())[:300]})') from e

  def restore(self, like: Any, step: Optional[int] = None) -> Tuple[Any, Any]:
    """(state, extra) of checkpoint `step`, shaped like `like`; by default the newest VALID one (see the class
    docstring). Raises FileNotFoundError if there is none, CheckpointError if none is valid (or `step` is not)."""
    steps = self.all_steps() if step is None else [step]
    if not steps:
      raise FileNotFoundError(f'no checkpoint in {self.directory}')
    problems = []
    for s in steps:
      try:
        result = self._restore_step(like, s)
      except CheckpointError as e:
        problems.append(f'checkpoint {s} is {e}')
        continue
      self.restored_step = s
      if problems:
        self.restore_message = f'warning: {"; ".join(problems)} in {self.directory}; using checkpoint {s}'
        if self.report is not None:
          self.report(self.restore_message)
      return result
    raise CheckpointError(f'no usable checkpoint in {self.directory}: {"; ".join(problems)}')

  def close(self) -> None:
    self._manager.close()
