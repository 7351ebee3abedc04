r"""Run a trained student (or teacher) in gymnasium's own MuJoCo env and print its returns.

  python examples/gym_policy.py --run=/tmp/ktm/quick --task=InvertedPendulumLongPole
  python examples/gym_policy.py --run=/tmp/ktm/quick --task=InvertedPendulumLongPole --teacher --episodes=3

The policy is `ktm.policy.load(RUN, TASK)`: raw observations in, actions in the actuators' range out. A morphology
variant runs in its base task's gymnasium env (e.g. InvertedPendulum-v5) on the variant's MJCF (`xml_file=`).
"""

import argparse
import os
import sys
import tempfile

import gymnasium
import numpy as np

from experiments import config_flags
from ktm import policy, validate
from ktm.envs import models, registry


def make_env(task: str) -> gymnasium.Env:
  """gymnasium's v5 env of a built-in task or of one of its morphology variants (user tasks have no gymnasium env)."""
  try:
    spec = registry.task_spec(task)
  except KeyError:
    raise ValueError(f'unknown task {task!r}') from None
  if spec.name not in ('Ant', 'HalfCheetah', 'Hopper', 'InvertedDoublePendulum', 'InvertedPendulum', 'Walker2d'):
    raise ValueError(f'{task} is not a gymnasium task')
  kwargs = {'include_cfrc_ext_in_observation': False} if spec.name == 'Ant' else {}   # ktm's Ant observation
  if task in models.VARIANTS:
    path = os.path.join(tempfile.mkdtemp(), f'{task}.xml')
    with open(path, 'w') as f:
      f.write(models.variant_xml(task, spec.xml))
    kwargs['xml_file'] = path
  return gymnasium.make(f'{spec.name}-v5', **kwargs)


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    """A bad command line is one `error: ...` line (the scripts' contract), not argparse's usage and message."""
    raise ValueError(f'{message} (see --help)')


@config_flags.user_errors_exit
def main(argv):
  parser = _Parser(description=__doc__.splitlines()[0])
  parser.add_argument('--run', required=True, help='run directory (run_ktm.py WORKDIR)')
  parser.add_argument('--task', required=True, help='task name, e.g. InvertedPendulumLongPole or HalfCheetah')
  parser.add_argument('--teacher', action='store_true', help="the run's teacher for TASK instead of the student")
  parser.add_argument('--episodes', type=int, default=1)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv[1:])
  validate.check_values(dict(episodes=validate.AT_LEAST_1, seed=validate.SEED), episodes=args.episodes,
                        seed=args.seed)
  env = make_env(args.task)
  act = (policy.load_teacher if args.teacher else policy.load)(args.run, args.task)
  for episode in range(args.episodes):
    obs, _ = env.reset(seed=args.seed + episode)
    total, steps, done = 0.0, 0, False
    while not done:
      obs, reward, terminated, truncated, _ = env.step(np.asarray(act(obs), np.float64))
      total, steps, done = total + reward, steps + 1, terminated or truncated
    print(f'{args.task} {"teacher" if args.teacher else "student"} episode {episode}: return {total:.1f} '
          f'({steps} steps)')


if __name__ == '__main__':
  main(sys.argv)
