r"""Train one TD3 teacher per task of a suite, all K in one compiled program; save them with their replay data.

  # CPU-sized demo (pendulum_group, small networks):
  python experiments/train_teachers.py --preset=quick --workdir=/tmp/ktm/teachers
  # the paper's teachers (1M steps, 400-400) for Benchmark A or B:
  python experiments/train_teachers.py --benchmark=halfcheetah_group --workdir=runs/teachers_a

Every TD3Config, OffPolicySchedule and LoopConfig field is also a flag (e.g. --actor_lr, --hidden_sizes=256,256,
--steps=100000, --chunk_steps=10). Re-running the same command resumes from WORKDIR/checkpoints. Writes
WORKDIR/teachers/<Task>/ (see ktm.teachers; the set appears whole when training ends), WORKDIR/checkpoints/,
metrics.{csv,jsonl}, tensorboard/, config.json and results.json.
"""

from absl import app, flags, logging

from experiments import config_flags
from ktm import loop, presets, td3
from ktm.methods import OffPolicySchedule
from ktm.runs import teacher_training

config_flags.define_run_flags(presets.TEACHERS, 'Output directory (resumed if it holds a checkpoint).')
flags.DEFINE_integer('exit_after_checkpoint', None, 'Testing aid: exit one chunk after the N-th checkpoint.')
config_flags.define_flags(td3.TD3Config, exclude=('obs_size', 'act_size'))
config_flags.define_flags(OffPolicySchedule)
config_flags.define_flags(loop.LoopConfig)
FLAGS = flags.FLAGS


@config_flags.user_errors_exit
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every checkpoint step at INFO
  preset = presets.TEACHERS[FLAGS.preset]
  td3_kwargs = {**preset['cfg'], **config_flags.overrides(td3.TD3Config, exclude=('obs_size', 'act_size'))}
  schedule_kwargs = {**preset['schedule'], **config_flags.overrides(OffPolicySchedule)}
  loop_cfg = config_flags.build(loop.LoopConfig, preset['loop'])
  teacher_training.train_teachers(FLAGS.benchmark or preset['benchmark'], td3_kwargs, schedule_kwargs, loop_cfg,
                                  FLAGS.workdir, FLAGS.backend, FLAGS.tensorboard, FLAGS.progress_bar,
                                  FLAGS.exit_after_checkpoint, config_flags.sweep_from_flags(loop_cfg.seed))


if __name__ == '__main__':
  app.run(main, flags_parser=config_flags.parse_flags)
