r"""The paper's comparison methods on the shared multi-task loop: TD3-MT, SAC-MT, SharedNet, G-Surgery, A2C-MT.

  # CPU-sized runs on pendulum_group (teachers for the ratio column trained first if missing):
  python experiments/run_baseline.py --method=sac_mt --preset=quick --workdir=/tmp/ktm/sac_mt
  # Benchmark A at CPU scale (Table 1 of results/benchmark_a_cpu), 2 seeds in one program:
  python experiments/run_baseline.py --method=td3_mt --preset=cpu --seeds=2 --workdir=runs/td3_mt_a \
      --teacher_dir=runs/teachers_a
  # E = 4 envs per task and a larger batch per update ('fast', every off-policy method; --num_envs=E and a
  # fractional --updates_per_step=0.25, one update every 4 env steps, work with any preset):
  python experiments/run_baseline.py --method=td3_mt --preset=fast --workdir=/tmp/ktm/td3_mt_fast
  # the paper's setting on Benchmark A, sharing one teacher directory with run_ktm.py:
  python experiments/run_baseline.py --method=gsurgery --workdir=runs/gsurgery_a --teacher_dir=runs/teachers_a

Every field of the chosen method's configs (see --helpfull) and of LoopConfig is a flag; a flag of another method
is refused. Re-running the same command on an existing WORKDIR resumes from its last checkpoint. Writes the same
files as run_ktm.py: WORKDIR/checkpoints/, metrics.{csv,jsonl}, tensorboard/, config.json and results.json (the
teachers' best returns are the ratio's denominator; A2C-MT also distills from them).
"""

import os

from absl import app, flags, logging

from experiments import config_flags
from ktm import loop, presets
from ktm import sweep as sweep_lib
from ktm.methods import METHODS
from ktm.runs import student_training

BASELINES = ('td3_mt', 'sac_mt', 'sharednet', 'gsurgery', 'a2c_mt')
SIZE_FIELDS = ('obs_size', 'act_size')

flags.DEFINE_enum('method', None, [m for m in BASELINES if m in METHODS], 'The comparison method to train.')
config_flags.define_run_flags(sorted({p for m in BASELINES if m in METHODS for p in presets.METHODS[m]}),
                              'Output directory (resumed if it holds a checkpoint).')
flags.DEFINE_string('teacher_dir', None, 'Teachers for the ratio column (and A2C-MT\'s distillation); default '
                    'WORKDIR/teachers_run; trained there with the preset\'s teacher settings if missing.')
flags.DEFINE_boolean('train_teachers', True, 'Train missing teachers (with the preset\'s teacher settings) first. '
                     'With false, a method that does not learn from teachers runs without them (its ratio column '
                     'stays empty; the report still divides by the Ideal runs it is given); A2C-MT then needs '
                     'complete teachers in --teacher_dir.')
flags.DEFINE_integer('exit_after_checkpoint', None, 'Testing aid: exit one chunk after the N-th checkpoint.')
for _name in BASELINES:
  if _name in METHODS:
    for _cls in sweep_lib.config_fields(METHODS[_name]).values():
      config_flags.define_flags(_cls, exclude=SIZE_FIELDS)
config_flags.define_flags(loop.LoopConfig)
FLAGS = flags.FLAGS


def method_configs(method: str, preset: dict) -> dict:
  """{config field: kwargs} from the preset and the flags; a given flag that the method does not have is refused."""
  fields = sweep_lib.config_fields(METHODS[method])
  allowed = {f for cls in fields.values() for f in cls.__dataclass_fields__} | set(loop.LoopConfig.__dataclass_fields__)
  every = {f for name in BASELINES if name in METHODS for cls in sweep_lib.config_fields(METHODS[name]).values()
           for f in cls.__dataclass_fields__}
  foreign = sorted(f for f in every - allowed - set(SIZE_FIELDS) if FLAGS[f].present)
  if foreign:
    raise ValueError(f'--method={method} has no setting {", ".join("--" + f for f in foreign)} (see --helpfull)')
  return {name: {**preset.get(name, {}), **config_flags.overrides(cls, exclude=SIZE_FIELDS)}
          for name, cls in fields.items()}


@config_flags.user_errors_exit
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every checkpoint step at INFO
  if FLAGS.method is None:
    raise ValueError(f'--method is required: one of {", ".join(m for m in BASELINES if m in METHODS)}')
  if FLAGS.preset not in presets.METHODS[FLAGS.method]:
    raise ValueError(f'--method={FLAGS.method} has no preset {FLAGS.preset!r}: one of '
                     f'{", ".join(presets.METHODS[FLAGS.method])}')
  preset = presets.METHODS[FLAGS.method][FLAGS.preset]
  configs = method_configs(FLAGS.method, preset)
  loop_cfg = config_flags.build(loop.LoopConfig, preset['loop'])
  teacher_dir = FLAGS.teacher_dir or os.path.join(FLAGS.workdir, 'teachers_run')
  teacher_preset = presets.TEACHERS[preset['teachers']] if FLAGS.train_teachers else None
  student_training.run(FLAGS.method, FLAGS.benchmark or preset['benchmark'], configs, loop_cfg, FLAGS.workdir,
                       teacher_dir, teacher_preset, FLAGS.backend, FLAGS.tensorboard, FLAGS.progress_bar,
                       FLAGS.exit_after_checkpoint, config_flags.sweep_from_flags(loop_cfg.seed))


if __name__ == '__main__':
  app.run(main, flags_parser=config_flags.parse_flags)
