r"""KTM-DRL end to end: teachers (trained first if missing), offline transfer, online learning, evaluation.

  # CPU-sized demo on pendulum_group, teachers included:
  python experiments/run_ktm.py --preset=quick --workdir=/tmp/ktm/quick
  # the paper's configuration on Benchmark A (teachers from --teacher_dir, trained there if missing):
  python experiments/run_ktm.py --benchmark=halfcheetah_group --workdir=runs/ktm_a --teacher_dir=runs/teachers_a

Ablations (paper Table 3): --offline_epochs=0 (w/o Offline), --online_epochs=0 (w/o Online), --alpha=0 (Online
w/o Teacher), --beta=0 (Online only Teacher), --replay=flat (w/o HER); the two online ones can start from the
KTM-DRL run's offline end with --init_from=<its WORKDIR>. Every TD3Config field (the student's), KTMConfig field
and LoopConfig field is a flag. Re-running the same command on an existing WORKDIR resumes from its
last checkpoint. Writes WORKDIR/checkpoints/, metrics.{csv,jsonl}, tensorboard/, config.json and results.json.
"""

import os

from absl import app, flags, logging

from experiments import config_flags
from ktm import loop, presets, td3
from ktm.methods import KTMConfig
from ktm.runs import student_training

config_flags.define_run_flags(presets.KTM, 'Output directory (resumed if it holds a checkpoint).')
flags.DEFINE_string('teacher_dir', None, 'Teachers (default: WORKDIR/teachers_run); trained there if missing.')
flags.DEFINE_string('init_from', None, "Start a new WORKDIR from this KTM-DRL run's checkpoint at the end of its "
                    'offline stage instead of training that stage again: the run must have the same settings except '
                    'online-only ones (alpha, beta, online_epochs, chunk_steps, online_start_steps, updates_per_step, '
                    'the noises, tau, gamma, policy_delay). Same result as training from scratch; the offline '
                    'evaluations and wall time are that run\'s.')
flags.DEFINE_integer('exit_after_checkpoint', None, 'Testing aid: exit one chunk after the N-th checkpoint.')
config_flags.define_flags(td3.TD3Config, exclude=('obs_size', 'act_size'))
config_flags.define_flags(KTMConfig)
config_flags.define_flags(loop.LoopConfig)
FLAGS = flags.FLAGS


@config_flags.user_errors_exit
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every checkpoint step at INFO
  preset = presets.KTM[FLAGS.preset]
  configs = dict(cfg={**preset['cfg'], **config_flags.overrides(td3.TD3Config, exclude=('obs_size', 'act_size'))},
                 ktm={**preset['ktm'], **config_flags.overrides(KTMConfig)})
  loop_cfg = config_flags.build(loop.LoopConfig, preset['loop'])
  teacher_dir = FLAGS.teacher_dir or os.path.join(FLAGS.workdir, 'teachers_run')
  student_training.run('ktm', FLAGS.benchmark or preset['benchmark'], configs, loop_cfg, FLAGS.workdir, teacher_dir,
                       presets.TEACHERS[preset['teachers']], FLAGS.backend, FLAGS.tensorboard, FLAGS.progress_bar,
                       FLAGS.exit_after_checkpoint, config_flags.sweep_from_flags(loop_cfg.seed), FLAGS.init_from)


if __name__ == '__main__':
  app.run(main, flags_parser=config_flags.parse_flags)
