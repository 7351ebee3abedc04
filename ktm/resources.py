"""The resource model (issue 26): what a run will hold in memory, estimated from its configs before anything is
allocated, and the refusal of what cannot fit.

Terms, in bytes, for the members one device holds (a sweep's S members over D devices: ceil(S / D) each):
  replay       the online replay [K, capacity] of every member (`replay.buffer_bytes`; exact)
  learner      the method's state of every member: networks, target networks, optimizer states, counters
               (`jax.eval_shape` of `method.init`, which allocates nothing; exact)
  teachers     the teachers the compiled chunks read (KTM-DRL, A2C-MT): each set's states and replay D_k
               ([K, largest replay_size] after stacking), once, or once per member when every member learns from its
               own seed's set (then they are stacked, one copy per member); from teacher.json, exact
  envs         the training envs' state [K, E] of every member (`jax.eval_shape` of `suite.reset`; exact)
  collected    the transitions one chunk collects before they enter the replay: [K, C x E] rows per member, C the
               longest chunk of a collecting stage (`longest_chunk`)
  activations  one update's working memory per member: rows x W x 4 bytes / 2 + the minibatch itself, where rows =
               K x `method.update_rows(E)` (K x batch_size off-policy, K x n_steps x E for A2C-MT) and W is the sum
               of the output widths of every Dense kernel in the learner's state (a network, its target and its
               two Adam moments each count: four copies standing for the forward values, pre-activations, gradients
               and target activations an update keeps per row). Measured by XLA (the compiled update's temporary
               buffers): the estimate is 1x (G-Surgery) to 4x (TD3-MT, sequential) of it (tests/test_resources.py)
  evaluation   the evaluation envs' state [K, eval_episodes] of every member (the training envs' state, its
               [K, E, ...] leaves scaled by eval_episodes / E: `env_bytes`) and the greedy policy's activations on
               them (the same per-row formula)
A checkpoint holds replay + learner + envs per member (`checkpoint_bytes`).
On a CPU the device is the host: every term is host memory, compared with MemAvailable. Beside an accelerator the
host is checked too, for a checkpoint's copy of all members' state (`host_terms`). Not counted: XLA's compiled
programs, the native physics' per-env MuJoCo data on the host (~1 KiB per env until stepped).

`check` refuses (MemoryError, one line: the total, the free memory, the largest terms, the ways out);
`evaluation_warning` is one line when evaluation would cost far more env steps than training.
"""

import dataclasses
import math
from typing import Any, List, Optional, Sequence

import jax

from ktm import replay, td3

WAYS_OUT = dict(replay='a smaller replay capacity (--replay_capacity, KTM: --online_capacity)',
                learner='smaller networks (--hidden_sizes)',
                teachers='teachers with less replay data, or one teacher set for all members',
                envs='fewer --num_envs',
                collected='fewer --num_envs or a shorter chunk (--chunk_steps)',
                activations='a smaller --batch_size or smaller --hidden_sizes',
                evaluation='fewer --eval_episodes',
                checkpoint='a smaller replay capacity (a checkpoint passes through host memory while it is saved)')
EVAL_WARN_RATIO = 20    # warn when evaluation takes more than this many times the training's env steps


@dataclasses.dataclass(frozen=True)
class Term:
  name: str               # a key of WAYS_OUT
  per_member: int         # bytes of one member (shared terms: 0)
  shared: int = 0         # bytes held once per device whatever the number of members


def tree_bytes(tree: Any) -> int:
  """Bytes of a pytree of arrays or `jax.ShapeDtypeStruct`s (key arrays: their key data)."""
  return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def dense_widths(tree: Any) -> int:
  """Sum of the output widths of every Dense kernel ([..., in, out], leading axes = copies) in a params tree."""
  total = 0
  for path, x in jax.tree_util.tree_leaves_with_path(tree):
    if len(x.shape) >= 2 and jax.tree_util.keystr(path).endswith("'kernel']"):
      total += math.prod(x.shape[:-2]) * x.shape[-1]
  return total


def env_bytes(env_state: Any, num_tasks: int, num_envs: int, other_envs: int) -> int:
  """Bytes of the envs' state with `other_envs` envs per task in place of `num_envs` (leaves [K, E, ...] scale)."""
  return sum(tree_bytes(x) * (other_envs if x.shape[:2] == (num_tasks, num_envs) else num_envs) // num_envs
             for x in jax.tree.leaves(env_state))


def activation_bytes(rows: int, widths: int, row_bytes: int = 0) -> int:
  """The per-layer formula: rows x widths x 4 bytes / 2, plus the rows themselves."""
  return rows * (widths * 2 + row_bytes)


def _row_bytes(suite) -> int:
  """Bytes of one float32 transition."""
  return 4 * sum(math.prod(s) for s in replay.field_shapes(suite.obs_size, suite.act_size).values())


def longest_chunk(stage, loop_cfg) -> int:
  """The most epochs one compiled call of `stage` collects (`loop.next_chunk` stops at these boundaries)."""
  return min(stage.chunk, loop_cfg.eval_every, loop_cfg.checkpoint_every, max(stage.epochs, 1))


def check_chunk_fits_replay(method, loop_cfg) -> None:
  """ValueError if one chunk collects more transitions per task than the replay holds (caught at the first
  compile otherwise, after the run's files were written)."""
  for stage in method.stages():
    rows = longest_chunk(stage, loop_cfg) * loop_cfg.num_envs
    if stage.kind == 'offpolicy' and stage.collect and stage.epochs and rows > method.replay_capacity:
      raise ValueError(f'one chunk of the {stage.name} stage collects {rows:,} transitions per task (--num_envs='
                       f'{loop_cfg.num_envs} x {rows // loop_cfg.num_envs} epochs) but the replay holds '
                       f'{method.replay_capacity:,}: fewer --num_envs or a larger replay capacity')


def terms(method, suite, loop_cfg, teacher_set_bytes: int = 0, teachers_per_member: bool = False) -> List[Term]:
  """The run's terms (see the module docstring); `teacher_set_bytes`: one teacher set (`teacher_set_bytes`), held
  once per member (`teachers_per_member`) or once."""
  learner = jax.eval_shape(method.init, jax.random.key(0))
  widths, row = dense_widths(learner), _row_bytes(suite)
  capacity, k = method.replay_capacity, suite.num_tasks
  chunk = max([longest_chunk(s, loop_cfg) for s in method.stages() if s.kind == 'offpolicy' and s.collect
               and s.epochs] or [0])
  env_state = jax.eval_shape(suite.reset, jax.random.key(0))
  evaluation = (env_bytes(env_state, k, suite.num_envs, loop_cfg.eval_episodes)
                + activation_bytes(k * loop_cfg.eval_episodes, widths))
  return [Term('replay', replay.buffer_bytes(k, capacity, suite.obs_size, suite.act_size) if capacity else 0),
          Term('learner', tree_bytes(learner)),
          Term('teachers', teacher_set_bytes if teachers_per_member else 0,
               0 if teachers_per_member else teacher_set_bytes),
          Term('envs', tree_bytes(env_state)),
          Term('collected', k * chunk * suite.num_envs * row),
          Term('activations', activation_bytes(k * method.update_rows(suite.num_envs), widths, row)),
          Term('evaluation', evaluation)]


def checkpoint_bytes(all_terms: Sequence[Term], members: int) -> int:
  """One checkpoint of all members: their RunState (replay, learner, envs)."""
  return members * sum(t.per_member for t in all_terms if t.name in ('replay', 'learner', 'envs'))


def host_terms(all_terms: Sequence[Term]) -> List[Term]:
  """What the host holds beside an accelerator: a checkpoint's copy of every member's state while orbax saves it
  (with the device a CPU, the state already is in host memory and `terms` count it)."""
  return [Term('checkpoint', checkpoint_bytes(all_terms, 1))]


def teacher_set_bytes(metas: Sequence[dict], suite, cfg: td3.TD3Config) -> int:
  """One loaded teacher set (teacher.json of each task, the teachers' shared TD3Config): K teacher states and their
  replay D_k stacked to the largest replay_size."""
  if not metas:
    return 0
  state = jax.eval_shape(lambda: td3.init(jax.random.key(0), cfg))
  rows = max(int(m.get('replay_size', 0)) for m in metas)
  return len(metas) * tree_bytes(state) + replay.buffer_bytes(len(metas), rows, suite.obs_size, suite.act_size)


def on_device(all_terms: Sequence[Term], members: int, devices: int = 1) -> int:
  """Bytes one device holds: ceil(members / devices) members' terms plus the shared ones."""
  per_device = -(-members // devices)
  return sum(t.per_member * per_device + t.shared for t in all_terms)


def _gib(n: float) -> str:
  return f'{n / 2**30:.2f} GiB'


def check(all_terms: Sequence[Term], members: int = 1, devices: int = 1, what: str = 'this run',
          free: Optional[int] = None, where: Optional[str] = None) -> None:
  """MemoryError (one line) when the terms exceed `free` bytes `where` (default: the first device's free memory)."""
  free = replay.available_bytes() if free is None else free
  need = on_device(all_terms, members, devices)
  if free is None or need <= free:
    return
  per_device = -(-members // devices)
  sized = sorted(((t.per_member * per_device + t.shared, t.name) for t in all_terms), reverse=True)
  largest = [(n, name) for n, name in sized if n >= need / 20][:3]     # the terms that matter, largest first
  ways = list(dict.fromkeys(WAYS_OUT[name] for _, name in largest))
  if members > 1:
    ways.insert(0, 'fewer members (--seeds / --sweep)' + (' or more devices' if devices == 1 else ''))
  per_member = sum(t.per_member for t in all_terms)
  members_note = (f' ({_gib(per_member)} per member x {per_device} sweep members per device)' if members > 1
                  else '')
  raise MemoryError(f'{what} needs about {_gib(need)}{members_note} but {_gib(free)} are free on '
                    f'{where or jax.devices()[0]}; largest: ' + ', '.join(f'{name} {_gib(n)}' for n, name in largest)
                    + '; ways out: ' + '; '.join(ways))


def evaluation_warning(method, suite, loop_cfg) -> Optional[str]:
  """One line when the evaluations (each: eval_episodes episodes of up to episode_length steps per task, after
  every eval_every epochs of each stage and at its end) take over EVAL_WARN_RATIO times the training's env steps
  (an epoch without env steps, e.g. KTM-DRL's offline one, counted as one step per task; an on-policy epoch takes
  `update_rows(E)` steps per task); else None."""
  per_epoch = lambda s: (method.update_rows(suite.num_envs) if s.kind == 'onpolicy' else
                         suite.num_envs if s.collect else 1)
  train_steps = sum(s.epochs * per_epoch(s) for s in method.stages())
  evaluations = sum(-(-s.epochs // loop_cfg.eval_every) for s in method.stages() if s.epochs)
  eval_steps = evaluations * loop_cfg.eval_episodes * suite.episode_length
  if train_steps and eval_steps > EVAL_WARN_RATIO * train_steps:
    return (f'warning: evaluation takes up to {eval_steps:,} env steps per task ({evaluations:,} evaluations x '
            f'{loop_cfg.eval_episodes:,} episodes x {suite.episode_length:,} steps), {eval_steps / train_steps:.0f}x '
            f"the training's {train_steps:,}: fewer --eval_episodes or a larger --eval_every")
  return None
