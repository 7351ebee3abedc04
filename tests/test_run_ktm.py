"""run_ktm.py end to end: a tiny run through main(), kill-and-resume bit-identical, evaluate.py errors."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ktm import checkpoint, loop, td3, teachers
from ktm import sweep as sweep_lib
from ktm.methods import IdealMethod, KTMConfig, OffPolicySchedule, Stage, TaskInfo
from ktm.envs import make_suite
from ktm.runs import reporting, run_config
from tests.numpy_ref import train_one
from tests.test_td3 import tree_equal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_KTM = ['--preset=quick', '--hidden_sizes=16,16', '--batch_size=32', '--offline_epochs=40',
            '--online_epochs=40', '--offline_chunk=10', '--chunk_steps=5', '--checkpoint_every=20',
            '--eval_every=20', '--eval_episodes=2', '--online_capacity=200', '--progress_bar=false',
            '--tensorboard=false']


@pytest.fixture(scope='module')
def teacher_dir(tmp_path_factory):
  suite = make_suite('pendulum_group')
  eval_suite = make_suite('pendulum_group', num_envs=2, episode_length=100)
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, hidden_sizes=(16, 16), batch_size=32)
  method = IdealMethod(TaskInfo.from_suite(suite), cfg,
                       OffPolicySchedule(steps=300, start_steps=100, chunk_steps=50, replay_capacity=300))
  state, history, _ = train_one(method, suite, eval_suite, None, loop.LoopConfig(eval_every=300, eval_episodes=2))
  directory = str(tmp_path_factory.mktemp('teachers'))
  teachers.save(directory, suite, state.learner, state.buffer, cfg, {}, history)
  return directory


def main_in_process(args):
  """run_ktm.main with `args`, in this process (flags reset before and after)."""
  from absl import flags
  from experiments import run_ktm
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['run_ktm'] + args)
  try:
    run_ktm.main([])
  finally:
    flags.FLAGS.unparse_flags()


@pytest.fixture(scope='module')
def full_run(teacher_dir, tmp_path_factory):
  """A tiny KTM-DRL run to the end: 40 offline + 40 online epochs, checkpoints every 20."""
  full = str(tmp_path_factory.mktemp('full'))
  main_in_process([f'--workdir={full}', f'--teacher_dir={teacher_dir}'] + TINY_KTM)
  return full


def run_script(args, expect_rc=0):
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'run_ktm.py')] + args, cwd=ROOT,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == expect_rc, proc.stderr[-3000:]
  return proc


def final_state(workdir):
  config = run_config.load_run_config(workdir)
  suite = make_suite(config['benchmark'])
  method = run_config.build_method(config['method'], TaskInfo.from_suite(suite), config,
                                   teachers.load_config(config['teacher_dir']))
  like = jax.eval_shape(lambda: loop.init_members(sweep_lib.single(0), method, suite))
  manager = checkpoint.CheckpointManager(os.path.join(workdir, 'checkpoints'))
  step = manager.latest_step()
  state, extra = manager.restore(like)
  state = loop.member_state(state, 0)
  manager.close()
  return step, state, extra


def test_main_end_to_end_and_resume_after_kill_is_bit_identical(teacher_dir, full_run, tmp_path, capsys):
  full = full_run
  results = json.load(open(os.path.join(full, 'results.json')))
  names = make_suite('pendulum_group').task_names
  assert [r['name'] for r in results['tasks']] == list(names)
  for r in results['tasks']:
    assert r['ratio'] == pytest.approx(r['student_return'] / r['teacher_return'])
  step, full_state, extra = final_state(full)
  assert step == 80 and int(full_state.stage) == 2      # past both stages
  assert [h['global_epoch'] for h in extra['history']] == [20, 40, 60, 80]
  assert int(full_state.learner.step) == 80

  killed = str(tmp_path / 'killed')
  args = [f'--workdir={killed}', f'--teacher_dir={teacher_dir}'] + TINY_KTM
  run_script(args + ['--exit_after_checkpoint=2'], expect_rc=3)     # dies 5 online epochs after checkpoint 40
  assert final_state(killed)[0] == 40
  with open(os.path.join(killed, 'metrics.jsonl'), 'a') as f:
    f.write('{"step": 60, "stage": 1.0, "eval_ret')                 # as a kill while the row is written leaves it
  capsys.readouterr()
  main_in_process(args)              # the same command resumes (in this process: full_run's programs are compiled)
  out, err = capsys.readouterr()
  assert 'resuming' in out and 'epoch 40 of 80' in out
  assert [l for l in err.splitlines() if l.startswith('warning:')] == [
      f'warning: {killed}/metrics.jsonl: dropped its last line, cut off when the run was stopped while writing it']
  step, resumed_state, resumed_extra = final_state(killed)
  assert step == 80
  assert tree_equal(resumed_state, full_state)
  np.testing.assert_array_equal(np.asarray(resumed_extra['history'][-1]['returns']),
                                np.asarray(extra['history'][-1]['returns']))
  # Evaluations logged between the last checkpoint and the kill are not duplicated after the resume.
  steps = [json.loads(line)['step'] for line in open(os.path.join(killed, 'metrics.jsonl'))]
  assert steps == [20, 40, 60, 80]
  assert same_metrics(killed, full)


def same_metrics(workdir, reference):
  """WORKDIR's metrics.jsonl and metrics.csv are byte for byte REFERENCE's (rows hold no wall times)."""
  read = lambda d, name: open(os.path.join(d, name), 'rb').read()
  return all(read(workdir, name) == read(reference, name) for name in ('metrics.jsonl', 'metrics.csv'))


def test_a_run_killed_before_its_first_checkpoint_resumes_with_the_metrics_of_an_uninterrupted_one(
    teacher_dir, full_run, tmp_path, capsys):
  """What a kill during the first checkpoint's write leaves (config.json, the evaluation row logged just before,
  no checkpoint), with a torn CSV row too: the re-run logs every row once, as the uninterrupted run did."""
  workdir = str(tmp_path / 'w')
  os.makedirs(workdir)
  for name, keep in (('config.json', None), ('metrics.jsonl', 1), ('metrics.csv', 2)):
    lines = open(os.path.join(full_run, name)).read().splitlines(keepends=True)
    text = ''.join(lines if keep is None else lines[:keep])
    if name == 'metrics.csv':
      text += lines[2][:30]                                          # row 40 cut off mid-write
    open(os.path.join(workdir, name), 'w').write(text)
  capsys.readouterr()
  main_in_process([f'--workdir={workdir}', f'--teacher_dir={teacher_dir}'] + TINY_KTM)
  out, err = capsys.readouterr()
  assert 'resuming' not in out
  assert [l for l in err.splitlines() if l.startswith('warning:')] == [
      f'warning: {workdir}/metrics.csv: dropped its last line, cut off when the run was stopped while writing it']
  assert same_metrics(workdir, full_run)
  assert tree_equal(final_state(workdir)[1], final_state(full_run)[1])


def test_a_second_process_on_a_run_is_refused_and_the_killed_holders_lock_is_taken_over(
    teacher_dir, full_run, tmp_path):
  """Process A holds the run (stopped with SIGSTOP right after it took the lock, so that nothing else changes the
  directory); B, the same command, stops with one error line naming A and changes no file; A is SIGKILLed (its lock
  file still names it) and the same command, in this process, takes the run over and ends as the uninterrupted
  run did, bit for bit, metrics included."""
  from tests.test_bad_inputs import snapshot  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path / 'w')
  args = [f'--workdir={workdir}', f'--teacher_dir={teacher_dir}'] + TINY_KTM
  holder = subprocess.Popen([sys.executable, os.path.join(ROOT, 'experiments', 'run_ktm.py')] + args, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  lock_file = os.path.join(workdir, '.ktm-lock')
  try:
    while not (os.path.exists(lock_file) and open(lock_file).read().startswith(f'{holder.pid} ')):
      assert holder.poll() is None, 'the first process ended before it took the lock'
      time.sleep(0.01)
    holder.send_signal(signal.SIGSTOP)
    before = snapshot(workdir)
    proc = run_script(args, expect_rc=1)
    assert snapshot(workdir) == before
    errors = [l for l in proc.stderr.splitlines() if l.startswith('error: ')]
    since = open(lock_file).read().split()[2]
    assert len(errors) == 1 and f'in use by another process: PID {holder.pid} on ' in errors[0] \
        and f'running since {since} ' in errors[0], proc.stderr[-2000:]
  finally:
    holder.kill()
    holder.wait()
  assert open(lock_file).read().startswith(f'{holder.pid} ')                    # a dead holder's lock file
  main_in_process(args)
  assert same_metrics(workdir, full_run)
  assert tree_equal(final_state(workdir)[1], final_state(full_run)[1])


def test_init_from_the_offline_end_equals_training_from_scratch(teacher_dir, full_run, tmp_path):
  # The finished run kept its offline-end checkpoint (epoch 40) besides its newest two.
  assert sorted(os.listdir(os.path.join(full_run, 'checkpoints')), key=int) == ['40', '60', '80']
  online_only = ['--alpha=0', '--beta=0.5', '--target_noise=0.3', '--online_epochs=20']
  scratch, started = str(tmp_path / 'scratch'), str(tmp_path / 'started')
  main_in_process([f'--workdir={scratch}', f'--teacher_dir={teacher_dir}'] + TINY_KTM + online_only)
  main_in_process([f'--workdir={started}', f'--teacher_dir={teacher_dir}', f'--init_from={full_run}']
                  + TINY_KTM + online_only)
  assert run_config.load_run_config(started)['init_from'] == full_run
  step, state, extra = final_state(started)
  scratch_step, scratch_state, scratch_extra = final_state(scratch)
  assert step == scratch_step == 60 and tree_equal(state, scratch_state)
  assert extra['history'] == scratch_extra['history']          # the offline evaluations are the source's
  rows = lambda d: [json.loads(line) for line in open(os.path.join(d, 'metrics.jsonl'))]
  assert [r['step'] for r in rows(started)] == [20, 40, 60] and rows(started) == rows(scratch)
  for key in ('members', 'summary'):
    assert json.load(open(os.path.join(started, 'results.json')))[key] == \
        json.load(open(os.path.join(scratch, 'results.json')))[key]

  # Refused: a source differing in a field the offline stage reads (or the online stage's begin_stage, which the
  # boundary checkpoint already holds: online_adam), and a source without its offline-end checkpoint.
  source = run_config.load_run_config(full_run)
  tasks, teacher_cfg = TaskInfo.from_suite(make_suite('pendulum_group')), teachers.load_config(teacher_dir)
  for field, value, message in (('offline_epochs', 30, '40 -> 30'), ('online_adam', 'fresh', 'carry -> fresh')):
    config = dict(source, ktm=dict(source['ktm'], **{field: value}))
    method = run_config.build_method('ktm', tasks, config, teacher_cfg)
    with pytest.raises(ValueError, match=rf'differs in more than .*: ktm\.{field}: {message}$'):
      run_config.start_from_first_stage(full_run, str(tmp_path / 'x'), method, config)
  no_checkpoint = tmp_path / 'no_checkpoint'
  no_checkpoint.mkdir()
  (no_checkpoint / 'config.json').write_text(json.dumps(source))
  method = run_config.build_method('ktm', tasks, source, teacher_cfg)
  with pytest.raises(FileNotFoundError, match='keeps no checkpoint at the end of its first stage'):
    run_config.start_from_first_stage(str(no_checkpoint), str(tmp_path / 'y'), method, source)


def test_resume_with_another_config_is_refused_naming_only_the_differing_fields(tmp_path):
  workdir = str(tmp_path / 'w')
  checkpoint.write_json(os.path.join(workdir, 'config.json'), {'a': 1, 'b': {'c': 2, 'd': 3}})
  assert run_config.check_config(workdir, {'a': 1, 'b': {'c': 2, 'd': 3}})
  with pytest.raises(ValueError, match=r'another configuration: b\.d: 3 -> 4 \(use a new --workdir\)$'):
    run_config.check_config(workdir, {'a': 1, 'b': {'c': 2, 'd': 4}})
  # A run written before a config field existed (here KTMConfig.online_adam) resumes: the field takes its default.
  suite = make_suite('pendulum_group')
  method = run_config.build_method('ktm', TaskInfo.from_suite(suite), dict(
      cfg=td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size), ktm=KTMConfig()))
  config = run_config.run_config(method, 'pendulum_group', loop.LoopConfig(), None)
  old = json.loads(json.dumps(config))
  del old['ktm']['online_adam'], old['loop']['eval_episodes']
  checkpoint.write_json(os.path.join(workdir, 'config.json'), old)
  assert run_config.check_config(workdir, config) and run_config.load_run_config(workdir) == config
  with pytest.raises(ValueError, match=r'another configuration: ktm\.alpha: 1\.0 -> 0\.5 '):
    run_config.check_config(workdir, dict(config, ktm=dict(config['ktm'], alpha=0.5)))


def test_next_chunk_stops_at_boundaries():
  stages = (Stage('offline', 25, 10, collect=False), Stage('online', 30, 7, random_epochs=3))
  cfg = loop.LoopConfig(eval_every=12, checkpoint_every=20)
  epoch, chunks = 0, []
  while epoch < 25:
    n = loop.next_chunk(stages, 0, epoch, cfg)
    chunks.append(n)
    epoch += n
  assert chunks == [10, 2, 8, 4, 1]       # eval at 12, 24; checkpoint at 20; stage end at 25
  assert loop.next_chunk(stages, 1, 0, cfg) == 3      # the random-action phase ends at online epoch 3
  assert loop.next_chunk(stages, 1, 3, cfg) == 7
  assert loop.next_chunk(stages, 1, 14, cfg) == 1     # global epoch 39 -> checkpoint at 40


def test_results_table_ratio_only_against_a_positive_teacher_return():
  rows = reporting.results_table(['a', 'b', 'c', 'd'], np.array([100.0, -29.6, 5.0, np.nan]),
                                 np.array([200.0, -76.1, 0.0, 10.0]))
  assert [r['ratio'] for r in rows] == [0.5, None, None, None]
  assert [r['student_return'] for r in rows] == [100.0, -29.6, 5.0, None]
  assert [r['teacher_return'] for r in rows] == [200.0, -76.1, 0.0, 10.0]
  assert [r['ratio'] for r in reporting.results_table(['a'], np.array([1.0]))] == [None]
