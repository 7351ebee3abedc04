r"""Train one TD3 teacher per task of a suite, all K in one compiled program; save them with their replay data.

  # CPU-sized demo (pendulum_group, small networks):
  python experiments/train_teachers.py --preset=quick --workdir=/tmp/ktm/teachers
  # the paper's teachers (1M steps, 400-400) for Benchmark A or B:
  python experiments/train_teachers.py --benchmark=halfcheetah_group --workdir=runs/teachers_a

Every TD3Config and TrainConfig field is also a flag (e.g. --actor_lr, --hidden_sizes=256,256, --chunk_steps=1).
Writes WORKDIR/teachers/<Task>/ (see ktm.teachers), WORKDIR/metrics.{csv,jsonl}, WORKDIR/tensorboard/,
WORKDIR/config.json and WORKDIR/results.json.
"""

from absl import app, flags, logging

from experiments import config_flags
from ktm import multi_td3, presets, td3, teachers

config_flags.define_run_flags(presets.TEACHERS, 'Output directory.')
flags.DEFINE_boolean('overwrite', False, 'Replace existing teacher directories in WORKDIR.')
config_flags.define_flags(td3.TD3Config, exclude=('obs_size', 'act_size'))
config_flags.define_flags(multi_td3.TrainConfig)
FLAGS = flags.FLAGS


def configs():
  """(benchmark, TD3Config kwargs without sizes, TrainConfig) from the preset and flags."""
  preset = presets.TEACHERS[FLAGS.preset]
  train_cfg = config_flags.build(multi_td3.TrainConfig, preset['train'])
  td3_kwargs = {**preset['td3'], **config_flags.overrides(td3.TD3Config, exclude=('obs_size', 'act_size'))}
  return FLAGS.benchmark or preset['benchmark'], td3_kwargs, train_cfg


@config_flags.user_errors_exit
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every checkpoint step at INFO
  benchmark, td3_kwargs, train_cfg = configs()
  teachers.train_and_save(benchmark, td3_kwargs, train_cfg, FLAGS.workdir, FLAGS.backend, FLAGS.overwrite,
                          FLAGS.tensorboard, FLAGS.progress_bar)


if __name__ == '__main__':
  app.run(main)
