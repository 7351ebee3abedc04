"""Hierarchical replay: ring semantics, filled-slot sampling, task independence, jit and donation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import replay


def rows(k, n, start, obs_size=2, act_size=1):
  """Rows whose values encode (task, global row id): obs = [task, id], reward = id."""
  ids = np.arange(start, start + n, dtype=np.float32)
  task = np.repeat(np.arange(k, dtype=np.float32)[:, None], n, axis=1)
  obs = np.stack([task, np.broadcast_to(ids, (k, n))], axis=-1)
  return replay.Transition(obs=jnp.asarray(obs), action=jnp.asarray(obs[..., :act_size]),
                           reward=jnp.asarray(np.broadcast_to(ids, (k, n))), next_obs=jnp.asarray(obs + 1),
                           terminated=jnp.zeros((k, n)))


def test_insert_wraps_around_like_a_ring():
  buf = replay.init(2, 5, obs_size=2, act_size=1)
  buf = replay.insert(buf, rows(2, 3, start=1))     # ids 1..3 at slots 0..2
  buf = replay.insert(buf, rows(2, 4, start=4))     # ids 4..7: slots 3,4 then wrap to 0,1
  np.testing.assert_array_equal(np.asarray(buf.data.reward[0]), [6, 7, 3, 4, 5])
  np.testing.assert_array_equal(np.asarray(buf.position), [2, 2])
  np.testing.assert_array_equal(np.asarray(buf.size), [5, 5])
  np.testing.assert_array_equal(np.asarray(buf.data.next_obs[1, :, 1]), [7, 8, 4, 5, 6])


def test_sampling_only_returns_filled_slots():
  buf = replay.insert(replay.init(3, 100, obs_size=2, act_size=1), rows(3, 7, start=1))
  batch = replay.sample(buf, jax.random.key(0), 4096)
  rewards = np.asarray(batch.reward)
  assert rewards.shape == (3, 4096)
  assert set(np.unique(rewards)) == set(range(1, 8))   # every filled row is reachable, no unfilled zero row


def test_task_sub_buffers_stay_independent():
  buf = replay.init(3, 10, obs_size=2, act_size=1)
  buf = replay.insert(buf, rows(3, 4, start=1))
  # Fill only task 1 further by inserting into a one-task view and writing it back.
  batch = replay.sample(buf, jax.random.key(1), 512)
  for k in range(3):
    np.testing.assert_array_equal(np.unique(np.asarray(batch.obs[k, :, 0])), [k])
  # Sub-buffers of different fill levels sample independently.
  buf = buf.replace(size=jnp.array([1, 4, 2], jnp.int32))
  batch = replay.sample(buf, jax.random.key(2), 512)
  assert set(np.unique(np.asarray(batch.reward[0]))) == {1}
  assert set(np.unique(np.asarray(batch.reward[1]))) == {1, 2, 3, 4}
  assert set(np.unique(np.asarray(batch.reward[2]))) == {1, 2}


def test_sample_shapes_and_dtypes():
  buf = replay.insert(replay.init(2, 8, obs_size=5, act_size=3), rows(2, 8, 0, obs_size=2, act_size=1).replace(
      obs=jnp.ones((2, 8, 5)), next_obs=jnp.ones((2, 8, 5)), action=jnp.ones((2, 8, 3))))
  batch = replay.sample(buf, jax.random.key(0), 6)
  assert batch.obs.shape == (2, 6, 5) and batch.action.shape == (2, 6, 3) and batch.reward.shape == (2, 6)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(batch))


def test_jit_equals_no_jit():
  buf = replay.init(2, 6, obs_size=2, act_size=1)
  data = rows(2, 4, start=1)
  eager = replay.insert(replay.insert(buf, data), data)
  jitted = jax.jit(replay.insert)(jax.jit(replay.insert)(buf, data), data)
  jax.tree.map(np.testing.assert_array_equal, eager, jitted)
  key = jax.random.key(3)
  jax.tree.map(np.testing.assert_array_equal, replay.sample(eager, key, 9),
               jax.jit(replay.sample, static_argnums=2)(jitted, key, 9))


def test_insert_into_donated_buffer():
  buf = replay.init(2, 6, obs_size=2, act_size=1)
  insert = jax.jit(replay.insert, donate_argnums=0)
  new = insert(buf, rows(2, 2, start=1))
  assert buf.data.obs.is_deleted()          # the old buffer was donated, not copied
  np.testing.assert_array_equal(np.asarray(new.data.reward[1, :2]), [1, 2])


def test_too_large_capacity_fails_before_allocating_and_names_the_bytes():
  needed = replay.buffer_bytes(8, 10 ** 12, 27, 8)
  assert needed == 8 * 10 ** 12 * (27 + 8 + 1 + 27 + 1) * 4 + 64
  with pytest.raises(MemoryError, match=f'{needed:,} bytes'):
    replay.init(8, 10 ** 12, obs_size=27, act_size=8)


def test_bad_arguments():
  with pytest.raises(ValueError, match='capacity'):
    replay.init(1, 0, 2, 1)
  with pytest.raises(ValueError, match='cannot insert 7 rows'):
    replay.insert(replay.init(2, 5, 2, 1), rows(2, 7, 0))
