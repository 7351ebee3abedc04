"""experiments/report.py and ktm.report on small synthetic run directories with hand-computed expectations."""

import dataclasses
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.stats

from ktm import metrics as metrics_lib
from ktm.report import build, runs as runs_lib, stats, tables

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEACHER = {'A': 100.0, 'B': 200.0, 'C': 50.0}


def write_run(path, config, results=None, metrics=()):
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'config.json'), 'w') as f:
    json.dump(config, f)
  if results is not None:
    with open(os.path.join(path, 'results.json'), 'w') as f:
      json.dump(results, f)
  if metrics:
    with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
      f.writelines(json.dumps(row) + '\n' for row in metrics)


def write_random(path, returns, benchmark='toy'):
  """A random_returns.json cache (ktm.report.random_policy's layout) holding `returns` {task: mean}."""
  with open(path, 'w') as f:
    json.dump({'how': 'hand-written', 'benchmarks': {benchmark: {t: {'mean': v} for t, v in returns.items()}}}, f)
  return str(path)


def curve_rows(final, steps=(0, 1000, 2000)):
  """Evaluation rows rising linearly to `final` ({task: return}) at the last step, plus a training-only row."""
  rows = [{'step': s, **{f'eval_return/{t}': v * (i + 1) / len(steps) for t, v in final.items()}}
          for i, s in enumerate(steps)]
  return rows + [{'step': steps[-1] + 1, 'critic_loss': 0.5}]


def student_results(returns, method=None):
  rows = [dict(name=t, student_return=v, teacher_return=TEACHER[t], ratio=v / TEACHER[t]) for t, v in returns.items()]
  return dict(benchmark='toy', tasks=rows, wall_seconds=60.0, **({'method': method} if method else {}))


def ktm_config(**ktm):
  return dict(benchmark='toy', td3={'hidden_sizes': [8, 8]}, teacher_dir='/nonexistent',
              ktm={'offline_epochs': 1000, 'online_epochs': 1000, 'alpha': 1.0, 'beta': 1.0,
                   'replay': 'hierarchical', 'seed': 0, **ktm})


@pytest.fixture
def toy_runs(tmp_path):
  """Teachers (old layout), KTM seeds 0 (old layout) and 1 (new layout, task C missing), TD3-MT, w/o HER."""
  d = tmp_path / 'runs'
  teacher_rows = [dict(name=t, final_return=v, best_return=v, steps=2000, wall_seconds=30.0)
                  for t, v in TEACHER.items()]
  write_run(d / 'teachers', dict(benchmark='toy', td3={}, train={'seed': 0, 'steps': 2000}, device='cpu'),
            dict(benchmark='toy', tasks=teacher_rows, wall_seconds=30.0), curve_rows(TEACHER))
  write_run(d / 'ktm0', ktm_config(), student_results({'A': 110.0, 'B': 180.0, 'C': 50.0}),
            curve_rows({'A': 110.0, 'B': 180.0, 'C': 50.0}))
  write_run(d / 'ktm1', dict(ktm_config(seed=1), method='ktm', seed=1),
            student_results({'A': 90.0, 'B': 200.0}, 'ktm'), curve_rows({'A': 90.0, 'B': 200.0}))
  write_run(d / 'td3mt', dict(benchmark='toy', method='td3_mt', seed=0),
            student_results({'A': 50.0, 'B': 100.0, 'C': 25.0}, 'td3_mt'),
            curve_rows({'A': 50.0, 'B': 100.0, 'C': 25.0}))
  write_run(d / 'noher', ktm_config(replay='flat'), student_results({'A': 80.0, 'B': 160.0, 'C': 40.0}),
            curve_rows({'A': 80.0, 'B': 160.0, 'C': 40.0}))
  return d


def md_table(text, heading):
  """The first markdown table after the line starting with `heading`, as {first cell: {column: cell}}."""
  lines = text.splitlines()
  start = next(i for i, l in enumerate(lines) if l.startswith(heading))
  rows = []
  for line in lines[start + 1:]:
    if line.startswith('|'):
      rows.append([c.strip() for c in line.strip().strip('|').split('|')])
    elif rows:
      break
  header = rows[0]
  return {r[0]: dict(zip(header, r)) for r in rows[2:]}


def test_iqm_against_hand_computed_and_scipy():
  assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)         # 8 scores: drop 2 each end -> mean(3, 4, 5, 6)
  assert stats.iqm([0.0, 1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.0)   # 5: drop 1 each end -> mean(1, 2, 3)
  assert stats.iqm([[7.0, 1.0], [3.0, 5.0]]) == pytest.approx(4.0)      # pooled: 1 3 5 7 -> mean(3, 5)
  assert stats.iqm([0, 0, 1, 2, 3, 10, 100]) == pytest.approx(3.2)     # 7: int(1.75) = 1 dropped each end
  x = np.random.default_rng(0).normal(size=37)
  assert stats.iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25))


def test_mean_std_is_sample_std():
  assert stats.mean_std([110.0, 90.0]) == pytest.approx((100.0, math.sqrt(200.0), 2))
  mean, std, n = stats.mean_std([5.0, None, float('nan')])
  assert (mean, n) == (5.0, 1) and math.isnan(std)
  assert stats.mean_std([])[2] == 0


def test_stratified_bootstrap_keeps_strata_and_is_deterministic():
  # Each task resampled within itself: task 0 only ever gives 0s and task 1 only 1s, so every replicate's mean of
  # 3 + 3 pooled scores is exactly 0.5 (resampling the 6 pooled scores would vary).
  reps = stats.stratified_bootstrap([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], lambda x: x.mean(axis=1), reps=500)
  np.testing.assert_array_equal(reps, np.full(500, 0.5))
  per_task = [np.random.default_rng(1).normal(size=5), np.random.default_rng(2).normal(1.0, size=3), [2.0]]
  point, low, high = stats.iqm_with_ci(per_task, reps=1000, seed=3)
  assert point == pytest.approx(stats.iqm(np.concatenate([np.ravel(p) for p in per_task])))
  assert low <= point <= high and low < high
  assert stats.iqm_with_ci(per_task, reps=1000, seed=3) == (point, low, high)
  assert stats.iqm_with_ci(per_task, reps=1000, seed=4) != (point, low, high)


def test_iqm_with_ci_per_step_equals_one_column_at_a_time():
  rng = np.random.default_rng(5)
  per_task = [rng.normal(size=(2, 4)), rng.normal(size=(3, 4)), rng.normal(size=(1, 4))]   # [runs, steps]
  point, low, high = stats.iqm_with_ci(per_task, reps=400, seed=7)
  for j in range(4):
    column = stats.iqm_with_ci([p[:, j] for p in per_task], reps=400, seed=7)
    np.testing.assert_allclose((point[j], low[j], high[j]), column)


def test_read_curves_keeps_last_row_of_a_repeated_step(tmp_path):
  write_run(tmp_path, {'ktm': {}}, metrics=[
      {'step': 0, 'eval_return/A': 1.0}, {'step': 1000, 'eval_return/A': 2.0, 'critic_loss': 3.0},
      {'step': 500, 'critic_loss': 1.0}, {'step': 1000, 'eval_return/A': 5.0}, {'step': 2000, 'eval_return/A': 4.0}])
  steps, returns = runs_lib.curves_of(metrics_lib.read_rows(os.path.join(tmp_path, 'metrics.jsonl')))['A']
  np.testing.assert_array_equal(steps, [0, 1000, 2000])
  np.testing.assert_array_equal(returns, [1.0, 5.0, 4.0])
  run, = runs_lib.load_run(str(tmp_path))          # no results.json: the metric comes from the curve
  assert run.returns == {'A': 5.0} and not run.complete and run.label == 'KTM'


def test_a_run_read_while_it_writes_its_last_line_skips_that_line_with_one_warning(tmp_path, capsys):
  write_run(tmp_path, {'ktm': {}}, metrics=[{'step': 0, 'eval_return/A': 1.0}, {'step': 1000, 'eval_return/A': 2.0}])
  with open(os.path.join(tmp_path, 'metrics.jsonl'), 'a') as f:
    f.write('{"step": 2000, "eval_return/A": 9')           # the writer's next row, half written
  run, = runs_lib.load_run(str(tmp_path))
  np.testing.assert_array_equal(run.curves['A'][0], [0, 1000])
  assert run.returns == {'A': 2.0}
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(f'warning: {tmp_path}') and 'last line' in err[0]


@pytest.mark.parametrize('ktm, label', [
    ({'offline_epochs': 0}, 'w/o Offline'), ({'online_epochs': 0}, 'w/o Online'),
    ({'alpha': 0.0}, 'Online w/o Teacher'), ({'beta': 0}, 'Online only Teacher'), ({'replay': 'flat'}, 'w/o HER'),
    ({'alpha': 0.5}, 'KTM')])
def test_ablation_labels(ktm, label):
  assert runs_lib.ktm_label({'offline_epochs': 10, 'online_epochs': 10, 'alpha': 1, 'beta': 1,
                             'replay': 'hierarchical', **ktm}) == label


def test_report_tables_match_hand_computed_values(toy_runs, tmp_path):
  out = tmp_path / 'out'
  start = time.perf_counter()
  random = write_random(tmp_path / 'random.json', {'A': 0.0, 'B': 0.0, 'C': 0.0})   # normalized score = ratio
  summary = build.write_report([str(toy_runs / n) for n in ('teachers', 'ktm0', 'ktm1', 'td3mt', 'noher')],
                               str(out), reps=300, seed=0, random_path=random)
  elapsed = time.perf_counter() - start
  text = (out / 'REPORT.md').read_text()
  s = summary['benchmarks']['toy']
  assert s['labels'] == ['KTM', 'Ideal', 'TD3-MT', 'w/o HER']
  assert [r['seed'] for r in s['runs']['KTM']] == [0, 1]

  returns = md_table(text, '### Max average return')
  assert returns['A']['KTM'] == '100.0 ± 14.1'                   # (110, 90): sample std sqrt(200)
  assert returns['B']['KTM'] == '190.0 ± 14.1'
  assert returns['C']['KTM'] == '50.0 (n=1)'                     # seed 1 has no task C: not filled in
  assert returns['C']['TD3-MT'] == '25.0' and returns['A']['Ideal'] == '100.0'

  ratios = md_table(text, '### Performance ratio')
  assert ratios['A']['KTM'] == '1.000 ± 0.141'                   # (1.1, 0.9)
  assert ratios['B']['KTM'] == '0.950 ± 0.071'                   # (0.9, 1.0)
  assert ratios['C']['w/o HER'] == '0.800'
  assert ratios['Average']['KTM'] == '0.983'                     # (1.0 + 0.95 + 1.0) / 3
  assert 'TD3-MT' not in ratios['A']                             # Table 3 holds KTM and its ablations only

  agg = md_table(text, '### Aggregate per method')
  assert agg['KTM']['runs'] == '2' and agg['KTM']['tasks'] == '3/3'
  assert agg['KTM']['mean ratio, max per task'] == '0.983'
  # pooled KTM scores 1.1 0.9 | 0.9 1.0 | 1.0 -> drop one each end of 5 -> mean(0.9, 1.0, 1.0)
  assert s['aggregate']['KTM']['iqm'] == pytest.approx((0.9 + 1.0 + 1.0) / 3)
  assert s['aggregate']['KTM']['ci_low'] <= s['aggregate']['KTM']['iqm'] <= s['aggregate']['KTM']['ci_high']
  assert agg['TD3-MT']['IQM normalized, max per task [95% CI]'] == '0.500 [0.500, 0.500]'
  assert agg['Ideal']['mean ratio, max per task'] == '1.000'
  # final ratio: each run's mean of its last 5 (here all 3) evaluations, which rise as final * (1/3, 2/3, 1)
  assert agg['KTM']['mean ratio, final (last 5)'] == '0.656'   # 2/3 * (1.0 + 0.95 + 1.0) / 3
  assert agg['TD3-MT']['mean ratio, final (last 5)'] == '0.333'  # 2/3 * 0.5
  # every curve peaks at its last evaluation, so the best checkpoint is the last one and equals the stitched max
  assert agg['KTM']['mean ratio, best checkpoint'] == '0.983'
  assert elapsed < 60


def test_final_ratio_averages_the_last_evaluations_and_skips_runs_without_curves(toy_runs):
  loaded = runs_lib.load_runs([str(toy_runs / n) for n in ('teachers', 'ktm0', 'ktm1', 'td3mt')])
  s = tables.summarize(loaded, 'toy', tables.load_paper(), reps=10, final_evals=2)
  # last 2 of 3 evaluations: final * (2/3 + 1) / 2 = final * 5/6; KTM's per-task means over seeds (1.1, 0.9),
  # (0.9, 1.0), (1.0) of final / Ideal
  assert s.aggregate['KTM']['final_ratio'] == pytest.approx(5 / 6 * (1.0 + 0.95 + 1.0) / 3)
  assert s.aggregate['Ideal']['final_ratio'] == pytest.approx(5 / 6)
  no_curves = [dataclasses.replace(r, curves={}) if r.label == 'TD3-MT' else r for r in loaded]
  s = tables.summarize(no_curves, 'toy', tables.load_paper(), reps=10)
  assert math.isnan(s.aggregate['TD3-MT']['final_ratio']) and s.aggregate['TD3-MT']['mean_ratio'] == 0.5
  assert tables.fmt_value(s.aggregate['TD3-MT']['final_ratio'], 3) == tables.MISSING


def test_missing_method_and_task_shown_as_missing_with_paper_numbers(tmp_path):
  d = tmp_path / 'b'
  rows = [dict(name='Ant', student_return=5000.0, teacher_return=5500.0, ratio=0.9),
          dict(name='Hopper', student_return=3000.0, teacher_return=3000.0, ratio=1.0)]
  write_run(d, dict(benchmark='benchmark_b', method='ktm', seed=0, ktm={'seed': 0}),
            dict(benchmark='benchmark_b', method='ktm', tasks=rows, wall_seconds=1.0))
  summary = build.write_report([str(d)], str(tmp_path / 'out'), reps=100)
  text = (tmp_path / 'out' / 'REPORT.md').read_text()
  returns = md_table(text, '### Max average return (paper Table 2)')
  assert returns['Walker2d']['KTM'] == tables.MISSING              # task without a run
  assert returns['Ant']['TD3-MT'] == tables.MISSING                # method without a run ...
  assert returns['Ant']['TD3-MT (paper)'] == '324'                 # ... beside the paper's number
  assert returns['Ant']['KTM (paper)'] == '5836'
  ratios = md_table(text, '### Performance ratio')
  assert ratios['Ant']['KTM'] == f'{5000 / 5500:.3f}'              # Ideal from the recorded teacher_return
  assert ratios['Ant']['w/o HER'] == tables.MISSING and ratios['Ant']['w/o HER (paper)'] == '0.2215'
  assert ratios['Walker2d']['KTM'].startswith('n/a')               # no Ideal known for it: no ratio
  assert 'Walker2d (—)' in text.split('Left out of the ratios and aggregates')[1].splitlines()[0]
  assert summary['benchmarks']['benchmark_b']['aggregate']['KTM']['tasks'] == 2


def test_sweep_members_are_seeds_and_swept_values_make_labels(tmp_path):
  d = tmp_path / 'sweep'
  members = [dict(member=i, seed=seed, values={'alpha': alpha},
                  tasks=[dict(name='A', student_return=ret, teacher_return=100.0, ratio=ret / 100.0)])
             for i, (alpha, seed, ret) in enumerate([(0.5, 0, 80.0), (0.5, 1, 90.0), (0.0, 0, 70.0)])]
  write_run(d, ktm_config(), dict(benchmark='toy', method='ktm', members=members, summary={}))
  write_run(d / 'member_1', {}, metrics=curve_rows({'A': 90.0}))   # ktm.runs.sweep_members.member_dir
  runs = runs_lib.load_runs([str(d)])
  assert [(r.label, r.seed) for r in runs] == [('KTM alpha=0.5', 0), ('KTM alpha=0.5', 1),
                                               ('Online w/o Teacher', 0)]
  assert runs[1].curves['A'][1][-1] == 90.0 and runs[0].curves == {}
  labelled = runs_lib.load_runs([f'{d}=Mine'])
  assert [r.label for r in labelled] == ['Mine alpha=0.5', 'Mine alpha=0.5', 'Mine alpha=0.0']


def test_an_unfinished_sweep_gives_one_run_per_member_from_its_metrics(tmp_path):
  """No results.json yet: config.json's sweep names the members; each member's best evaluation so far is read
  from its own metrics.jsonl (member 0 in the run directory, member i in member_<i>/)."""
  d = tmp_path / 'running'
  write_run(d, dict(ktm_config(), method='ktm', sweep={'seeds': [0, 1], 'values': {}}),
            metrics=curve_rows({'A': 120.0, 'B': 30.0}))
  write_run(d / 'member_1', {}, metrics=curve_rows({'A': 90.0, 'B': 60.0}))
  runs = runs_lib.load_runs([str(d)], auto_teachers=False)
  assert [(r.label, r.seed, r.complete) for r in runs] == [('KTM', 0, False), ('KTM', 1, False)]
  assert runs[0].returns == {'A': 120.0, 'B': 30.0} and runs[1].returns == {'A': 90.0, 'B': 60.0}
  assert runs[0].wall_seconds is None and runs[0].path.endswith('#member0')


def test_figures_written_and_curves_aligned(toy_runs, tmp_path):
  all_runs = runs_lib.load_runs([str(toy_runs / n) for n in ('teachers', 'ktm0', 'ktm1', 'td3mt')])
  s = tables.summarize(all_runs, 'toy', tables.load_paper(), reps=100, random={'A': 0.0, 'B': 0.0, 'C': 0.0})
  steps, values = build.figures.aligned(s.runs['KTM'], 'A')
  np.testing.assert_array_equal(steps, [0, 1000, 2000])
  np.testing.assert_allclose(values[:, -1], [110.0, 90.0])
  steps, point, low, high = build.figures.iqm_curve(s.runs['TD3-MT'], s.tasks, s.ratio_of, reps=100)
  np.testing.assert_allclose(point, [0.5 / 3, 1.0 / 3, 0.5])     # normalized scores, all tasks equal
  assert np.all(low <= point + 1e-12) and np.all(point <= high + 1e-12)
  for name, plot in (('returns.png', build.figures.plot_returns), ('iqm.png', build.figures.plot_iqm)):
    path = tmp_path / name
    assert plot(s, str(path)) == ['Ideal', 'KTM', 'TD3-MT']
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 5000


def test_every_method_of_a_full_table_gets_its_own_line_style():
  labels = [f'method {i}' for i in range(12)]                  # Table 2 + Table 3 on one benchmark: 12 labels
  styles = build.figures.line_styles(labels)
  assert len({(v['color'], v['ls']) for v in styles.values()}) == 12
  assert styles['method 0'] == dict(color='C0', ls='-') and styles['method 10'] == dict(color='C0', ls='--')
  assert ':' not in {v['ls'] for v in build.figures.line_styles([str(i) for i in range(30)]).values()}


def test_cli_writes_report_with_label_override(toy_runs, tmp_path):
  out = tmp_path / 'cli'
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
  proc = subprocess.run([sys.executable, os.path.join(REPO, 'experiments', 'report.py'), str(toy_runs / 'ktm0'),
                         f'{toy_runs / "td3mt"}=My baseline', f'--out={out}', '--bootstrap_reps=100'],
                        capture_output=True, text=True, cwd=REPO, timeout=300, check=False, env=env)
  assert proc.returncode == 0, proc.stderr
  text = (out / 'REPORT.md').read_text()
  assert '| My baseline |' in text and 'TD3-MT' not in md_table(text, '### Max average return')['A']
  # no teacher run given and ktm0's teacher_dir does not exist: Ideal comes from the recorded teacher_return
  assert md_table(text, '### Performance ratio')['A']['KTM'] == '1.100'
  assert sorted(p.name for p in out.glob('*.png')) == ['fig_toy_iqm_table2.png', 'fig_toy_returns_table2.png']
  assert not (out / 'random_returns.json').exists()      # 'toy' is no suite: nothing measured, nothing cached


@pytest.mark.parametrize('ktm, label', [
    ({'trust_rule': 'qfilter', 'trust_audit': 0.75}, 'KTM+'), ({'trust_audit': 0.5}, 'KTM+'),
    ({'trust_rule': 'none', 'trust_audit': None}, 'KTM'), ({'offline_epochs': 0, 'trust_rule': 'both'},
                                                           'w/o Offline +trust'),
    ({'corrupt_teachers': 'A=random'}, 'KTM (corrupted teachers)'),
    ({'corrupt_teachers': 'A=random', 'trust_audit': 0.75}, 'KTM+ (corrupted teachers)'),
    ({'trust_audit': 0.75, 'offline_patience': 2, 'value_norm': 'scale', 'corrupt_teachers': 'A=random'},
     'KTM+ +offline patience 2 +value scaling (corrupted teachers)'), ({'value_norm': 'none'}, 'KTM')])
def test_trusted_and_corrupted_labels(ktm, label):
  assert runs_lib.ktm_label({'offline_epochs': 10, 'online_epochs': 10, 'alpha': 1, 'beta': 1, **ktm}) == label


def test_baselines_with_value_scaling_are_labelled_apart():
  assert runs_lib.default_label('td3_mt', {'ktm': {'value_norm': 'scale'}}) == 'TD3-MT +value scaling'
  assert runs_lib.default_label('sharednet', {'cfg': {'value_norm': 'scale'}}) == 'SharedNet +value scaling'
  assert runs_lib.default_label('sac_mt', {'cfg': {'value_norm': 'none'}}) == 'SAC-MT'
  assert runs_lib.default_label('sac_mt', {}) == 'SAC-MT'


def test_run_table_names_corrupted_teachers_and_trust_curves_are_read_and_drawn(tmp_path):
  trust_rows = [{'step': 1000, 'eval_return/A': 50.0, 'eval_return/B': 60.0, 'teacher_trust/A': 1.0,
                 'teacher_trust/B': 0.0},
                {'step': 2000, 'eval_return/A': 80.0, 'eval_return/B': 90.0, 'teacher_trust/A': 0.4,
                 'teacher_trust/B': None}]
  write_run(str(tmp_path / 'bad'), ktm_config(corrupt_teachers='B=adversarial', trust_audit=0.75),
            student_results({'A': 80.0, 'B': 90.0}), trust_rows)
  write_run(str(tmp_path / 'plain'), ktm_config(), student_results({'A': 70.0, 'B': 70.0}),
            curve_rows({'A': 70.0, 'B': 70.0}, steps=(1000, 2000)))
  all_runs = runs_lib.load_runs([str(tmp_path / 'bad'), str(tmp_path / 'plain')])
  bad, plain = all_runs
  assert bad.label == 'KTM+ (corrupted teachers)' and plain.label == 'KTM'
  np.testing.assert_array_equal(bad.trust['A'][0], [1000, 2000])
  np.testing.assert_array_equal(bad.trust['A'][1], [1.0, 0.4])
  np.testing.assert_array_equal(bad.trust['B'][1], [0.0])          # a step that logged no trust is no point
  assert plain.trust == {}
  table = build.runs_table(all_runs)
  assert 'corrupted: B=adversarial' in table and 'as trained' in table
  assert build.budget.teachers_of(ktm_config(offline_epochs=0, alpha=0.0)) == '—'      # TD3-MT uses none
  s = tables.summarize(all_runs, 'toy', tables.load_paper(), reps=50)
  path = tmp_path / 'trust.png'
  assert build.figures.plot_trust(s, str(path)) == ['KTM+ (corrupted teachers)']
  assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert build.figures.plot_trust(tables.summarize([plain], 'toy', tables.load_paper(), reps=50),
                                  str(tmp_path / 'none.png')) == []
  assert not (tmp_path / 'none.png').exists()


def test_a_user_suite_benchmark_gets_figure_files_named_without_its_path(tmp_path):
  """A run of 'DIR/name.py:SUITE' (a user suite): its figures are fig_name_SUITE_*.png in OUT, not a path."""
  benchmark = str(tmp_path / 'suites' / 'my_suite.py') + ':GROUP'
  d = tmp_path / 'runs'
  finals = {'A': 110.0, 'B': 180.0, 'C': 50.0}
  for name, method in (('ktm', None), ('td3mt', 'td3_mt')):
    results = dict(student_results(finals, method), benchmark=benchmark)
    config = dict(ktm_config(), benchmark=benchmark) if method is None else dict(benchmark=benchmark, method=method)
    write_run(d / name, config, results, curve_rows(finals))
  out = tmp_path / 'out'
  build.write_report([str(d / 'ktm'), str(d / 'td3mt')], str(out), reps=50, random_path=None)
  assert sorted(p.name for p in out.iterdir()) == ['REPORT.md', 'fig_my_suite_GROUP_iqm_table2.png',
                                                   'fig_my_suite_GROUP_returns_table2.png', 'summary.json']
  assert '](fig_my_suite_GROUP_returns_table2.png)' in (out / 'REPORT.md').read_text()
