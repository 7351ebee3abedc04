"""The task-identity input ('NAME+task_id', ktm/envs/task_id.py): observations are the suite's with the task's one-hot
appended, and a student with it fits two tasks that differ only in the sign of their reward while one without it
cannot (with identical dynamics, a deterministic start and a deterministic policy, both tasks see the same
trajectory, so their returns are exact opposites and the worse one is <= 0)."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ktm import loop
from ktm.envs import custom, make_suite
from tests.test_methods import TINY_NET, build

STEPS = 10   # episode length of the pair


class SignedPush(gymnasium.Env):
  """x' = clip(x + 0.2 a, -2, 2) from x = 0, obs [x], reward sign * a: the pair differs only in `sign`."""

  observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (1,), np.float32)
  action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)

  def __init__(self, sign):
    self.sign, self.x = sign, 0.0

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self.x = 0.0
    return np.array([self.x], np.float32), {}

  def step(self, action):
    a = float(action[0])
    self.x = float(np.clip(self.x + 0.2 * a, -2.0, 2.0))
    return np.array([self.x], np.float32), self.sign * a, False, False, {}


PAIR = custom.gym_suite('signed_push_pair', [('PushRight', lambda: SignedPush(1.0)),
                                             ('PushLeft', lambda: SignedPush(-1.0))])


@pytest.mark.parametrize('benchmark', ['gym:Pendulum-v1,Hopper-v5', 'pendulum_group'])
def test_observations_end_with_the_one_hot_of_their_task(benchmark):
  plain, with_id = (make_suite(benchmark + suffix, num_envs=2) for suffix in ('', '+task_id'))
  n, k = plain.obs_size, plain.num_tasks
  assert (with_id.obs_size, with_id.obs_dims, with_id.act_dims) == (n + k, (n + k,) * k, plain.act_dims)
  states = [s.reset(jax.random.key(3)) for s in (plain, with_id)]
  actions = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (k, 2, plain.act_size)), jnp.float32)
  for _ in range(3):
    (states[0], out0), (states[1], out1) = [s.step(st, actions) for s, st in zip((plain, with_id), states)]
    for a, b in ((states[0].obs, states[1].obs), (out0.next_obs, out1.next_obs)):
      np.testing.assert_array_equal(b[..., :n], a)
      np.testing.assert_array_equal(b[..., n:], np.broadcast_to(np.eye(k)[:, None], (k, 2, k)))
    np.testing.assert_array_equal(out1.reward, out0.reward)


def returns_after_training(benchmark):
  train, evaluate = (make_suite(benchmark, num_envs=e, episode_length=STEPS) for e in (4, 1))
  net = dict(TINY_NET, batch_size=32, actor_lr=3e-3, critic_lr=3e-3, gamma=0.5)
  method = build('td3_mt', train, None, dict(cfg=net, ktm=dict(
      offline_epochs=0, online_epochs=250, alpha=0.0, chunk_steps=10, online_capacity=600, online_start_steps=10)))
  _, history, _ = loop.train(method, train, evaluate, None, loop.LoopConfig(eval_every=250, eval_episodes=1))
  return np.asarray(history[-1]['returns'])[0, :, 0]   # [K]: member 0, episode 0


def test_a_student_with_the_task_id_fits_opposite_rewards_and_one_without_cannot():
  with_id, without = returns_after_training('signed_push_pair+task_id'), returns_after_training('signed_push_pair')
  print('returns with / without the task id:', with_id, without)
  assert without[0] == -without[1]             # same trajectory, opposite rewards
  assert with_id.min() > 0.7 * STEPS           # both tasks near the best return, STEPS
  assert with_id.min() - without.min() > 0.7 * STEPS


def test_policy_export_refuses_gym_and_task_id_suites_in_one_line():
  from ktm import policy   # pylint: disable=import-outside-toplevel
  for benchmark, task in (('gym:Pendulum-v1', 'Pendulum-v1'), ('pendulum_group+task_id', 'InvertedPendulumLongPole')):
    with pytest.raises(ValueError, match='cannot be exported yet'):
      policy.task_slot(make_suite(benchmark), task)
