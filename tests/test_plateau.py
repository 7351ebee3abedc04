"""The rule that ends a stage when it stops paying (ktm/plateau.py), against returns worked out by hand, and what
the loop and the report do with a stage that ended early (the loop's own run: tests/test_methods.py)."""

import json

import numpy as np
import pytest

from ktm import loop, metrics, plateau
from ktm.methods import ktm_drl
from ktm.methods.base import Stage
from ktm.report import runs as report_runs


def returns(*evaluations):
  """[N, S=1, K] from N lists of K returns."""
  return np.array(evaluations, np.float64)[:, None, :]


def test_stalled_by_hand():
  # patience 2: the best of the last 2 evaluations must beat the best before them by more than 1% of it
  assert not plateau.stalled(returns([100, 10], [90, 9]), 2)               # N = 2 <= patience: too early
  assert plateau.stalled(returns([100, 10], [101, 9], [100.5, 10.1]), 2)    # 101 <= 100 + 1, 10.1 <= 10 + 0.1
  assert not plateau.stalled(returns([100, 10], [101, 9], [100, 10.2]), 2)  # task 2: 10.2 > 10.1
  assert not plateau.stalled(returns([100, 10], [101.5, 9], [100, 10]), 2)  # task 1: 101.5 > 101
  # negative returns: 1% of |best| above the best
  assert plateau.stalled(returns([-200], [-199], [-198.5]), 2)               # -198.5 <= -200 + 2
  assert not plateau.stalled(returns([-200], [-197], [-250]), 2)             # -197 > -198
  # the rule looks at the whole history before the window, not the last evaluation only
  assert plateau.stalled(returns([50], [300], [100], [200], [290]), 2)       # 290 <= 300 + 3
  # members: one member still improving keeps the stage going; a diverged (NaN) member is left out
  two = np.array([[[100.0], [100.0]], [[100.0], [150.0]], [[100.0], [150.0]]])   # [N=3, S=2, K=1]
  assert not plateau.stalled(two, 2)
  two[:, 1] = np.nan
  assert plateau.stalled(two, 2)
  assert not plateau.stalled(np.full((3, 1, 1), np.nan), 1)                 # no live member: never
  # [N, S, K, E] is averaged over the episodes first: task means 10, 10, 10.05
  episodes = np.array([[[[5.0, 15.0]]], [[[9.0, 11.0]]], [[[10.0, 10.1]]]])
  assert plateau.stalled(episodes, 2) and not plateau.stalled(episodes, 2, min_gain=0.001)


def test_effective_stages_move_the_epochs_left_to_the_next_stage():
  stages = (Stage('offline', 100, patience=2), Stage('online', 50), Stage('last', 10))
  assert loop.effective_stages(stages, {}) == stages
  got = loop.effective_stages(stages, {0: 30})
  assert [(s.name, s.epochs) for s in got] == [('offline', 30), ('online', 120), ('last', 10)]
  assert got[0].patience == 2
  assert list(loop.stage_offsets(got)) == [0, 30, 150, 160]          # the total is the configured one
  assert loop.stage_boundaries(got) == (30, 150)


def test_offline_patience_needs_both_stages():
  assert ktm_drl.KTMConfig(offline_epochs=10, online_epochs=10, offline_patience=3).offline_patience == 3
  for offline, online in ((0, 10), (10, 0)):
    with pytest.raises(ValueError, match='offline_patience'):
      ktm_drl.KTMConfig(offline_epochs=offline, online_epochs=online, offline_patience=3)
  with pytest.raises(ValueError, match='offline_patience'):
    ktm_drl.KTMConfig(offline_patience=0)


def test_the_report_reads_where_the_offline_stage_ended(tmp_path):
  run = tmp_path / 'run'
  run.mkdir()
  config = dict(method='ktm', benchmark='pendulum_group', seed=0,
                ktm=dict(offline_epochs=100, online_epochs=50, offline_patience=2))
  (run / 'config.json').write_text(json.dumps(config))
  rows = [dict(step=s, stage=0.0, **{'eval_return/A': 1.0}) for s in (10, 20, 30)]
  (run / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  assert metrics.first_stage_end(str(run)) is None                       # still in its first stage
  assert report_runs.realized_stages(config, str(run)) == config
  rows.append(dict(step=40, stage=1.0, **{'eval_return/A': 2.0}))
  (run / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows) + '{"step": 5')   # torn line
  assert metrics.first_stage_end(str(run)) == 30
  realized = report_runs.realized_stages(config, str(run))
  assert realized['ktm'] == dict(offline_epochs=30, online_epochs=120, offline_patience=2)
  (run / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  [loaded] = report_runs.load_run(str(run))
  assert loaded.config['ktm']['offline_epochs'] == 30


def test_init_from_a_run_whose_offline_stage_ended_early_starts_at_its_realized_end(tmp_path):
  from ktm import td3
  from ktm.methods import TaskInfo
  from ktm.runs import run_config
  tasks = TaskInfo(('A', 'B'), (3, 3), (1, 1))
  method = ktm_drl.KTMMethod(tasks, td3.TD3Config(obs_size=3, act_size=1),
                             ktm_drl.KTMConfig(offline_epochs=100, online_epochs=50, offline_patience=2))
  source = tmp_path / 'source'
  source.mkdir()
  config = run_config.with_new_defaults(dict(method='ktm', benchmark='pendulum_group', seed=0,
                                             ktm=dict(offline_epochs=100, online_epochs=50, offline_patience=2)))
  (source / 'config.json').write_text(json.dumps(config))
  rows = [dict(step=10, stage=0.0), dict(step=20, stage=0.0)]
  (source / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  with pytest.raises(ValueError, match='has not finished its first stage'):
    run_config.first_stage_checkpoint(str(source), method, config)
  rows.append(dict(step=30, stage=1.0))
  (source / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  (source / 'checkpoints' / '20').mkdir(parents=True)
  assert run_config.first_stage_checkpoint(str(source), method, config) == (20, str(source / 'checkpoints' / '20'))
