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


CONTROL_ENV = 'Pusher-v5'   # a gymnasium MuJoCo env with contacts and no Meta-World code: the engine's own change


def control_rollout(steps: int, seed: int):
  """obs [steps + 1, 23] of gymnasium's Pusher-v5 (reset seed `seed`) under uniform actions."""
  import gymnasium  # pylint: disable=import-outside-toplevel
  env = gymnasium.make(CONTROL_ENV)
  actions = np.random.default_rng([seed, 99]).uniform(-1.0, 1.0, (steps,) + env.action_space.shape)
  obs = [env.reset(seed=seed)[0]]
  obs += [env.step(a.astype(np.float32))[0] for a in actions]
  return np.asarray(obs)


WELD_PROBE_XML = '''<mujoco><worldbody><body name="a" {mocap} pos="0.1 0 1"/>
<body name="l1" pos="0 0 1"><joint type="hinge" axis="0 1 0" damping="1"/>
<geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03"/><body name="l2" pos="0.3 0 0">
<joint type="hinge" axis="0 0 1" damping="1"/><geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03"/></body></body>
</worldbody><equality><weld body1="a" body2="l2"/></equality></mujoco>'''


def weld_probe(mocap: bool, steps: int = 500):
  """qpos [steps, 2] of a two-link arm welded (as compiled from the XML, no eq_data written) to body 'a': a mocap
  body moved along a sine (as Meta-World moves its hand's mocap), or a static body."""
  import mujoco  # pylint: disable=import-outside-toplevel
  model = mujoco.MjModel.from_xml_string(WELD_PROBE_XML.format(mocap='mocap="true"' if mocap else ''))
  data, out = mujoco.MjData(model), []
  for i in range(steps):
    if mocap:
      data.mocap_pos[0] = [0.3 + 0.1 * np.sin(i / 50), 0.2, 1.0]
      data.mocap_quat[0] = [1.0, 0.0, 1.0, 0.0]
    mujoco.mj_step(model, data)
    out.append(data.qpos.copy())
  return np.asarray(out)


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
  out['control/obs'] = control_rollout(steps, seed)
  out['probe/mocap_weld'], out['probe/static_weld'] = weld_probe(True), weld_probe(False)
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
    row['expert_success_per_goal_ours'] = ours[f'{task}/expert_success'].tolist()
    for name, data in (('ref', ref), ('ours', ours)):
      row[f'expert_success_{name}'] = float(np.mean(data[f'{task}/expert_success']))
      row[f'expert_return_{name}'] = float(np.mean(data[f'{task}/expert_return']))
    rows.append(row)
  control = float(np.max(np.abs(ref['control/obs'] - ours['control/obs'])))
  print(f'control, gymnasium {CONTROL_ENV} (no Meta-World code, no patch): max |obs diff| {control:.3g}')
  probes = {k: float(np.max(np.abs(ref[f'probe/{k}'] - ours[f'probe/{k}']))) for k in ('mocap_weld', 'static_weld')}
  print(f'weld probe (XML weld, no eq_data written), max |qpos diff| over 500 steps: to a moving mocap body '
        f"{probes['mocap_weld']:.3g}, to a static body {probes['static_weld']:.3g}")
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
                 tasks=rows, control=dict(env=CONTROL_ENV, max_abs_diff_obs=control,
                                          note='the same comparison on a gymnasium env that no patch touches: '
                                               'the engine change of mujoco 3.3.0 -> 3.17.0 alone'),
                 weld_probe=dict(max_abs_diff_qpos=probes,
                                 note='a two-link arm welded by an XML weld (nothing written into eq_data) to a '
                                      'moving mocap body, or to a static body, 500 steps (benchmarks/'
                                      'metaworld_parity.py WELD_PROBE_XML)'))
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
