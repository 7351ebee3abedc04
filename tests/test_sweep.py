"""Sweeps (ktm/sweep.py, the member axis of ktm/loop.py): members equal single runs, one trace per sweep,
sharded == unsharded, resume, refusals."""

import json
import os
import re
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from ktm import loop, presets, teachers
from ktm import sweep as sweep_lib
from ktm.envs import make_suite
from ktm.methods import METHODS, TaskInfo
from ktm.runs import run_config, sweep_members

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = presets.TEACHERS['tiny']
SCHEDULE = dict(TINY['schedule'], steps=100, start_steps=40, replay_capacity=100)
# Evaluations and checkpoints at 60 and 100: every learning chunk is chunk_steps (20) long, one program per run kind.
LOOP = loop.LoopConfig(**{**TINY['loop'], 'eval_every': 60, 'checkpoint_every': 60, 'seed': 3})
EPISODE = 50
SWEEP = sweep_lib.grid(3, 2, ['actor_lr=0.0003,0.001'])      # seeds 3, 4, 3, 4
# vmap over S members turns every matmul into a batched dot (and every reduction over [S, B]), whose XLA:CPU kernels
# round differently from the unbatched ones: a member equals its single run to float32 rounding, not bit for bit.
# Measured after 300 TD3 updates of 16-16 networks: max |diff| 1.2e-7 in parameters, 4.8e-7 in replay rows; env
# states follow the actions, so they are compared as floats within the same tolerance.
ATOL = 1e-5
# Physics carries those roundings along a trajectory and the pendulums amplify them: rows late in the replay and env
# states differ more than parameters, and by how much depends on the CPU's kernels (sharded vs unsharded sweep after
# 100 steps: within ATOL on Zen 4 and Zen 5; on a Zen 3, 2 of 6,400 replay entries differ by 2.4e-5 at steps 63-64).
TRAJECTORY_ATOL = 1e-4


@pytest.fixture(scope='module')
def setup():
  suite = make_suite('pendulum_group', episode_length=EPISODE)
  eval_suite = make_suite('pendulum_group', num_envs=2, episode_length=EPISODE)
  method = run_config.build_method('ideal', TaskInfo.from_suite(suite),
                                   dict(cfg=dict(obs_size=suite.obs_size, act_size=suite.act_size, **TINY['cfg']),
                                        schedule=SCHEDULE))
  return method, suite, eval_suite


def leaves(tree):
  out = []
  for x in jax.tree.leaves(tree):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    out.append(np.asarray(x))
  return out


def assert_close(a, b, atol):
  """Leaves equal within `atol` (native physics states, carried as float64 bit patterns, compared as floats)."""
  for x, y in zip(leaves(a), leaves(b), strict=True):
    if atol and x.dtype == np.uint32 and x.shape[-1] % 2 == 0:
      x, y = x.view(np.float64), y.view(np.float64)
    if np.issubdtype(x.dtype, np.floating):
      np.testing.assert_allclose(x, y, rtol=0, atol=atol)
    else:
      np.testing.assert_array_equal(x, y)


def test_grid_members_are_setting_major_and_refusals_are_one_line():
  s = sweep_lib.grid(5, 2, ['alpha=0,1', 'tau=0.005,0.01'])
  assert s.seeds == (5, 6) * 4
  assert dict(s.values)['alpha'] == (0, 0, 0, 0, 1, 1, 1, 1)
  assert dict(s.values)['tau'] == (0.005, 0.005, 0.01, 0.01) * 2
  with pytest.raises(ValueError, match='hidden_sizes is structural'):
    sweep_lib.check_fields(METHODS['ktm'], ['hidden_sizes'])
  with pytest.raises(ValueError, match='batch_size is structural'):
    sweep_lib.check_fields(METHODS['ktm'], ['batch_size'])
  with pytest.raises(ValueError, match="no setting 'alpah'"):
    sweep_lib.check_fields(METHODS['ktm'], ['alpah'])
  with pytest.raises(ValueError, match='not NAME=v1'):
    sweep_lib.grid(0, 1, ['alpha'])
  assert 'alpha' in sweep_lib.sweepable(METHODS['ktm']) and 'actor_lr' in sweep_lib.sweepable(METHODS['sac_mt'])


@pytest.fixture(scope='module')
def runs(setup):
  """A single run, the same as a traced 1-member sweep, and a 4-member sweep (seeds 3, 4 x actor_lr 3e-4, 1e-3), with
  the chunk traces each took; the 4-member sweep is also the reference of the four-device sharding test."""
  method, suite, eval_suite = setup
  before = dict(loop.TRACES)
  single, single_history, _ = loop.train(method, suite, eval_suite, None, LOOP)
  single_traces = {k: loop.TRACES[k] - before.get(k, 0) for k in loop.TRACES}
  # a swept (traced) value computes exactly what the static value does
  traced, _, _ = loop.train(method, suite, eval_suite, None, LOOP, sweep=sweep_lib.grid(3, 1, ['actor_lr=0.0003']))
  traces = dict(loop.TRACES)
  swept, history, _ = loop.train(method, suite, eval_suite, None, LOOP, sweep=SWEEP)
  sweep_traces = {k: loop.TRACES[k] - traces[k] for k in traces}
  return dict(single=single, single_history=single_history, single_traces=single_traces, traced=traced,
              swept=swept, history=history, sweep_traces=sweep_traces)


def test_members_equal_single_runs_and_one_trace_per_sweep(setup, runs):
  _, suite, _ = setup
  single, swept, history = runs['single'], runs['swept'], runs['history']
  assert_close(runs['traced'], single, 0)
  # The sweep traced each chunk kind exactly as often as ONE single run does (no per-member traces).
  assert runs['sweep_traces'] == runs['single_traces']
  assert runs['single_traces']['evaluate'] == 1
  assert np.asarray(history[0]['returns']).shape == (4, suite.num_tasks, 2)
  # member 0: seed 3 with actor_lr 3e-4 traced == the single run (seed 3, the default 3e-4 static)
  assert_close(loop.member_state(swept, 0), loop.member_state(single, 0), ATOL)
  # the members differ (seeds and learning rates do something)
  assert not np.allclose(leaves(loop.member(swept.learner, 0))[0], leaves(loop.member(swept.learner, 2))[0])
  best = loop.best_returns(history)
  np.testing.assert_allclose(best[0], loop.best_returns(runs['single_history'])[0], atol=1e-3)


def test_sweep_resumed_after_a_kill_or_a_sigterm_is_bit_identical(setup, tmp_path):
  """A crash after the checkpoint at 60 resumes from it; a SIGTERM in the first chunk stops the run at a chunk end
  before the first regular checkpoint (60), with a checkpoint saved there (loop.Interrupted), and the run resumes
  from it. Both end equal to the uninterrupted run. (tests/test_kills.py sends the scripts real signals; there the
  SIGTERM's stop can coincide with a regular checkpoint.)"""
  method, suite, eval_suite = setup
  sweep = SWEEP     # the runs fixture's sweep: its programs are compiled already

  class Crash(Exception):
    pass

  class CrashAfter(loop.Reporter):
    def chunk(self, stage_name, global_epoch, metrics, returns):
      if global_epoch > 60:     # after the checkpoint at 60
        raise Crash

  class TerminateAt20(loop.Reporter):
    def chunk(self, stage_name, global_epoch, metrics, returns):
      if global_epoch == 20:
        handler = signal.getsignal(signal.SIGTERM)     # the loop's (on any other, SIGTERM would end this process)
        assert type(getattr(handler, '__self__', None)).__name__ == '_StopSignals', handler
        os.kill(os.getpid(), signal.SIGTERM)

  full, full_history, _ = loop.train(method, suite, eval_suite, None, LOOP, str(tmp_path / 'full'), sweep=sweep)
  with pytest.raises(Crash):
    loop.train(method, suite, eval_suite, None, LOOP, str(tmp_path / 'crashed'), CrashAfter(), sweep=sweep)
  with pytest.raises(loop.Interrupted, match='SIGTERM received: stopped at epoch') as stop:
    loop.train(method, suite, eval_suite, None, LOOP, str(tmp_path / 'terminated'), TerminateAt20(), sweep=sweep)
  stopped = int(re.search(r'stopped at epoch (\d+)', str(stop.value)).group(1))
  assert 20 <= stopped < LOOP.checkpoint_every, str(stop.value)
  assert os.listdir(tmp_path / 'terminated' / 'checkpoints') == [str(stopped)]   # the SIGTERM's own
  for workdir in ('crashed', 'terminated'):
    resumed, resumed_history, _ = loop.train(method, suite, eval_suite, None, LOOP, str(tmp_path / workdir),
                                             sweep=sweep)
    assert_close(resumed, full, 0)
    assert resumed_history == full_history


SHARDED = r'''
import sys, numpy as np, jax
from ktm import loop
from ktm.envs import make_suite
from ktm.methods import TaskInfo
from ktm.runs import run_config, sweep_members
from tests.test_sweep import EPISODE, LOOP, SCHEDULE, SWEEP, TINY, leaves
assert len(jax.devices()) == 4
suite = make_suite('pendulum_group', episode_length=EPISODE)
eval_suite = make_suite('pendulum_group', num_envs=2, episode_length=EPISODE)
method = run_config.build_method('ideal', TaskInfo.from_suite(suite), dict(cfg=dict(obs_size=suite.obs_size,
    act_size=suite.act_size, **TINY['cfg']), schedule=SCHEDULE))
mesh = sweep_members.member_mesh(SWEEP.size)
assert mesh is not None and mesh.devices.size == 4
sharded, history, _ = loop.train(method, suite, eval_suite, None, LOOP, sweep=SWEEP, mesh=mesh)
assert len(jax.tree.leaves(sharded.learner)[0].sharding.device_set) == 4
np.savez(sys.argv[1], returns=np.asarray([h['returns'] for h in history]), *leaves(sharded))
'''


def host_devices_env(count):
  """The environment for a CPU subprocess with `count` host devices, keeping the XLA flags the tests run with."""
  return dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}",
              JAX_PLATFORMS='cpu')


def test_sharded_over_four_devices_equals_unsharded(runs, tmp_path):
  """The 4-member sweep split over 4 devices (a subprocess with 4 host devices) equals the same sweep on one device
  (this process, `runs`): parameters within ATOL, replay and env states within TRAJECTORY_ATOL; and unsharded members
  equal single runs (the test above)."""
  out = tmp_path / 'sharded.npz'
  proc = subprocess.run([sys.executable, '-c', SHARDED, str(out)], cwd=ROOT, env=host_devices_env(4),
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  saved = np.load(out)
  sharded = [saved[f'arr_{i}'] for i in range(len(saved.files) - 1)]
  unsharded = runs['swept']
  learner = len(leaves(unsharded.learner))
  assert_close(sharded[:learner], leaves(unsharded.learner), ATOL)
  assert_close(sharded[learner:], leaves(unsharded.replace(learner=None)), TRAJECTORY_ATOL)
  np.testing.assert_allclose(saved['returns'], np.asarray([h['returns'] for h in runs['history']]), atol=1e-2)


def script(name, args, **kw):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', name)] + args, cwd=ROOT,
                        capture_output=True, text=True, timeout=900, **kw)


def test_sweeps_from_the_command_line_and_over_two_jax_distributed_processes(tmp_path):
  """A 2-member teacher sweep (train_teachers --seeds=2) split over two processes on localhost (jax.distributed,
  CPU collectives over gloo) equals the same sweep in one process: each process writes only its own member's files,
  one results table. The one-process sweep's teachers then teach run_ktm --seeds=2 --sweep=alpha=0,1: student seed
  i uses teacher seed i; one results row per member, a summary per setting, per-member metrics; evaluate.py
  --member. (One teacher sweep serves both checks: a subprocess less.)"""
  import socket
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = s.getsockname()[1]
  args = ['--preset=tiny', '--seeds=2', '--progress_bar=false', '--tensorboard=false', '--steps=200',
          '--start_steps=100', '--eval_every=100', '--checkpoint_every=100']
  env = host_devices_env(1)
  multi, teacher_dir, workdir = tmp_path / 'multi', tmp_path / 't', tmp_path / 'k'
  procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, 'experiments', 'train_teachers.py'),
                             f'--workdir={multi}', f'--coordinator_address=localhost:{port}', '--num_processes=2',
                             f'--process_id={i}'] + args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
  proc = script('train_teachers.py', [f'--workdir={teacher_dir}'] + args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (teacher_dir / 'teachers' / 'set.json').exists()
  assert (teacher_dir / 'member_1' / 'teachers' / 'set.json').exists()
  suite = make_suite('pendulum_group')
  for m in range(2):
    a = teachers.load(sweep_members.member_dir(str(multi), m), suite)
    b = teachers.load(sweep_members.member_dir(str(teacher_dir), m), suite)
    # each process vmaps one member, one process vmaps two: float32 rounding differs (see ATOL), and the pendulum
    # dynamics amplify it along a trajectory (max 3.7e-5 in observations after 200 steps)
    assert_close(a.states, b.states, 1e-4)
    assert_close(a.buffer, b.buffer, 1e-3)
  multi_results = json.load(open(multi / 'results.json'))
  one_results = json.load(open(teacher_dir / 'results.json'))
  assert [m['seed'] for m in multi_results['members']] == [0, 1]
  for x, y in zip(multi_results['members'], one_results['members']):
    for r, s in zip(x['tasks'], y['tasks']):
      assert r['student_return'] == pytest.approx(s['student_return'], abs=1.0)

  proc = script('run_ktm.py', ['--preset=tiny', f'--workdir={workdir}', f'--teacher_dir={teacher_dir}', '--seeds=2',
                               '--sweep=alpha=0,1', '--progress_bar=false', '--tensorboard=false'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'each member uses the teacher set of its seed' in proc.stdout
  results = json.load(open(workdir / 'results.json'))
  assert [(r['seed'], r['values']) for r in results['members']] == [(0, {'alpha': 0.0}), (1, {'alpha': 0.0}),
                                                                     (0, {'alpha': 1.0}), (1, {'alpha': 1.0})]
  teacher_best = one_results['members']
  for r in results['members']:
    own = teacher_best[r['seed']]['tasks']
    for row, t in zip(r['tasks'], own):
      assert row['teacher_return'] == pytest.approx(t['student_return'])
  assert [s['values'] for s in results['summary']] == [{'alpha': 0.0}, {'alpha': 1.0}]
  for s in results['summary']:
    members = [r for r in results['members'] if r['values'] == s['values']]
    for k, t in enumerate(s['tasks']):
      vals = [r['tasks'][k]['student_return'] for r in members]
      assert t['student_return_mean'] == pytest.approx(np.mean(vals)) and t['seeds'] == 2
      assert t['student_return_std'] == pytest.approx(np.std(vals))
  for m in range(4):
    assert os.path.exists(os.path.join(sweep_members.member_dir(str(workdir), m), 'metrics.csv'))
  proc = script('evaluate.py', [f'--checkpoint={workdir}', '--member=2', '--episodes=2'])
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'member 2: seed 0 alpha=1' in proc.stdout
