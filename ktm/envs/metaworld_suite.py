"""Meta-World MT10 as the gymnasium suite 'mt10' (when the `metaworld` package is importable).

  pip install --no-deps metaworld==3.1.1      # --no-deps: keeps this project's mujoco (metaworld pins 3.3.0)
  python experiments/run_ktm.py --benchmark=mt10+task_id ...

Protocol: Meta-World 3.1.1, its v3 environments with their default reward function (reward_function_version 'v2',
as `metaworld.make_mt_envs` uses). MT10's ten tasks, in Meta-World's order, are built from `MT10(seed=0)`: each
task's env is given ONE fixed goal, the first of the 50 that MT10(seed=0) samples for it (`GOAL_INDEX`), for every
env, episode and run seed (a fixed goal per task; metaworld-algorithms instead draws one of the 50 goals at every
reset). A Meta-World env ignores reset seeds, so with its goal fixed every episode starts the same.
Episodes end by truncation at max_path_length = 500 steps (never terminated); `info['success']` gives the success
rate (ktm/envs/gym_suite.py). All ten tasks have observation 39 and action 4, so only the task-id input
(`mt10+task_id`) tells the student which task it is in.

Compatibility fix (`patch_mocap_welds`): metaworld 3.1.1's `SawyerMocapBase.reset_mocap_welds` assigns 11 numbers to
the mocap weld's row of `model.eq_data`, which had mjNEQDATA = 11 entries in mujoco 3.3. mujoco 3.17 has 12, and
the assignment raises at env construction. The first 11 entries keep mujoco 3.3's weld layout (anchor 3, relpose
position 3 and quaternion 4, torquescale 1; checked by compiling the same weld in both versions), so our version
writes metaworld's 11 numbers into `eq_data[i, :11]` and leaves the 12th as mujoco's compiler set it. metaworld's
files are not edited: the class method is replaced in this process, only where mjNEQDATA != 11 (set to 0 or
1, the 12th entry gives the same reset state). Against unpatched Meta-World under its pin mujoco 3.3.0
(benchmarks/metaworld_parity.py, benchmarks/results/metaworld_parity.md): observations differ by at most 3.6e-3 and
rewards by 0.042 over 200 random steps, success flags not at all, the scripted experts succeed in 49 / 50 episodes
(3.3.0: 50 / 50). Those differences are MuJoCo's (welds to a moving mocap body step differently in 3.3.0 and 3.17.0,
with or without the fix), so results name mujoco 3.17.0 next to Meta-World 3.1.1.
"""

import functools

import numpy as np

NAME = 'mt10'
METAWORLD_VERSION = '3.1.1'
INSTALL = f'pip install --no-deps metaworld=={METAWORLD_VERSION}'
BENCHMARK_SEED = 0    # MT10(seed=BENCHMARK_SEED) samples the goals
GOAL_INDEX = 0        # each task's env gets the first of its 50 goals
# What metaworld writes into each weld row: anchor (0, 0, 0), relpose position (0, 0, 0), relpose quaternion
# (-1, 0, 0, 0) (the identity rotation), torquescale 5: mujoco 3.3's 11 eq_data entries of a weld.
MOCAP_WELD_DATA = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0])


def import_metaworld():
  """The metaworld module; a missing package raises one ValueError line with the install command."""
  try:
    import metaworld  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ValueError(f"suite {NAME!r} (Meta-World MT10) needs the metaworld package, which does not import ({e}): "
                     f'install it with: {INSTALL} (--no-deps keeps mujoco 3.17; its other needs, gymnasium, scipy '
                     'and imageio, come with ktm)') from e
  return metaworld


def available() -> bool:
  """Whether metaworld imports."""
  try:
    import_metaworld()
  except ValueError:
    return False
  return True


def reset_mocap_welds(env) -> None:
  """metaworld's SawyerMocapBase.reset_mocap_welds for any mjNEQDATA >= 11: the 11 numbers into eq_data[i, :11]."""
  import mujoco  # pylint: disable=import-outside-toplevel
  model = env.model
  if model.nmocap > 0 and model.eq_data is not None:
    for i in range(model.eq_data.shape[0]):
      if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
        model.eq_data[i, :MOCAP_WELD_DATA.size] = MOCAP_WELD_DATA


def patch_mocap_welds() -> bool:
  """Replaces metaworld's reset_mocap_welds by ours where mujoco's mjNEQDATA is not 11; True if patched."""
  import mujoco  # pylint: disable=import-outside-toplevel
  import_metaworld()
  from metaworld import sawyer_xyz_env  # pylint: disable=import-outside-toplevel
  if mujoco.mjNEQDATA == MOCAP_WELD_DATA.size:
    return False
  base = sawyer_xyz_env.SawyerMocapBase
  if base.reset_mocap_welds is not reset_mocap_welds:
    base.metaworld_reset_mocap_welds = base.reset_mocap_welds   # metaworld's own, kept for the tests
    base.reset_mocap_welds = reset_mocap_welds
  return True


@functools.lru_cache(maxsize=None)
def benchmark(seed: int = BENCHMARK_SEED):
  """metaworld.MT10(seed) (its goals are sampled by building and resetting each task's env once)."""
  metaworld = import_metaworld()
  patch_mocap_welds()
  return metaworld.MT10(seed=seed)


def task_names() -> tuple[str, ...]:
  return tuple(benchmark().train_classes)


def make_env(task: str, goal_index: int = GOAL_INDEX):
  """Task `task`'s env (e.g. 'reach-v3') with goal `goal_index` of MT10(seed=BENCHMARK_SEED) set."""
  mt10 = benchmark()
  env = mt10.train_classes[task]()
  env.set_task([t for t in mt10.train_tasks if t.env_name == task][goal_index])
  return env


def definition():
  """The GymSuiteDef of 'mt10' (ValueError with the install line when metaworld is missing)."""
  from ktm.envs import gym_suite  # pylint: disable=import-outside-toplevel
  return gym_suite.definition(NAME, [(t, functools.partial(make_env, t)) for t in task_names()])
