"""Small, atomic file helpers over orbax: pytrees, JSON, and directories that appear whole or not at all.

Every failure to read names the file and raises `CheckpointError` (or FileNotFoundError), never an orbax internal.
"""

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint file or directory exists but cannot be read."""


def _flat(tree: Any) -> dict:
  """{'path/to/leaf': leaf} without zero-size leaves (orbax cannot save those; `_unflat` recreates them)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): x for p, x in leaves if x.size > 0}


def _unflat(flat: dict, like: Any) -> Any:
  paths, treedef = jax.tree_util.tree_flatten_with_path(like)
  leaves = [flat[jax.tree_util.keystr(p)] if x.size > 0 else jnp.zeros(x.shape, x.dtype) for p, x in paths]
  return jax.tree.unflatten(treedef, leaves)


def _abstract(like: Any) -> dict:
  return _flat(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), like))


def save_pytree(path: str, tree: Any) -> None:
  """Writes `tree` (arrays, PRNG keys, scalars) to a new orbax checkpoint directory at `path`."""
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.abspath(path), _flat(tree))
  checkpointer.wait_until_finished()
  checkpointer.close()


def restore_pytree(path: str, like: Any) -> Any:
  """Reads the checkpoint at `path` into the structure, shapes and dtypes of `like` (arrays or ShapeDtypeStructs)."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f'checkpoint not found: {path}')
  checkpointer = ocp.StandardCheckpointer()
  try:
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


class CheckpointManager:
  """Numbered checkpoints of (state pytree, JSON-able extras) under `directory`, newest kept, atomic per step."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        item_names=('state', 'extra'))

  def latest_step(self):
    return self._manager.latest_step()

  def save(self, step: int, state: Any, extra: Any) -> None:
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_flat(state)),
                                                       extra=ocp.args.JsonSave(extra)))
    self._manager.wait_until_finished()

  def restore(self, like: Any, step=None):
    """(state, extra) of checkpoint `step` (default: the newest), shaped like `like`."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {self.directory}')
    try:
      out = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(_abstract(like)),
                                                                extra=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types; callers get one, naming the directory
      raise CheckpointError(f'cannot restore checkpoint {step} in {self.directory}: {type(e).__name__}: '
                            f'{str(e)[:500]}') from e
    return _unflat(out.state, like), out.extra

  def close(self) -> None:
    self._manager.close()
