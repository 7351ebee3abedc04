"""The interface every multi-task method implements, so that ONE training loop (`ktm.loop`) serves them all.

A method is a frozen dataclass (hashable: it is a static argument of the compiled chunks) that holds its config and
the suite's `TaskInfo`, and delegates to its module's pure functions:

  stages()                           the training stages, e.g. KTM's (offline, online) or one 'train' stage
  init(key) -> learner               the method's state pytree (networks, optimizer states, counters, key)
  act(learner, obs, key, explore)    obs [K, E, obs_size] -> actions [K, E, act_size] in [-1, 1], padded entries 0
  update(learner, batch, aux, stage, epoch, update_index) -> (learner, metrics)
                                     one epoch's update from one minibatch per task (batch fields [K, B, ...]);
                                     metrics are arrays [K] (per task) or scalars. `epoch` (the stage's epoch) and
                                     `update_index` (updates taken in this stage so far) are shared by all members
                                     of a sweep: a schedule (e.g. TD3's policy delay) decided from them stays one
                                     `lax.cond` branch under the member `vmap` instead of a select running both
  begin_stage(learner, stage)        host-side hook when a stage starts (KTM: hard target sync before online)
  sample_source(stage, buffer, aux)  the replay the stage samples from (default: the loop's own online buffer)

An on-policy method (A2C-MT) sets `Stage.kind = 'onpolicy'` and implements `onpolicy_chunk` instead of `update`.
`aux` is method data that is an argument of the compiled chunk but not part of the checkpointed state (KTM: the
teachers' critics and replay D_k; None for most methods).
"""

import dataclasses
from typing import Any, ClassVar, Dict, Optional, Tuple

import jax
import numpy as np

from ktm import padding, validate
from ktm.replay import ReplayBuffer, Transition

Metrics = Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class TaskInfo:
  """Static facts about a suite's K tasks (hashable, so methods holding it stay static under `jit`)."""
  task_names: Tuple[str, ...]
  obs_dims: Tuple[int, ...]     # raw observation size of each task
  act_dims: Tuple[int, ...]     # raw action size of each task

  @classmethod
  def from_suite(cls, suite) -> 'TaskInfo':
    return cls(tuple(suite.task_names), tuple(suite.obs_dims), tuple(suite.act_dims))

  @property
  def num_tasks(self) -> int:
    return len(self.task_names)

  @property
  def obs_size(self) -> int:
    """Padded observation size (the largest task's)."""
    return max(self.obs_dims)

  @property
  def act_size(self) -> int:
    """Padded action size (the largest task's)."""
    return max(self.act_dims)

  @property
  def action_masks(self) -> np.ndarray:
    """g^k for every task: [K, act_size], ones on the task's real action entries."""
    return padding.action_masks(self.act_dims, self.act_size)


@dataclasses.dataclass(frozen=True)
class Stage:
  """One phase of training, run in compiled chunks of at most `chunk` epochs.

  kind 'offpolicy': every epoch each of the K x E envs takes one step with `act(explore=True)` (uniform-random
  actions below epoch `random_epochs`) into the online replay (if `collect`), so each task's sub-buffer gets E rows
  per epoch; no updates below `random_epochs`, and after e epochs past it, floor(e x p / q) updates in all
  (`updates_per_epoch` = p / q, `update_ratio`; 1 = one per epoch), each on one minibatch per task from
  `sample_source`.
  kind 'onpolicy': the method's own `onpolicy_chunk` runs `chunk` epochs (its own rollouts and updates).
  """
  name: str
  epochs: int
  chunk: int = 1
  kind: str = 'offpolicy'
  collect: bool = True
  random_epochs: int = 0
  updates_per_epoch: float = 1
  patience: Optional[int] = None   # end early once `patience` evaluations improved on nothing (ktm/plateau.py);
                                   # the epochs left go to the next stage

  def __post_init__(self):
    if self.kind not in ('offpolicy', 'onpolicy'):
      raise ValueError(f"stage kind must be 'offpolicy' or 'onpolicy', got {self.kind!r}")
    if self.epochs < 0 or self.chunk < 1 or self.random_epochs < 0 or (self.patience is not None
                                                                       and self.patience < 1):
      raise ValueError(f'invalid stage {self}')
    self.update_ratio   # pylint: disable=pointless-statement  (raises for a bad updates_per_epoch)

  @property
  def update_ratio(self) -> Tuple[int, int]:
    """(p, q): p updates every q epochs (exact integers; see `validate.update_ratio`)."""
    return validate.update_ratio(self.updates_per_epoch)


def updates_after(epochs, ratio: Tuple[int, int]):
  """Updates taken in the first `epochs` epochs past the random phase at `ratio` (p, q): floor(epochs x p / q)
  (ints or traced int arrays)."""
  p, q = ratio
  return (epochs * p) // q


@dataclasses.dataclass(frozen=True)
class OffPolicySchedule:
  """How long an off-policy method trains and how it collects: one 'train' stage of `steps` epochs."""
  steps: int = 1_000_000           # epochs; in each, every task's E envs take one env step
  start_steps: int = 0             # uniform-random actions and no updates before this epoch (start_steps x E
                                   # random transitions per task)
  chunk_steps: int = 1             # epochs per compiled call (policy fixed within); 1 = act-then-update exactly
  updates_per_step: validate.UpdateRatio = 1   # updates (each on one minibatch per task) per epoch; a fraction
                                               # p / q is p updates every q epochs (0.25: one every 4)
  replay_capacity: int = 1_000_000  # transitions per task sub-buffer (its E envs write E rows per epoch)

  RANGES = dict(steps=validate.AT_LEAST_1, start_steps=validate.NON_NEGATIVE_INT, chunk_steps=validate.AT_LEAST_1,
                updates_per_step=validate.UPDATE_RATIO, replay_capacity=validate.AT_LEAST_1)

  def __post_init__(self):
    validate.check(self, self.RANGES)
    object.__setattr__(self, 'updates_per_step', validate.integral(self.updates_per_step))

  def stages(self) -> Tuple['Stage', ...]:
    return (Stage('train', self.steps, self.chunk_steps, random_epochs=self.start_steps,
                  updates_per_epoch=self.updates_per_step),)


@dataclasses.dataclass(frozen=True)
class Method:
  """Base class of the methods; subclasses are frozen dataclasses adding their config field(s)."""
  tasks: TaskInfo

  name = 'method'              # registry name, e.g. 'ktm', 'sac_mt'
  uses_teachers = False        # whether the method needs the teachers (aux)
  # Config fields ('config.field', as in config.json) that only the stages after the first read, and not their
  # `begin_stage` (which runs before the boundary checkpoint): a run that differs from another only in these can
  # start from that run's first-stage end (`ktm.runs.run_config.start_from_first_stage`).
  later_stage_fields: ClassVar[Tuple[str, ...]] = ()

  # ---- what every method supplies ----
  def stages(self) -> Tuple[Stage, ...]:
    """Default: the stages of the method's `schedule` field (an OffPolicySchedule or the method's own)."""
    return self.schedule.stages()   # pytype: disable=attribute-error

  def init(self, key: jax.Array) -> Any:
    raise NotImplementedError

  def act(self, learner: Any, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
    raise NotImplementedError

  def make_aux(self, teachers: Any) -> Any:
    """The teachers' data the compiled chunks need (`ktm.teachers.Teachers` in; arrays out), or None."""
    del teachers
    return None

  # ---- off-policy methods ----
  @property
  def batch_size(self) -> int:
    return self.cfg.batch_size   # pytype: disable=attribute-error

  def update_rows(self, num_envs: int) -> int:
    """Rows per task one update reads (the resource model's activations): the minibatch. On-policy methods: the
    rollout's."""
    del num_envs
    return self.batch_size

  @property
  def replay_capacity(self) -> int:
    """Transitions per task in the online replay (0: no replay, e.g. on-policy methods). Default: the
    `schedule`'s `replay_capacity`, or 0 if the schedule has none."""
    return getattr(self.schedule, 'replay_capacity', 0)   # pytype: disable=attribute-error

  def update(self, learner: Any, batch: Transition, aux: Any, stage: int, epoch: jax.Array,
             update_index: jax.Array) -> Tuple[Any, Metrics]:
    raise NotImplementedError

  def sample_source(self, stage: int, buffer: ReplayBuffer, aux: Any) -> ReplayBuffer:
    del stage, aux
    return buffer

  def begin_stage(self, learner: Any, stage: int) -> Any:
    del stage
    return learner

  # ---- on-policy methods ----
  def onpolicy_chunk(self, learner: Any, env_state: Any, key: jax.Array, suite: Any, aux: Any,
                     num_epochs: int) -> Tuple[Any, Any, Metrics]:
    """`num_epochs` epochs of the method's own rollouts and updates -> (learner, env_state, metrics)."""
    raise NotImplementedError
