"""Teachers: K learners in one program, save/load round trip, validation errors, padded == raw-size teachers."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import checkpoint, loop, padding, replay, td3, teachers
from ktm.methods import IdealMethod, OffPolicySchedule, TaskInfo
from ktm.envs import make_suite
from ktm.runs import teacher_training
from tests.numpy_ref import train_one
from tests.test_td3 import _plain, tree_equal

TINY = dict(hidden_sizes=(16, 16), batch_size=32)
TINY_SCHEDULE = OffPolicySchedule(steps=200, start_steps=100, chunk_steps=50, replay_capacity=500)
TINY_LOOP = loop.LoopConfig(eval_every=200, eval_episodes=2)


@pytest.fixture(scope='module')
def suites():
  return make_suite('pendulum_group', episode_length=50), make_suite('pendulum_group', num_envs=2, episode_length=50)


@pytest.fixture(scope='module')
def trained(suites, tmp_path_factory):
  suite, eval_suite = suites
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, **TINY)
  method = IdealMethod(TaskInfo.from_suite(suite), cfg, TINY_SCHEDULE)
  state, history, _ = train_one(method, suite, eval_suite, None, TINY_LOOP)
  workdir = str(tmp_path_factory.mktemp('teachers'))
  teachers.save(workdir, suite, state.learner, state.buffer, cfg, {}, history)
  return workdir, state, cfg, history


def test_training_shapes_and_history(trained, suites):
  _, state, _, history = trained
  suite = suites[0]
  assert int(state.epoch) == 0 and int(state.stage) == 1    # past the only stage
  assert state.buffer.size.tolist() == [200] * suite.num_tasks
  assert int(state.learner.step[0]) == 100        # updates only after start_steps, one per env step
  assert [h['global_epoch'] for h in history] == [200]
  assert np.asarray(history[0]['returns']).shape == (suite.num_tasks, 2)


def test_save_load_round_trip(trained, suites):
  workdir, state, cfg, _ = trained
  loaded = teachers.load(workdir, suites[0])
  assert loaded.cfg == cfg
  assert tree_equal(loaded.states, state.learner)
  np.testing.assert_array_equal(loaded.buffer.size, state.buffer.size)
  for k in range(suites[0].num_tasks):
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda x: x[k], loaded.buffer.data),
                 teachers.filled_rows(state.buffer, k))
  assert [m['task_name'] for m in loaded.meta] == list(suites[0].task_names)


def test_a_complete_set_is_never_trained_over(trained):
  workdir = trained[0]
  assert teachers.complete(workdir)
  before = sorted(os.listdir(workdir))
  with pytest.raises(FileExistsError, match='complete teacher set'):
    teacher_training.train_teachers('pendulum_group', TINY, dict(steps=200), TINY_LOOP, workdir, progress_bar=False,
                                    tensorboard=False)
  assert sorted(os.listdir(workdir)) == before


def copy_teachers(src, dst):
  import shutil
  shutil.copytree(src, dst)
  return str(dst)


def test_dims_and_size_mismatches_name_the_teacher(trained, suites, tmp_path):
  workdir = copy_teachers(trained[0], tmp_path / 'w')
  name = suites[0].task_names[1]
  meta_path = os.path.join(teachers.teacher_path(workdir, name), teachers.META_FILE)
  meta = json.load(open(meta_path))
  meta['obs_dim'] = 7
  json.dump(meta, open(meta_path, 'w'))
  with pytest.raises(ValueError, match=f"{name}.*obs_dim is 7, expected 4"):
    teachers.load(workdir, suites[0])
  with pytest.raises(ValueError, match=r'hidden_sizes is \[16, 16\], expected \[8, 8\]'):
    teachers.load(trained[0], suites[0], hidden_sizes=(8, 8))
  # A teacher directory holding another task's teacher.
  renamed = copy_teachers(trained[0], tmp_path / 'renamed')
  os.rename(teachers.teacher_path(renamed, suites[0].task_names[0]), teachers.teacher_path(renamed, 'InvertedPendulum'))
  with pytest.raises(ValueError, match=f"task_name is {suites[0].task_names[0]}, expected InvertedPendulum"):
    teachers.load(renamed, make_suite('InvertedPendulum', episode_length=50))


def test_missing_and_corrupt_files_give_clear_errors(trained, suites, tmp_path):
  with pytest.raises(FileNotFoundError, match='no teacher for task'):
    teachers.load(str(tmp_path / 'nothing'), suites[0])
  workdir = copy_teachers(trained[0], tmp_path / 'c')
  path = teachers.teacher_path(workdir, suites[0].task_names[0])
  with open(os.path.join(path, teachers.META_FILE), 'w') as f:
    f.write('{not json')
  with pytest.raises(checkpoint.CheckpointError, match=f'corrupt JSON in {path}'):
    teachers.load(workdir, suites[0])
  workdir = copy_teachers(trained[0], tmp_path / 'd')
  state_dir = os.path.join(teachers.teacher_path(workdir, suites[0].task_names[2]), 'state')
  for root, _, files in os.walk(state_dir):
    for f in files:
      with open(os.path.join(root, f), 'wb') as out:
        out.write(b'garbage')
  with pytest.raises(checkpoint.CheckpointError, match=f'cannot restore checkpoint {state_dir}'):
    teachers.load(workdir, suites[0])


def test_vmapped_learn_equals_learners_updated_one_by_one():
  cfg = td3.TD3Config(obs_size=3, act_size=2, **TINY)
  k = 3
  buffer = replay.init(k, 64, 3, 2)
  keys = jax.random.split(jax.random.key(0), 4)
  rows = replay.Transition(obs=jax.random.normal(keys[0], (k, 64, 3)),
                           action=jnp.tanh(jax.random.normal(keys[1], (k, 64, 2))),
                           reward=jax.random.normal(keys[2], (k, 64)), next_obs=jax.random.normal(keys[3], (k, 64, 3)),
                           terminated=jnp.zeros((k, 64)))
  buffer = replay.insert(buffer, rows)
  masks = jnp.asarray(padding.action_masks([2, 1, 2], 2))
  learners = td3.init_many(jax.random.key(1), k, cfg)
  key = jax.random.key(2)
  def learn(learners, key):
    def body(learners, update_key):
      return td3.update_many(learners, replay.sample(buffer, update_key, cfg.batch_size), cfg, masks)
    return jax.lax.scan(body, learners, jax.random.split(key, 4))

  vmapped, _ = jax.jit(learn)(learners, key)
  singles = [jax.tree.map(lambda x: x[i], learners) for i in range(k)]
  update = jax.jit(td3.update, static_argnames='cfg')
  sample = jax.jit(replay.sample, static_argnums=2)
  for update_key in jax.random.split(key, 4):
    batch = sample(buffer, update_key, cfg.batch_size)
    singles = [update(s, jax.tree.map(lambda x: x[i], batch), cfg=cfg, action_mask=masks[i])[0]
               for i, s in enumerate(singles)]
  for i, single in enumerate(singles):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(_plain(x)[i], _plain(y), rtol=1e-5, atol=1e-6),
                 vmapped, single)


def test_padded_teacher_computes_the_raw_size_function_after_training():
  """A learner on zero-padded inputs with masked actions trains exactly like one of the raw size."""
  obs_dim, act_dim, obs_size, act_size = 2, 1, 4, 3
  noiseless = dict(TINY, target_noise=0.0)    # smoothing-noise draws depend on the action width
  padded_cfg = td3.TD3Config(obs_size=obs_size, act_size=act_size, **noiseless)
  raw_cfg = td3.TD3Config(obs_size=obs_dim, act_size=act_dim, **noiseless)
  mask = padding.action_mask(act_dim, act_size)
  padded = td3.init(jax.random.key(0), padded_cfg)
  raw_view = lambda s: (teachers.raw_actor_params(s.actor_params, obs_dim, act_dim),
                        teachers.raw_critic_params(s.critic_params, obs_dim, act_dim, obs_size))
  actor, critic = raw_view(padded)
  target_actor = teachers.raw_actor_params(padded.target_actor_params, obs_dim, act_dim)
  target_critic = teachers.raw_critic_params(padded.target_critic_params, obs_dim, act_dim, obs_size)
  raw = padded.replace(actor_params=actor, critic_params=critic, target_actor_params=target_actor,
                       target_critic_params=target_critic,
                       actor_opt_state=td3.actor_optimizer(raw_cfg).init(actor),
                       critic_opt_state=td3.critic_optimizer(raw_cfg).init(critic))
  update_padded = jax.jit(lambda s, b: td3.update(s, b, padded_cfg, mask))
  update_raw = jax.jit(lambda s, b: td3.update(s, b, raw_cfg))
  for i in range(4):
    ks = jax.random.split(jax.random.key(10 + i), 4)
    batch = replay.Transition(obs=jax.random.normal(ks[0], (32, obs_dim)),
                              action=jnp.tanh(jax.random.normal(ks[1], (32, act_dim))),
                              reward=jax.random.normal(ks[2], (32,)), next_obs=jax.random.normal(ks[3], (32, obs_dim)),
                              terminated=jnp.zeros(32))
    padded_batch = batch.replace(obs=padding.pad(batch.obs, obs_size), next_obs=padding.pad(batch.next_obs, obs_size),
                                 action=padding.pad(batch.action, act_size))
    padded, _ = update_padded(padded, padded_batch)
    raw, _ = update_raw(raw, batch)
  assert int(raw.step) == 4
  for got, want in zip(raw_view(padded), (raw.actor_params, raw.critic_params)):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), got, want)
  obs = jax.random.normal(jax.random.key(5), (7, obs_dim))
  np.testing.assert_allclose(td3.policy(padded.actor_params, padding.pad(obs, obs_size), padded_cfg, mask)[:, :act_dim],
                             td3.policy(raw.actor_params, obs, raw_cfg), rtol=1e-5, atol=1e-6)
