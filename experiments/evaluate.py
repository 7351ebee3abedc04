r"""Evaluate the newest checkpoint of any method's run directory and print the per-task table.

  python experiments/evaluate.py --checkpoint=/tmp/ktm/quick
  python experiments/evaluate.py --checkpoint=/tmp/ktm/quick --episodes=20 --teachers   # re-evaluate teachers too
  python experiments/evaluate.py --checkpoint=/tmp/ktm/sweep --member=3                  # one member of a sweep
  python experiments/evaluate.py --checkpoint=/tmp/ktm/quick --agreement   # student vs teacher actions (ktm.agreement)

The teacher column is the teachers' best training evaluation unless --teachers evaluates them now.
"""

from absl import app, flags, logging

from experiments import config_flags
from ktm import agreement, validate
from ktm.runs import reporting, restore, run_config, sweep_members

flags.DEFINE_string('checkpoint', None, 'A run directory of run_ktm.py or run_baseline.py (config.json and '
                    'checkpoints/).', required=True)
flags.DEFINE_integer('episodes', None, "Deterministic episodes per task (default: the run's eval_episodes).")
flags.DEFINE_boolean('teachers', False, 'Also evaluate the teachers now (else use their training evaluations).')
flags.DEFINE_enum('backend', 'auto', ['auto', 'mjx', 'native'], 'Physics backend (auto: native on CPU).')
flags.DEFINE_integer('seed', 0, 'Evaluation seed.')
flags.DEFINE_integer('member', None, 'The sweep member to evaluate (default: every member, one table each).')
flags.DEFINE_boolean('agreement', False, "Instead of episodes: the student's greedy actions against its teachers' "
                     "on states of each teacher's replay (RMS distance, teacher-critic Q1 gap; see ktm/agreement.py).")
flags.DEFINE_integer('samples', 4096, 'With --agreement: states drawn from each teacher replay.')
FLAGS = flags.FLAGS


@config_flags.user_errors_exit
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every checkpoint step at INFO
  validate.check_values(dict(seed=validate.SEED, episodes=validate.optional(validate.AT_LEAST_1),
                             member=validate.optional(validate.NON_NEGATIVE_INT), samples=validate.AT_LEAST_1),
                        seed=FLAGS.seed, episodes=FLAGS.episodes, member=FLAGS.member, samples=FLAGS.samples)
  if FLAGS.agreement:
    if FLAGS.samples < 1:
      raise ValueError(f'--samples must be >= 1, got {FLAGS.samples}')
    members = sweep_members.config_sweep(run_config.load_run_config(FLAGS.checkpoint)).size
    for m in [FLAGS.member] if FLAGS.member is not None else range(members):
      print(f'member {m}:')
      agreement.print_rows(agreement.measure(FLAGS.checkpoint, m, FLAGS.samples, FLAGS.backend, FLAGS.seed))
    return
  tables = restore.evaluate_checkpoint(FLAGS.checkpoint, FLAGS.episodes, FLAGS.teachers, FLAGS.backend, FLAGS.seed,
                                       FLAGS.member)
  for table in tables:
    if len(tables) > 1 or table['member']:
      print(f"member {table['member']}: seed {table['seed']}" + ''.join(f' {k}={v:g}' for k, v in table['values'].items()))
    reporting.print_table(table['tasks'])


if __name__ == '__main__':
  app.run(main, flags_parser=config_flags.parse_flags)
