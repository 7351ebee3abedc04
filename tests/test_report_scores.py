"""ktm.report's one-checkpoint scores, random normalization, pairwise comparisons, budget table and README
headline, on synthetic run directories and hand-computed values; and the committed results' README headline
against their summary.json and run files."""

import json
import os
import shlex

import numpy as np
import pytest

from ktm.report import budget, build, compare, headline, random_policy, runs as runs_lib, scores, stats, tables
from tests.test_report import REPO, md_table, write_random, write_run

IDEAL = {'A': 100.0, 'B': 200.0}


def teacher(path):
  rows = [dict(name=t, best_return=v) for t, v in IDEAL.items()]
  write_run(path, dict(benchmark='toy', method='ideal', seed=0), dict(benchmark='toy', tasks=rows),
            [{'step': 0, **{f'eval_return/{t}': v for t, v in IDEAL.items()}}])


def student(path, method, curves, steps=(1000, 2000, 3000), **config):
  """A finished run whose results.json holds the max of each curve ({task: [returns at `steps`]})."""
  rows = [dict(name=t, student_return=max(v)) for t, v in curves.items()]
  metrics = [{'step': s, **{f'eval_return/{t}': v[i] for t, v in curves.items()}} for i, s in enumerate(steps)]
  write_run(path, dict(benchmark='toy', method=method, seed=0, **config), dict(benchmark='toy', tasks=rows), metrics)


def summary_of(tmp_path, specs, random=None, final_evals=2):
  runs = runs_lib.load_runs([str(tmp_path / s) for s in specs])
  return tables.summarize(runs, 'toy', tables.load_paper(), reps=200, final_evals=final_evals, random=random)


def test_best_checkpoint_differs_from_the_stitched_max(tmp_path):
  teacher(tmp_path / 'ideal')
  # A peaks at 1000 (100 = 1.0), B at 3000 (200 = 1.0): stitched max 1.0 on both tasks. One checkpoint:
  # mean ratio at 1000 = (1.0 + 0.25) / 2 = 0.625, at 2000 = (0.6 + 0.5) / 2 = 0.55, at 3000 = (0.2 + 1.0) / 2 = 0.6.
  student(tmp_path / 'td3', 'td3_mt', {'A': [100.0, 60.0, 20.0], 'B': [50.0, 100.0, 200.0]})
  s = summary_of(tmp_path, ['ideal', 'td3'])
  run = s.runs['TD3-MT'][0]
  assert scores.best_checkpoint(run, ['A', 'B'], s.ideal) == 1000
  assert s.aggregate['TD3-MT']['max_ratio'] == pytest.approx(1.0)
  assert s.aggregate['TD3-MT']['checkpoint_ratio'] == pytest.approx(0.625)
  assert s.aggregate['TD3-MT']['final_ratio'] == pytest.approx(((60 + 20) / 2 / 100 + (100 + 200) / 2 / 200) / 2)
  assert s.by_kind['checkpoint']['TD3-MT'] == [{'A': 100.0, 'B': 50.0}]
  # ties go to the earliest evaluation
  tied = runs_lib.Run('x', 'x', 'td3_mt', 'toy', 0, {}, {}, {'A': (np.array([0, 5]), np.array([50.0, 50.0]))},
                      {}, None, True, {})
  assert scores.best_checkpoint(tied, ['A'], IDEAL) == 0


def test_random_normalized_score_against_hand_values(tmp_path):
  teacher(tmp_path / 'ideal')
  student(tmp_path / 'td3', 'td3_mt', {'A': [10.0, 25.0, 40.0], 'B': [0.0, 80.0, 120.0]})
  s = summary_of(tmp_path, ['ideal', 'td3'], random={'A': -50.0, 'B': 40.0})
  assert s.norm_tasks == ['A', 'B']
  # (x - random) / (Ideal - random): A (40 + 50) / 150 = 0.6, B (120 - 40) / 160 = 0.5
  assert s.normalized_runs('max', 'TD3-MT') == [{'A': pytest.approx(0.6), 'B': pytest.approx(0.5)}]
  assert scores.normalized(-50.0, -50.0, 100.0) == 0.0 and scores.normalized(100.0, -50.0, 100.0) == 1.0
  # IQM of 2 pooled scores: nothing trimmed (int(0.5) = 0) -> their mean
  assert s.aggregate['TD3-MT']['iqm'] == pytest.approx(0.55)
  # final (last 2): A (25 + 40) / 2 = 32.5 -> 82.5 / 150 = 0.55; B 100 -> 60 / 160 = 0.375
  assert s.aggregate['TD3-MT']['iqm_final'][0] == pytest.approx((0.55 + 0.375) / 2)
  # a task whose random return is unknown, or not below the Ideal, has no normalized score
  assert summary_of(tmp_path, ['ideal', 'td3'], random={'A': -50.0, 'B': 250.0}).norm_tasks == ['A']


def test_probability_of_improvement_and_difference_by_hand():
  # task 1: x {3, 1} vs y {2}: 3 > 2 wins, 1 < 2 loses -> 1/2; task 2: x {2, 2} vs y {2, 1}: 1/2 + 1 + 1/2 + 1 -> 3/4
  assert stats.probability_of_improvement([[3.0, 1.0], [2.0, 2.0]], [[2.0], [2.0, 1.0]]) == pytest.approx(0.625)
  assert stats.probability_of_improvement([[1.0]], [[1.0]]) == 0.5
  # resolved: every resample of x's runs stays above every resample of y's -> the interval excludes 0
  x, y = [[1.0, 0.8], [0.6, 0.6]], [[0.5, 0.4], [0.2, 0.3]]
  r = stats.compare(x, y, reps=500, seed=0)
  assert r['diff'] == pytest.approx((0.9 + 0.6) / 2 - (0.45 + 0.25) / 2)
  assert r['diff_low'] >= (0.8 + 0.6) / 2 - (0.5 + 0.3) / 2 - 1e-12 and r['poi'] == 1.0
  # unresolved: x's runs straddle y's; among 500 replicates the bootstrap draws x = (0, 0) with y = (0.6, 0.6)
  # (diff -0.6) and x = (1, 1) with y = (0.4, 0.4) (diff +0.6), each with probability 1/16
  r = stats.compare([[1.0, 0.0]], [[0.6, 0.4]], reps=500, seed=0)
  assert r['diff'] == pytest.approx(0.0) and r['poi'] == 0.5
  assert r['diff_low'] == pytest.approx(-0.6) and r['diff_high'] == pytest.approx(0.6)
  assert stats.compare(x, y, reps=500, seed=0) == stats.compare(x, y, reps=500, seed=0)


def test_orderings_resolved_by_seed_pairs_or_interval_else_unresolved(tmp_path):
  teacher(tmp_path / 'ideal')
  for name, method, a in (('td3', 'td3_mt', 90.0), ('sac', 'sac_mt', 20.0), ('shared', 'sharednet', 85.0)):
    for seed, shift in ((0, 0.0), (1, 10.0)):
      student(tmp_path / f'{name}{seed}', method, {'A': [a + shift] * 3, 'B': [2 * (a - shift)] * 3})
  specs = ['ideal'] + [f'{n}{i}' for n in ('td3', 'sac', 'shared') for i in (0, 1)]
  s = summary_of(tmp_path, specs, random={'A': 0.0, 'B': 0.0})
  results = {(r['x'], r['y']): r for r in compare.comparisons(s, reps=300, seed=0) if r['kind'] == 'max'}
  # normalized run means: TD3-MT (0.9, 0.9), SAC-MT (0.2, 0.2), SharedNet (0.85, 0.85): every seed pair resolves
  # TD3-MT > SAC-MT; TD3-MT vs SharedNet: seed means 0.9 > 0.85 on every pair too ...
  assert results[('TD3-MT', 'SAC-MT')]['verdict'] == 'TD3-MT > SAC-MT (every seed pair, CI)'
  assert results[('TD3-MT', 'SAC-MT')]['seed_means_x'] == pytest.approx([0.9, 0.9])
  # ... and the Ideal (1.0 on both tasks) above all three
  assert results[('Ideal', 'TD3-MT')]['verdict'].startswith('Ideal > TD3-MT')
  # unresolved: per-task scores cross (A 0.9 / 1.0 vs B 0.9 / 0.8 per seed) in a pair with a mean gap of 0 exactly
  unresolved = dict(diff_low=-0.1, diff_high=0.1, seed_means_x=[0.9, 1.0], seed_means_y=[0.95])
  assert compare.verdict('X', 'Y', unresolved) == 'unresolved'
  assert compare.verdict('X', 'Y', dict(unresolved, diff_low=-0.3, diff_high=-0.01)) == 'Y > X (CI)'
  one_each = dict(diff_low=0.5, diff_high=0.5, seed_means_x=[1.0], seed_means_y=[0.5])   # one run a side
  assert compare.verdict('X', 'Y', one_each) == 'unresolved'
  assert compare.verdict('X', 'Y', dict(one_each, seed_means_y=[0.5, 0.6])) == 'X > Y (every seed pair, CI)'
  assert 'unresolved pairs' in compare.resolved_table(list(results.values()))


@pytest.mark.parametrize('config, k, expected', [
    (dict(method='ideal', cfg=dict(batch_size=4, hidden_sizes=[8, 8], target_noise=0.2, compute_dtype='float32'),
          schedule=dict(steps=100, start_steps=10)),
     3, dict(env_steps=100, offline_epochs=0, optimizer_steps=90, samples_per_step=4, teacher_access='none')),
    (dict(method='ktm', cfg=dict(batch_size=4, hidden_sizes=[8], target_noise=0.1, compute_dtype='bfloat16'),
          ktm=dict(offline_epochs=10, online_epochs=20, online_start_steps=5, alpha=1.0, combine='sequential',
                   replay='hierarchical')),
     3, dict(env_steps=20, offline_epochs=10, optimizer_steps=75, samples_per_step=4,
             teacher_access='replay + critics (offline), critics (online)')),
    (dict(method='ktm', cfg=dict(batch_size=4), ktm=dict(offline_epochs=10, online_epochs=20, alpha=1.0,
                                                         replay='flat')),
     3, dict(env_steps=20, optimizer_steps=30, samples_per_step=4)),
    (dict(method='ktm', cfg=dict(batch_size=4), ktm=dict(offline_epochs=10, online_epochs=20, alpha=0.0,
                                                         combine='joint')),
     3, dict(optimizer_steps=30, samples_per_step=12, teacher_access='replay + critics (offline)')),
    (dict(method='td3_mt', cfg=dict(batch_size=4, target_noise=0.2),
          ktm=dict(offline_epochs=0, online_epochs=100, online_start_steps=10, alpha=0.0)),
     3, dict(env_steps=100, offline_epochs=0, optimizer_steps=270, samples_per_step=4, teacher_access='none',
             target_noise=0.2)),
    (dict(method='sac_mt', cfg=dict(batch_size=4, combine='sequential'), schedule=dict(steps=100, start_steps=10)),
     3, dict(env_steps=100, optimizer_steps=270, samples_per_step=4, target_noise=None, dtype='float32')),
    (dict(method='sharednet', cfg=dict(batch_size=4), schedule=dict(steps=100, start_steps=10, updates_per_step=2)),
     3, dict(env_steps=100, optimizer_steps=180, samples_per_step=12)),
    (dict(method='gsurgery', cfg=dict(batch_size=4), schedule=dict(steps=100, start_steps=10)),
     3, dict(optimizer_steps=90, samples_per_step=12, teacher_access='none')),
    # E = 4 envs per task, one update every 4 epochs: floor(90 / 4) updates
    (dict(method='sac_mt', cfg=dict(batch_size=4), loop=dict(num_envs=4),
          schedule=dict(steps=100, start_steps=10, updates_per_step=0.25)),
     3, dict(env_steps=400, optimizer_steps=66, samples_per_step=4)),
    (dict(method='td3_mt', cfg=dict(batch_size=4), loop=dict(num_envs=2),
          ktm=dict(offline_epochs=0, online_epochs=100, online_start_steps=10, alpha=0.0, updates_per_step=0.5)),
     3, dict(env_steps=200, optimizer_steps=135)),
    (dict(method='ideal', cfg=dict(batch_size=4), schedule=dict(steps=100, start_steps=10, updates_per_step=1.5)),
     3, dict(optimizer_steps=135)),
    (dict(method='a2c_mt', cfg=dict(n_steps=5, distill_coef=1.0, hidden_sizes=[8]), loop=dict(num_envs=8),
          schedule=dict(epochs=50)),
     3, dict(env_steps=2000, optimizer_steps=50, samples_per_step=120, teacher_access='actors (distillation)')),
])
def test_budget_rows_from_configs(config, k, expected):
  row = budget.budget_row(config, k)
  assert {key: row[key] for key in expected} == expected


def test_budget_table_and_env_step_axis(tmp_path):
  ktm = dict(method='ktm', cfg=dict(batch_size=4, hidden_sizes=[8, 8], target_noise=0.1, compute_dtype='bfloat16'),
             ktm=dict(offline_epochs=10, online_epochs=20, alpha=1.0))
  np.testing.assert_array_equal(budget.env_steps(ktm, [5, 10, 30]), [-5, 0, 20])     # offline epochs at x <= 0
  a2c = dict(method='a2c_mt', cfg=dict(n_steps=5), loop=dict(num_envs=8), schedule=dict(epochs=50))
  np.testing.assert_array_equal(budget.env_steps(a2c, [1, 50]), [40, 2000])
  run = runs_lib.Run('p', 'KTM', 'ktm', 'toy', 0, {}, {}, {}, ktm, None, True, {})
  old = runs_lib.Run('q', 'Old', 'ktm', 'toy', 0, {}, {}, {}, {'ktm': {}}, None, True, {})
  table = budget.budget_table({'KTM': [run], 'Old': [old]}, 2)
  rows = md_table('x\n' + table, 'x')
  assert rows['KTM'] == {'Method': 'KTM', 'env steps per task': '20', 'offline epochs (no env step)': '10',
                         'optimizer steps': '60', 'samples per optimizer step': '4',
                         'teacher access': 'replay + critics (offline), critics (online)', 'hidden sizes': '8-8',
                         'dtype': 'bfloat16', 'target noise': '0.1'}
  assert set(list(rows['Old'].values())[1:]) == {tables.MISSING}      # a config without the fields: not guessed


def test_random_returns_measured_once_and_cached(tmp_path):
  calls = []

  def fake(benchmark, episodes, seed):
    calls.append(benchmark)
    if benchmark == 'toy':
      raise ValueError('unknown suite')
    return {'A': {'mean': -3.0}}

  path = str(tmp_path / 'r' / 'random_returns.json')
  assert random_policy.load_or_measure(path, ['b1', 'toy'], measure_fn=fake, command='cmd') == {
      'b1': {'A': {'mean': -3.0}}}
  with open(path) as f:
    assert json.load(f)['measured_by'] == {'b1': 'cmd'}
  assert random_policy.load_or_measure(path, ['b1'], measure_fn=fake) == {'b1': {'A': {'mean': -3.0}}}
  assert calls == ['b1', 'toy']                       # b1 read from the cache the second time
  assert 'episodes per task' in random_policy.describe(path)


def test_report_is_deterministic_and_writes_the_readme_block(tmp_path):
  teacher(tmp_path / 'ideal')
  student(tmp_path / 'td3', 'td3_mt', {'A': [10.0, 25.0, 40.0], 'B': [0.0, 80.0, 120.0]})
  random = write_random(tmp_path / 'random.json', {'A': -50.0, 'B': 40.0})
  readme = tmp_path / 'README.md'
  readme.write_text('# top\n\n<!-- report:toy -->\nstale\n<!-- /report:toy -->\n\nrest\n')
  specs = [str(tmp_path / 'ideal'), str(tmp_path / 'td3')]
  outputs = []
  for out in ('out1', 'out2'):
    build.write_report(specs, str(tmp_path / out), reps=100, random_path=random, command='cmd', readme=str(readme))
    outputs.append([(tmp_path / out / n).read_bytes() for n in ('REPORT.md', 'summary.json')])
  assert outputs[0] == outputs[1]
  text = readme.read_text()
  assert text.startswith('# top\n\n<!-- report:toy -->\n**toy**, from `cmd`:') and text.endswith('\n\nrest\n')
  assert 'stale' not in text and '(out2/fig_toy_iqm_table2.png)' in text
  rows = md_table(headline.read_block(text, 'toy'), '**toy**')
  # best checkpoint at 3000 (mean ratio (0.4 + 0.6) / 2 = 0.5): normalized A 0.6, B 0.5
  assert rows['TD3-MT']['mean ratio, best checkpoint'] == '0.500'
  assert rows['TD3-MT']['IQM normalized, best checkpoint [95% CI]'] == '0.55 [0.55, 0.55]'
  with pytest.raises(ValueError, match='report:other'):
    headline.replace_block(text, 'other', 'x')


RESULTS = [os.path.join(REPO, 'results', d) for d in ('benchmark_a_cpu', 'benchmark_b_cpu')]


@pytest.mark.parametrize('results', RESULTS, ids=os.path.basename)
def test_readme_headline_matches_the_committed_results(results):
  """The README's block is the one report.py renders from the committed summary.json, and that summary's numbers
  are what the committed run files give: fails when results change and the README (or the report) does not."""
  with open(os.path.join(results, 'report', 'summary.json')) as f:
    summary = json.load(f)
  with open(os.path.join(REPO, 'README.md')) as f:
    readme = f.read()
  (name, bench), = summary['benchmarks'].items()
  out = os.path.join(results, 'report')
  expected = headline.snippet(bench, summary['command'], headline.figure_path(os.path.join(REPO, 'README.md'),
                                                                              out, name))
  assert headline.read_block(readme, name) == expected
  args = shlex.split(summary['command'])
  specs = [os.path.join(REPO, a) for a in args[2:] if not a.startswith('--')]
  runs = runs_lib.load_runs(specs)
  with open(os.path.join(out, 'random_returns.json')) as f:
    random = random_policy.means(json.load(f)['benchmarks'][name])
  s = tables.summarize(runs, name, tables.load_paper(), summary['bootstrap']['reps'], summary['bootstrap']['seed'],
                       random=random)
  assert tables.clean(s.aggregate) == bench['aggregate']


def test_ideal_is_the_mean_of_the_teacher_seeds_and_its_spread_is_shown(tmp_path):
  for seed, a in ((0, 100.0), (1, 140.0)):
    rows = [dict(name='A', best_return=a), dict(name='B', best_return=200.0)]
    write_run(tmp_path / f'ideal{seed}', dict(benchmark='toy', method='ideal', seed=seed),
              dict(benchmark='toy', tasks=rows))
  student(tmp_path / 'td3', 'td3_mt', {'A': [60.0] * 3, 'B': [100.0] * 3})
  s = summary_of(tmp_path, ['ideal0', 'ideal1', 'td3'])
  assert s.ideal == {'A': 120.0, 'B': 200.0}
  assert s.ideal_spread['A'] == pytest.approx((120.0, np.sqrt(800.0), 2))      # sample std of (100, 140)
  assert s.aggregate['TD3-MT']['max_ratio'] == pytest.approx((0.5 + 0.5) / 2)
  build.write_report([str(tmp_path / n) for n in ('ideal0', 'ideal1', 'td3')], str(tmp_path / 'out'), reps=50)
  assert '(std over teacher seeds: A 28.3, B 0.0)' in (tmp_path / 'out' / 'REPORT.md').read_text()
