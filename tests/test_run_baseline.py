"""run_baseline.py end to end (a tiny SAC-MT run with the teachers' ratio column, then evaluate.py on it) and its
refusal of another method's flags (test_bad_inputs.py's baseline_*foreign_setting* cases), a teacherless method
without teachers."""

import json
import os
import subprocess
import sys

import pytest

from ktm import loop, teachers, td3
from ktm.envs import make_suite
from ktm.methods import IdealMethod, OffPolicySchedule, TaskInfo
from tests.numpy_ref import train_one

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--preset=quick', '--hidden_sizes=16,16', '--batch_size=16', '--steps=40', '--start_steps=10',
        '--chunk_steps=10', '--replay_capacity=100', '--eval_every=20', '--eval_episodes=2', '--checkpoint_every=20',
        '--progress_bar=false', '--tensorboard=false']


def script(name, args):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', name)] + args, cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def teacher_dir(tmp_path_factory):
  suite, eval_suite = make_suite('pendulum_group'), make_suite('pendulum_group', num_envs=2, episode_length=50)
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, hidden_sizes=(16, 16), batch_size=16)
  method = IdealMethod(TaskInfo.from_suite(suite), cfg, OffPolicySchedule(steps=100, start_steps=50, chunk_steps=50,
                                                                         replay_capacity=100))
  state, history, _ = train_one(method, suite, eval_suite, None, loop.LoopConfig(eval_every=100, eval_episodes=2))
  directory = str(tmp_path_factory.mktemp('teachers'))
  teachers.save(directory, suite, state.learner, state.buffer, cfg, {}, history)
  return directory


def test_sac_mt_run_writes_the_same_results_schema_and_evaluates(teacher_dir, tmp_path):
  workdir = str(tmp_path / 'sac')
  proc = script('run_baseline.py', ['--method=sac_mt', f'--workdir={workdir}', f'--teacher_dir={teacher_dir}'] + TINY)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.load(open(os.path.join(workdir, 'results.json')))
  assert results['method'] == 'sac_mt' and results['benchmark'] == 'pendulum_group'
  teacher_best = [max(sum(h['returns']) / len(h['returns']) for h in m['eval_history'])
                  for m in teachers.load_metas(teacher_dir, make_suite('pendulum_group'))]
  for row, best in zip(results['tasks'], teacher_best):
    assert set(row) == {'name', 'student_return', 'teacher_return', 'ratio'}
    assert row['teacher_return'] == pytest.approx(best)
    assert row['ratio'] == pytest.approx(row['student_return'] / row['teacher_return'])
  config = json.load(open(os.path.join(workdir, 'config.json')))
  assert config['method'] == 'sac_mt' and config['cfg']['hidden_sizes'] == [16, 16]
  proc = script('evaluate.py', [f'--checkpoint={workdir}', '--episodes=2'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.splitlines()[0].split() == ['task', 'student', 'teacher', 'ratio']


def test_without_train_teachers_a_teacherless_method_runs_alone(tmp_path):
  """(A2C-MT, which needs teachers, is refused then: test_bad_inputs.py's baseline_a2c_without_teachers* cases.)"""
  workdir = tmp_path / 'sac'
  proc = script('run_baseline.py', ['--method=sac_mt', f'--workdir={workdir}', '--train_teachers=false'] + TINY)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not (workdir / 'teachers_run').exists()               # the default teacher_dir was not trained
  rows = json.load(open(workdir / 'results.json'))['tasks']
  assert [r['name'] for r in rows] == list(make_suite('pendulum_group').task_names)
  assert all(r['teacher_return'] is None and r['ratio'] is None and r['student_return'] is not None for r in rows)
