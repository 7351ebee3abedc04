"""Stress (slow: KTM_SLOW=1): two native-physics trainings at once, again and again, on ONE fresh persistent cache
with the callback cache on (issue 26's native crash was seen only with several jobs on one machine and one cache).
Every run must end normally and the two runs of a round must log the same metrics, byte for byte.

`KTM_STRESS_ROUNDS=N` sets the rounds (default 5).
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(os.environ.get('KTM_STRESS_ROUNDS', '5'))


@pytest.mark.slow
def test_concurrent_native_trainings_on_one_cache_never_crash_and_agree(tmp_path):
  env = dict(os.environ, KTM_CACHE_CALLBACK_PROGRAMS='1', JAX_COMPILATION_CACHE_DIR=str(tmp_path / 'cache'))
  for round_ in range(ROUNDS):
    workdirs = [tmp_path / f'r{round_}_{i}' for i in range(2)]
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, 'experiments', 'run_ktm.py'), f'--workdir={w}',
                               '--preset=tiny', '--progress_bar=false', '--tensorboard=false'], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for w in workdirs]
    for proc in procs:
      _, err = proc.communicate(timeout=900)
      assert proc.returncode == 0, f'round {round_}: exit {proc.returncode}\n{err[-3000:]}'
    first, second = ((w / 'metrics.jsonl').read_bytes() for w in workdirs)
    assert first == second, f'round {round_}: the two runs differ'


def threaded_rollout(nthread: int, num_envs: int, steps: int, seed: int = 0):
  """(observations, rewards) after `steps` uniform-random steps of halfcheetah_group's 8 tasks x `num_envs` envs on
  native physics stepped by `nthread` mujoco.batch threads (one compiled scan, the physics in its host callback)."""
  import jax
  import numpy as np
  from ktm.envs import make_suite
  suite = make_suite('halfcheetah_group', num_envs=num_envs, backend='native', nthread=nthread)

  def body(state, key):
    actions = jax.random.uniform(key, (suite.num_tasks, num_envs, suite.act_size), minval=-1.0, maxval=1.0)
    state, out = suite.step(state, actions)
    return state, out.reward

  @jax.jit
  def run(key):
    state, rewards = jax.lax.scan(body, suite.reset(key), jax.random.split(key, steps))
    return state.obs, rewards

  return tuple(np.asarray(x) for x in run(jax.random.key(seed)))


def check_threads_agree(rounds: int, nthread: int, num_envs: int, steps: int):
  """Many mujoco.batch threads (more than the cores) step exactly what one thread steps, every round."""
  import numpy as np
  want = threaded_rollout(1, num_envs, steps)
  for round_ in range(rounds):
    got = threaded_rollout(nthread, num_envs, steps, seed=0)
    for g, w in zip(got, want):
      np.testing.assert_array_equal(g, w, err_msg=f'round {round_}: {nthread} threads differ from 1')


def test_many_mujoco_batch_threads_step_exactly_what_one_thread_steps():
  check_threads_agree(rounds=1, nthread=8, num_envs=16, steps=50)


@pytest.mark.slow
def test_many_mujoco_batch_threads_again_and_again():
  """Issue 26 item 5's 'many mujoco.batch threads': 16 threads (8x this VM's cores) on 8 x 64 envs, 20 rounds."""
  check_threads_agree(rounds=int(os.environ.get('KTM_STRESS_ROUNDS', '20')), nthread=16, num_envs=64, steps=200)
