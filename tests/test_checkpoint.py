"""Verified checkpoints: manifests catch flipped bits, truncated and deleted files and unfinished writes; the
manager reports a bad newest checkpoint in one line and restores the previous one exactly; a run_ktm resumed from
a damaged checkpoint directory ends bit-identical to an uninterrupted run."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import checkpoint
from tests.test_run_ktm import teacher_dir  # noqa: F401  (module fixture: tiny pendulum_group teachers)


def make_state(step: int) -> dict:
  """A state with the leaf kinds the trainers save: float/int arrays, a typed PRNG key, a zero-size array."""
  rng = np.random.default_rng(step)
  return {'params': {'w': jnp.asarray(rng.normal(size=(64, 32)), jnp.float32),
                     'b': jnp.asarray(rng.normal(size=(32,)), jnp.float32)},
          'buffer': jnp.asarray(rng.integers(0, 1 << 30, size=(1000,)), jnp.int32),
          'key': jax.random.key(step), 'step': jnp.asarray(step, jnp.int32), 'empty': jnp.zeros((0, 3))}


def assert_state_equal(got: dict, step: int) -> None:
  want = make_state(step)
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want)):
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
      a, b = jax.random.key_data(a), jax.random.key_data(b)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))
    assert a.dtype == b.dtype and a.shape == b.shape


def largest_file(directory: str) -> str:
  files = [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs if f != checkpoint.MANIFEST]
  return max(files, key=os.path.getsize)


def flip_bit(path: str, offset_fraction: float = 0.5) -> None:
  with open(path, 'r+b') as f:
    data = bytearray(f.read())
    i = int(len(data) * offset_fraction)
    data[i] ^= 0x10
    f.seek(0)
    f.write(data)


def truncate(path: str) -> None:
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def test_pytree_roundtrip_and_each_kind_of_damage_is_named(tmp_path):
  path = str(tmp_path / 'tree')
  checkpoint.save_pytree(path, make_state(3))
  assert_state_equal(checkpoint.restore_pytree(path, make_state(0)), 3)
  data = largest_file(path)
  name = os.path.relpath(data, path)
  flip_bit(data)
  with pytest.raises(checkpoint.CheckpointError, match=f'it is corrupt \\({name} fails its sha256 check\\)'):
    checkpoint.restore_pytree(path, make_state(0))
  flip_bit(data)                     # flipped back: valid again
  assert_state_equal(checkpoint.restore_pytree(path, make_state(0)), 3)
  truncate(data)
  with pytest.raises(checkpoint.CheckpointError, match=f'it is corrupt \\({name} has \\d+ bytes, expected'):
    checkpoint.restore_pytree(path, make_state(0))
  os.remove(data)
  with pytest.raises(checkpoint.CheckpointError, match=f'it is incomplete \\({name} is missing\\)'):
    checkpoint.restore_pytree(path, make_state(0))
  os.remove(os.path.join(path, checkpoint.MANIFEST))
  with pytest.raises(checkpoint.CheckpointError, match='it is incomplete \\(no ktm_manifest.json'):
    checkpoint.restore_pytree(path, make_state(0))


def saved_manager(directory: str, steps=(10, 20, 30)) -> None:
  manager = checkpoint.CheckpointManager(directory)
  for step in steps:
    manager.save(step, make_state(step), {'step': step, 'history': [step]})
  manager.close()


@pytest.mark.parametrize('damage', ['flip', 'truncate', 'delete', 'unfinished'])
def test_bad_newest_checkpoint_falls_back_to_previous_in_one_line(tmp_path, capsys, damage):
  directory = str(tmp_path / 'checkpoints')
  saved_manager(directory)
  manager = checkpoint.CheckpointManager(directory)
  assert manager.all_steps() == [30, 20]          # the last two are kept
  newest = manager.step_directory(30)
  target = largest_file(os.path.join(newest, 'state'))
  if damage == 'flip':
    flip_bit(target)
  elif damage == 'truncate':
    truncate(target)
  elif damage == 'delete':
    os.remove(target)
  else:                                            # killed after orbax finished, before the manifest
    os.remove(os.path.join(newest, checkpoint.MANIFEST))
  state, extra = manager.restore(make_state(0))
  assert manager.restored_step == 20 and extra == {'step': 20, 'history': [20]}
  assert_state_equal(state, 20)
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0] == manager.restore_message
  why = {'flip': 'corrupt', 'truncate': 'corrupt', 'delete': 'incomplete', 'unfinished': 'incomplete'}[damage]
  assert err[0].startswith(f'warning: checkpoint 30 is {why} (') and err[0].endswith('; using checkpoint 20')
  # The resumed run saves step 30 again over the bad one; then 30 is the newest valid checkpoint.
  manager.save(30, make_state(31), {'step': 31})
  assert manager.all_steps() == [30, 20]
  state, extra = manager.restore(make_state(0))
  assert manager.restored_step == 30 and extra == {'step': 31}
  assert_state_equal(state, 31)
  manager.close()


@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')   # orbax's abandoned reads
def test_no_valid_checkpoint_is_an_error_naming_each(tmp_path):
  directory = str(tmp_path / 'checkpoints')
  saved_manager(directory, steps=(10, 20))
  for step in (10, 20):
    flip_bit(largest_file(os.path.join(directory, str(step), 'state')))
  manager = checkpoint.CheckpointManager(directory, report=None)
  with pytest.raises(checkpoint.CheckpointError,
                     match='no usable checkpoint in .*checkpoint 20 is corrupt .*checkpoint 10 is corrupt'):
    manager.restore(make_state(0))
  # An explicit, valid-looking but mis-shaped request is reported as unreadable, not silently reshaped.
  saved_manager(str(tmp_path / 'other'), steps=(5,))
  other = checkpoint.CheckpointManager(str(tmp_path / 'other'), report=None)
  like = dict(make_state(0), buffer=jnp.zeros((7,), jnp.int32))
  with pytest.raises(checkpoint.CheckpointError, match='checkpoint 5 is unreadable'):
    other.restore(like)


def test_manager_creates_nothing_before_its_first_save(tmp_path):
  directory = tmp_path / 'run' / 'checkpoints'
  manager = checkpoint.CheckpointManager(str(directory))
  assert manager.latest_step() is None
  with pytest.raises(FileNotFoundError, match='no checkpoint in'):
    manager.restore(make_state(0))
  manager.close()
  assert not (tmp_path / 'run').exists()
  with pytest.raises(ValueError, match='max_to_keep'):
    checkpoint.CheckpointManager(str(directory), max_to_keep=1)


@pytest.mark.slow
def test_run_ktm_with_a_corrupt_newest_checkpoint_resumes_from_the_previous_one_exactly(teacher_dir, tmp_path):
  """End to end: a killed run_ktm whose newest checkpoint then gets a flipped bit resumes from the one before,
  says so in one line, and ends bit-identical to an uninterrupted run."""
  from tests.test_run_ktm import TINY_KTM, final_state, run_script   # pylint: disable=import-outside-toplevel
  from tests.test_td3 import tree_equal   # pylint: disable=import-outside-toplevel
  full = str(tmp_path / 'full')
  run_script([f'--workdir={full}', f'--teacher_dir={teacher_dir}'] + TINY_KTM)
  _, full_state, full_extra = final_state(full)

  damaged = str(tmp_path / 'damaged')
  args = [f'--workdir={damaged}', f'--teacher_dir={teacher_dir}'] + TINY_KTM
  run_script(args + ['--exit_after_checkpoint=2'], expect_rc=3)     # checkpoints 20 and 40 on disk
  flip_bit(largest_file(os.path.join(damaged, 'checkpoints', '40', 'state')))
  proc = run_script(args)
  warnings_ = [line for line in proc.stderr.splitlines() if line.startswith('warning: checkpoint')]
  assert len(warnings_) == 1, proc.stderr[-3000:]
  assert warnings_[0].startswith('warning: checkpoint 40 is corrupt (') and \
      warnings_[0].endswith('; using checkpoint 20'), warnings_[0]
  step, state, extra = final_state(damaged)
  assert step == 80 and tree_equal(state, full_state)
  assert [h['global_epoch'] for h in extra['history']] == [h['global_epoch'] for h in full_extra['history']]
  np.testing.assert_array_equal(np.asarray(extra['history'][-1]['returns']),
                                np.asarray(full_extra['history'][-1]['returns']))
