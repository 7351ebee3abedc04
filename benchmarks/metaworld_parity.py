"""Meta-World MT10 under this project's mujoco (with ktm's weld fix) vs metaworld's own pin, mujoco 3.3.0, unpatched.

Each MT10 task (goal GOAL_INDEX of MT10(seed=0), as the 'mt10' suite builds it) is reset and stepped with the same
seeded uniform random actions in two processes; the scripted expert policies of metaworld.policies are run on the
first `--goals` goals of each task. `--dump` writes one process's arrays, `--compare` the differences:

  pip install --no-deps --target /tmp/mw metaworld==3.1.1
  pip install --no-deps --target /tmp/mj330 mujoco==3.3.0
  PYTHONPATH=/tmp/mj330:/tmp/mw python benchmarks/metaworld_parity.py --dump=/tmp/mw_ref.npz --reference
  PYTHONPATH=/tmp/mw:. python benchmarks/metaworld_parity.py --dump=/tmp/mw_ours.npz
  python benchmarks/metaworld_parity.py --compare /tmp/mw_ref.npz /tmp/mw_ours.npz \
      --json=benchmarks/results/metaworld_parity.json

--reference imports nothing from ktm (ktm needs mujoco 3.17): it builds the envs with metaworld alone.
"""

import argparse
import importlib.metadata
import json
import sys
import time

import numpy as np

GOAL_INDEX = 0       # as ktm.envs.metaworld_suite
BENCHMARK_SEED = 0


def _reference_env_maker():
  import metaworld  # pylint: disable=import-outside-toplevel
  mt10 = metaworld.MT10(seed=BENCHMARK_SEED)

  def make(task, goal_index=GOAL_INDEX):
    env = mt10.train_classes[task]()
    env.set_task([t for t in mt10.train_tasks if t.env_name == task][goal_index])
    return env
  return list(mt10.train_classes), make


def _ours_env_maker():
  from ktm.envs import metaworld_suite  # pylint: disable=import-outside-toplevel
  return list(metaworld_suite.task_names()), metaworld_suite.make_env


def random_rollout(env, steps: int, seed: int, k: int):
  """obs [steps + 1, 39], reward / success [steps] under uniform actions from default_rng([seed, k])."""
  actions = np.random.default_rng([seed, k]).uniform(-1.0, 1.0, (steps, 4)).astype(np.float32)
  obs = [env.reset()[0]]
  rewards, success = [], []
  for a in actions:
    o, r, terminated, truncated, info = env.step(a)
    obs.append(o)
    rewards.append(r)
    success.append(float(info['success']))
    assert not terminated and not truncated
  return np.asarray(obs), np.asarray(rewards), np.asarray(success)


def expert_success(env, task: str, episode_steps: int = 500):
  """(success at any step, return) of metaworld's scripted policy for `task` over one episode."""
  from metaworld import policies  # pylint: disable=import-outside-toplevel
  policy = policies.ENV_POLICY_MAP[task]()
  obs, _ = env.reset()
  success, ret = False, 0.0
  for _ in range(episode_steps):
    obs, r, _, truncated, info = env.step(np.clip(policy.get_action(obs), -1.0, 1.0))
    success, ret = success or bool(info['success']), ret + float(r)
    if truncated:
      break
  return success, ret


def dump(path: str, reference: bool, steps: int, seed: int, goals: int):
  import mujoco  # pylint: disable=import-outside-toplevel
  tasks, make = _reference_env_maker() if reference else _ours_env_maker()
  out = dict(mujoco=mujoco.__version__, metaworld=importlib.metadata.version('metaworld'), tasks=tasks,
             reference=reference, steps=steps, seed=seed)
  start = time.time()
  for k, task in enumerate(tasks):
    env = make(task)
    out[f'{task}/obs'], out[f'{task}/reward'], out[f'{task}/success'] = random_rollout(env, steps, seed, k)
    out[f'{task}/goal'] = np.asarray(env._last_rand_vec)  # pylint: disable=protected-access
    runs = [expert_success(make(task, g), task) for g in range(goals)]
    out[f'{task}/expert_success'] = np.asarray([s for s, _ in runs], np.float64)
    out[f'{task}/expert_return'] = np.asarray([r for _, r in runs])
    print(f'{task}: expert success {np.mean(out[f"{task}/expert_success"]):.2f}', flush=True)
  out['seconds'] = time.time() - start
  np.savez(path, **{k: np.asarray(v) for k, v in out.items()})
  print(f'wrote {path} (mujoco {out["mujoco"]}, metaworld {out["metaworld"]}, {out["seconds"]:.0f} s)')


def compare(ref_path: str, ours_path: str, json_path: str | None):
  ref, ours = np.load(ref_path), np.load(ours_path)
  rows = []
  for task in [str(t) for t in ref['tasks']]:
    row = dict(task=task)
    for field in ('obs', 'reward', 'success', 'goal'):
      row[f'max_abs_diff_{field}'] = float(np.max(np.abs(ref[f'{task}/{field}'] - ours[f'{task}/{field}'])))
    row['final_reward_ref'] = float(ref[f'{task}/reward'][-1])
    for name, data in (('ref', ref), ('ours', ours)):
      row[f'expert_success_{name}'] = float(np.mean(data[f'{task}/expert_success']))
      row[f'expert_return_{name}'] = float(np.mean(data[f'{task}/expert_return']))
    rows.append(row)
  print('| task | max |obs diff| | max |reward diff| | success diff | goal diff | expert success ref / ours '
        '| expert return ref / ours |')
  print('|---|---|---|---|---|---|---|')
  for r in rows:
    print(f"| {r['task']} | {r['max_abs_diff_obs']:.3g} | {r['max_abs_diff_reward']:.3g} | "
          f"{r['max_abs_diff_success']:.0f} | {r['max_abs_diff_goal']:.3g} | "
          f"{r['expert_success_ref']:.2f} / {r['expert_success_ours']:.2f} | "
          f"{r['expert_return_ref']:.1f} / {r['expert_return_ours']:.1f} |")
  summary = dict(reference=dict(mujoco=str(ref['mujoco']), metaworld=str(ref['metaworld']), patched=False),
                 ours=dict(mujoco=str(ours['mujoco']), metaworld=str(ours['metaworld']), patched=True),
                 envs='Meta-World v3 envs, reward_function_version v2 (the default), MT10(seed=0), '
                      f'goal {GOAL_INDEX} for the random-action rollouts',
                 steps=int(ref['steps']), action_seed=int(ref['seed']),
                 expert_episodes_per_task=int(ref[f"{rows[0]['task']}/expert_success"].size),
                 tasks=rows)
  if json_path:
    with open(json_path, 'w') as f:
      json.dump(summary, f, indent=1)
    print(f'wrote {json_path}')


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--dump')
  p.add_argument('--reference', action='store_true', help='build the envs with metaworld alone (no ktm, no patch)')
  p.add_argument('--steps', type=int, default=200)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--goals', type=int, default=5, help='expert episodes per task: goals 0 .. goals-1 of MT10(seed=0)')
  p.add_argument('--compare', nargs=2)
  p.add_argument('--json')
  args = p.parse_args(argv)
  if args.dump:
    dump(args.dump, args.reference, args.steps, args.seed, args.goals)
  elif args.compare:
    compare(*args.compare, args.json)
  else:
    p.error('--dump or --compare')


if __name__ == '__main__':
  sys.exit(main())
