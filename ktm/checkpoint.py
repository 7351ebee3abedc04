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
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint file or directory exists but cannot be read."""


def save_pytree(path: str, tree: Any) -> None:
  """Writes `tree` (arrays, PRNG keys, scalars) to a new orbax checkpoint directory at `path`."""
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.abspath(path), tree)
  checkpointer.wait_until_finished()
  checkpointer.close()


def restore_pytree(path: str, like: Any) -> Any:
  """Reads the checkpoint at `path` into the structure, shapes and dtypes of `like` (arrays or ShapeDtypeStructs)."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f'checkpoint not found: {path}')
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), like)
  checkpointer = ocp.StandardCheckpointer()
  try:
    return checkpointer.restore(path, abstract)
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
