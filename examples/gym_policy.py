r"""Run a trained student (or teacher) in gymnasium's own MuJoCo env and print its returns.

  python examples/gym_policy.py --run=/tmp/ktm/quick --task=InvertedPendulumLongPole
  python examples/gym_policy.py --run=/tmp/ktm/quick --task=InvertedPendulumLongPole --teacher --episodes=3

The policy is `ktm.policy.load(RUN, TASK)`: raw observations in, actions in the actuators' range out. A morphology
variant runs in its base task's gymnasium env (e.g. InvertedPendulum-v5) on the variant's MJCF (`xml_file=`).
"""

import argparse
import os
import tempfile

import gymnasium
import numpy as np

from ktm import policy
from ktm.envs import models, registry


def make_env(task: str) -> gymnasium.Env:
  """gymnasium's v5 env of a built-in task or of one of its morphology variants (user tasks have no gymnasium env)."""
  spec = registry.task_spec(task)
  if spec.name not in ('Ant', 'HalfCheetah', 'Hopper', 'InvertedDoublePendulum', 'InvertedPendulum', 'Walker2d'):
    raise ValueError(f'{task} is not a gymnasium task')
  kwargs = {'include_cfrc_ext_in_observation': False} if spec.name == 'Ant' else {}   # ktm's Ant observation
  if task in models.VARIANTS:
    path = os.path.join(tempfile.mkdtemp(), f'{task}.xml')
    with open(path, 'w') as f:
      f.write(models.variant_xml(task, spec.xml))
    kwargs['xml_file'] = path
  return gymnasium.make(f'{spec.name}-v5', **kwargs)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--run', required=True, help='run directory (run_ktm.py WORKDIR)')
  parser.add_argument('--task', required=True, help='task name, e.g. InvertedPendulumLongPole or HalfCheetah')
  parser.add_argument('--teacher', action='store_true', help="the run's teacher for TASK instead of the student")
  parser.add_argument('--episodes', type=int, default=1)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  act = (policy.load_teacher if args.teacher else policy.load)(args.run, args.task)
  env = make_env(args.task)
  for episode in range(args.episodes):
    obs, _ = env.reset(seed=args.seed + episode)
    total, steps, done = 0.0, 0, False
    while not done:
      obs, reward, terminated, truncated, _ = env.step(np.asarray(act(obs), np.float64))
      total, steps, done = total + reward, steps + 1, terminated or truncated
    print(f'{args.task} {"teacher" if args.teacher else "student"} episode {episode}: return {total:.1f} '
          f'({steps} steps)')


if __name__ == '__main__':
  main()
