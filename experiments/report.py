r"""The reproduction report: the paper's Tables 1-3 and Figures 2-3 from run directories.

  python experiments/report.py runs/teachers_b runs/ktm_b_s0 runs/ktm_b_s1 runs/td3mt_b --out=results/b
  python experiments/report.py runs/teachers_b "runs/ktm_b_a05=KTM alpha=0.5" --out=DIR   # DIR=LABEL: own label

Each RUN_DIR is a teacher, KTM-DRL (ablations are recognised from its config), baseline or sweep directory; runs
with the same label are seeds of one method. A KTM run's teachers (config "teacher_dir") are added as the Ideal
runs unless teacher runs of that benchmark are given. Writes OUT/REPORT.md, OUT/summary.json and
OUT/fig_<benchmark>_{returns,iqm}_{table2,table3}.png; the uniform-random returns are measured once into
OUT/random_returns.json (--random_returns); --readme=README.md rewrites the README's headline blocks. Missing
methods or tasks are shown as missing ('—'), never filled in.
"""

import os
import shlex
import sys

from absl import app, flags

from experiments import config_flags
from ktm import validate
from ktm.report import build
from ktm.runs import checks

flags.DEFINE_string('out', None, 'Output directory for REPORT.md, summary.json and the figures.', required=True)
flags.DEFINE_integer('bootstrap_reps', 2000, 'Stratified-bootstrap resamples for the IQM confidence intervals.')
flags.DEFINE_integer('bootstrap_seed', 0, 'Seed of the bootstrap (the report is deterministic given it).')
flags.DEFINE_boolean('auto_teachers', True, "Add each KTM run's teacher_dir as the Ideal runs when no teacher "
                     'run of that benchmark is given.')
flags.DEFINE_string('random_returns', '', 'JSON cache of the uniform-random returns per task (the lower reference of '
                    'the normalized score); benchmarks missing there are measured once (10 episodes) and added. '
                    "Default OUT/random_returns.json; 'none': no normalized scores.")
flags.DEFINE_enum('curve_x', 'env_steps', ['env_steps', 'epochs'], 'x of the learning curves: env steps per task '
                  '(offline epochs at x <= 0) or the logged epochs.')
flags.DEFINE_string('readme', None, 'Rewrite the headline block of each benchmark (between "<!-- report:BENCHMARK '
                    '-->" and "<!-- /report:BENCHMARK -->") in this README.')
FLAGS = flags.FLAGS


@config_flags.user_errors_exit
def main(argv):
  specs = argv[1:]
  validate.check_values(dict(bootstrap_reps=validate.AT_LEAST_1, bootstrap_seed=validate.SEED),
                        bootstrap_reps=FLAGS.bootstrap_reps, bootstrap_seed=FLAGS.bootstrap_seed)
  if not specs:
    raise ValueError('give at least one RUN_DIR (or RUN_DIR=LABEL)')
  checks.check_workdir_writable(FLAGS.out, '--out')
  if FLAGS.readme and not os.path.isfile(FLAGS.readme):
    raise FileNotFoundError(f'--readme={FLAGS.readme}: no such file')
  random_path = None if FLAGS.random_returns == 'none' else (
      FLAGS.random_returns or os.path.join(FLAGS.out, 'random_returns.json'))
  summary = build.write_report(specs, FLAGS.out, FLAGS.bootstrap_reps, FLAGS.bootstrap_seed,
                               command=' '.join(shlex.quote(a) for a in ['python'] + sys.argv),
                               auto_teachers=FLAGS.auto_teachers, random_path=random_path,
                               x_axis=FLAGS.curve_x, readme=FLAGS.readme)
  for name, s in summary['benchmarks'].items():
    print(f'{name}: ' + ', '.join(f'{l} ({len(r)} run(s))' for l, r in s['runs'].items()))
  print(f'wrote {FLAGS.out}/REPORT.md')


if __name__ == '__main__':
  app.run(main, flags_parser=config_flags.parse_flags)
