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
