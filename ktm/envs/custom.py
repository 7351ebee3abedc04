"""Your own task suites: morphology groups of any registered task, tasks from your own MJCF, suites of them.

  from ktm.envs import custom

  HOPPER_GROUP = custom.morphology_group('Hopper', [
      custom.variant('HopperBigTorso', size={'torso_geom': 1.25}),
      custom.variant('HopperSmallFoot', size={'foot_geom': 0.75}),
  ], total_mass='keep')
  SUITE = custom.suite('hopper_group', [HOPPER_GROUP])

then `make_suite('my_module:SUITE')` or `python experiments/run_ktm.py --benchmark=my_module:SUITE ...`
(my_module importable from the working directory, or a file: --benchmark=path/to/my_module.py:SUITE).

Every definition is checked when it is made (unknown geom, missing function, wrong shapes, MJCF that does not
compile ...) and fails with one ValueError line. Definitions register their names globally (task names name the
teacher directories); defining the same thing again is allowed, a different thing under a taken name is not.
"""

import dataclasses
import math
import os
from typing import Callable, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from ktm.envs import gym_suite as gym_suite_lib
from ktm.envs import models as models_lib
from ktm.envs import registry
from ktm.envs import tasks as tasks_lib
from ktm.envs.types import Group, Readout, SuiteDef  # noqa: F401  (Group, SuiteDef: this module's API)


@dataclasses.dataclass(frozen=True)
class Edit:
  """How one variant edits its base model: geom name -> factor for `size` (every number), `length` (a capsule's
  `fromto`, i.e. its length; positions of other bodies unchanged) and `density` (its mass)."""
  name: str
  size: tuple[tuple[str, float], ...] = ()
  length: tuple[tuple[str, float], ...] = ()
  density: tuple[tuple[str, float], ...] = ()


def _fail(message: str):
  raise ValueError(' '.join(str(message).split()))   # one line, whatever MuJoCo or JAX put in it


def variant(name: str, size: Optional[Mapping[str, float]] = None, length: Optional[Mapping[str, float]] = None,
            density: Optional[Mapping[str, float]] = None) -> Edit:
  """A morphology variant named `name` for `morphology_group`: {geom name: factor} per kind of edit."""
  def items(kind, mapping):
    out = tuple((mapping or {}).items())
    for geom, factor in out:
      if not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
        _fail(f'variant {name!r}: {kind} factor of geom {geom!r} must be a positive number, got {factor!r}')
    return out
  if not isinstance(name, str) or not name:
    _fail(f'a variant needs a non-empty name, got {name!r}')
  edit = Edit(name, items('size', size), items('length', length), items('density', density))
  if not (edit.size or edit.length or edit.density):
    _fail(f'variant {name!r} changes nothing: give size=, length= or density= as {{geom name: factor}}')
  return edit


def _check_geoms(edit: Edit, base: str, spec: mujoco.MjSpec) -> None:
  named = sorted(g.name for g in spec.geoms if g.name)
  for kind, pairs in (('size', edit.size), ('length', edit.length), ('density', edit.density)):
    for geom, _ in pairs:
      if spec.geom(geom) is None:
        _fail(f'variant {edit.name!r}: {base} has no geom {geom!r} (named geoms: {", ".join(named)})')
      if kind == 'length' and np.isnan(spec.geom(geom).fromto[0]):
        _fail(f'variant {edit.name!r}: geom {geom!r} of {base} has no fromto, so its length cannot be scaled '
              '(scale its size instead)')


def _compile(spec_or_xml, what: str) -> mujoco.MjModel:
  try:
    if isinstance(spec_or_xml, mujoco.MjSpec):
      return spec_or_xml.compile()
    return models_lib.build_model('', spec_or_xml)
  except ValueError as e:
    _fail(f'{what}: MuJoCo cannot compile it: {e}')


def morphology_group(base: str, variants: Sequence[Edit], total_mass: Union[str, float, None] = 'keep',
                     include_base: bool = False) -> Group:
  """Registers `variants` (from `variant`) of registered task `base` and returns them as one group.

  total_mass: 'keep' renormalises every variant to the base model's total mass (as Benchmark A keeps 14 kg),
    a number to that many kg, None lets the edits change the mass.
  include_base: the unmodified base task is the group's first task.
  """
  if base not in tasks_lib.TASKS:
    _fail(f'morphology group: unknown base task {base!r}; registered tasks: {", ".join(sorted(tasks_lib.TASKS))}')
  base_spec = tasks_lib.TASKS[base]
  if not variants or not all(isinstance(v, Edit) for v in variants):
    _fail(f'morphology group of {base}: give a non-empty list of custom.variant(...)')
  names = [v.name for v in variants]
  if len(set(names)) != len(names) or base in names or any(n in tasks_lib.TASKS for n in names):
    _fail(f'morphology group of {base}: variant names must be unique and not task names, got {names}')
  if total_mass == 'keep':
    total_mass = float(_compile(base_spec.xml, base).body_mass.sum())
  elif total_mass is not None and (not isinstance(total_mass, (int, float)) or not total_mass > 0):
    _fail(f"morphology group of {base}: total_mass must be 'keep', None or a positive number, got {total_mass!r}")
  built = []
  for edit in variants:
    _check_geoms(edit, base, models_lib.load_spec(base_spec.xml))
    v = models_lib.Variant(edit.name, base, geom_size_scale=edit.size, fromto_scale=edit.length,
                           density_scale=edit.density,
                           total_mass=None if total_mass is None else float(total_mass))
    try:
      spec = models_lib.variant_spec(v, base_spec.xml)
    except ValueError as e:
      _fail(f'variant {edit.name!r} of {base}: {e}')
    _compile(spec, f'variant {edit.name!r} of {base}')
    built.append(v)
  for v in built:
    try:
      models_lib.register_variant(v)
    except ValueError as e:
      _fail(e)
  return Group(base, ((base,) if include_base else ()) + tuple(names))


def _read_extras(spec: tasks_lib.TaskSpec, data: mujoco.MjData) -> np.ndarray:
  parts = [np.ravel(np.asarray(getattr(data, f))[slice(None) if i is None else i]) for f, i in spec.extras]
  return np.concatenate(parts) if parts else np.zeros((0,))


def _readout_like(spec: tasks_lib.TaskSpec, model: mujoco.MjModel, batch: int) -> Readout:
  """A Readout [batch, ...] shaped as the backends give it (extras read after mj_forward)."""
  data = mujoco.MjData(model)
  mujoco.mj_forward(model, data)
  if spec.rne_post:
    mujoco.mj_rnePostConstraint(model, data)
  n_extra = _read_extras(spec, data).size
  s = lambda n: jax.ShapeDtypeStruct((batch, n), jnp.float32)
  return Readout(s(model.nq), s(model.nv), s(n_extra))


def _check_functions(spec: tasks_lib.TaskSpec, model: mujoco.MjModel) -> int:
  """Traces obs_fn and transition_fn on a batch of 2; returns the observation size."""
  ro = _readout_like(spec, model, 2)
  ctrl = jax.ShapeDtypeStruct((2, model.nu), jnp.float32)
  dt = model.opt.timestep * spec.frame_skip
  try:
    obs = jax.eval_shape(spec.obs_fn, ro)
  except Exception as e:  # pylint: disable=broad-except  (any failure of user code is reported in one line)
    _fail(f'task {spec.name!r}: obs_fn fails on a Readout [2, ...] (qpos {model.nq}, qvel {model.nv}, '
          f'extra {ro.extra.shape[-1]}): {type(e).__name__}: {e}')
  if not hasattr(obs, 'shape') or obs.shape[:1] != (2,) or len(obs.shape) != 2:
    _fail(f'task {spec.name!r}: obs_fn must map a Readout [B, ...] to [B, obs_dim], got shape '
          f'{getattr(obs, "shape", type(obs).__name__)} for B = 2')
  if spec.obs_dim is not None and obs.shape[-1] != spec.obs_dim:
    _fail(f'task {spec.name!r}: obs_fn returns {obs.shape[-1]} numbers per observation, obs_dim is {spec.obs_dim}')
  try:
    out = jax.eval_shape(lambda p, c, u: spec.transition_fn(p, c, u, dt), ro, ro, ctrl)
  except Exception as e:  # pylint: disable=broad-except
    _fail(f'task {spec.name!r}: transition_fn(prev, cur, ctrl [2, {model.nu}], dt) fails: {type(e).__name__}: {e}')
  if (not isinstance(out, (tuple, list)) or len(out) != 2 or any(getattr(x, 'shape', None) != (2,) for x in out)
      or out[1].dtype != jnp.bool_):
    _fail(f'task {spec.name!r}: transition_fn must return (reward [B], terminated [B] bool), got '
          f'{jax.tree.map(lambda x: f"{x.dtype}{list(x.shape)}", out)} for B = 2')
  return int(obs.shape[-1])


def task(name: str, xml: str, obs_fn: Callable, transition_fn: Callable, frame_skip: int = 1,
         obs_dim: Optional[int] = None, reset_noise_scale: float = 0.01, qvel_noise: str = 'uniform',
         extras: Sequence[tuple[str, Optional[int]]] = (), rne_post: bool = False) -> tasks_lib.TaskSpec:
  """Registers a task from your MJCF (text, or a file path) and returns its TaskSpec (see ktm/envs/tasks.py).

  obs_fn(readout) -> obs [..., obs_dim]; transition_fn(prev_readout, readout, ctrl [..., nu], dt) -> (reward [...],
  terminated [...] bool): JAX functions of `Readout`s with any leading batch shape, as the built-in tasks'.
  Actions in [-1, 1] are mapped onto the actuators' ctrlrange. obs_dim is checked (or inferred when None).
  extras: MjData fields your functions read from `readout.extra`, as (field, row index or None).
  """
  if not isinstance(name, str) or not name or ':' in name:
    _fail(f'a task needs a non-empty name without ":", got {name!r}')
  if name in models_lib.VARIANTS:
    _fail(f'task {name!r}: the name is taken by a morphology variant')
  for fn_name, fn in (('obs_fn', obs_fn), ('transition_fn', transition_fn)):
    if not callable(fn):
      _fail(f'task {name!r}: {fn_name} is missing or not a function (got {type(fn).__name__})')
  if not isinstance(xml, str) or not xml.strip():
    _fail(f'task {name!r}: xml must be MJCF text or the path of an MJCF file')
  if not models_lib.is_mjcf_text(xml):
    if not os.path.isfile(xml):
      _fail(f'task {name!r}: xml is neither MJCF text nor an existing file: {xml!r}')
    xml = os.path.abspath(xml)
  if not isinstance(frame_skip, int) or frame_skip < 1:
    _fail(f'task {name!r}: frame_skip must be an int >= 1, got {frame_skip!r}')
  if qvel_noise not in ('uniform', 'normal'):
    _fail(f"task {name!r}: qvel_noise must be 'uniform' or 'normal', got {qvel_noise!r}")
  if not reset_noise_scale >= 0:
    _fail(f'task {name!r}: reset_noise_scale must be >= 0, got {reset_noise_scale!r}')
  model = _compile(xml, f'task {name!r}')
  if model.nu < 1:
    _fail(f'task {name!r}: the model has no actuators')
  extras = tuple((f, i) for f, i in extras)
  data = mujoco.MjData(model)
  for field, index in extras:
    if not hasattr(data, field):
      _fail(f'task {name!r}: extras names {field!r}, which is not an MjData field')
    if index is not None and not 0 <= index < np.shape(getattr(data, field))[0]:
      _fail(f'task {name!r}: extras row {index} of {field!r} is out of range')
  spec = tasks_lib.TaskSpec(name, xml, frame_skip, obs_dim, obs_fn, transition_fn, float(reset_noise_scale),
                            qvel_noise, extras, rne_post)
  spec = dataclasses.replace(spec, obs_dim=_check_functions(spec, model))
  try:
    tasks_lib.register(spec)
  except ValueError as e:
    _fail(e)
  return spec


def suite(name: str, parts: Sequence[Union[Group, tasks_lib.TaskSpec, str]]) -> SuiteDef:
  """Registers suite `name` from groups (`morphology_group`), tasks (`task`) and registered task names; each task
  or name alone is a group of one. Returns the SuiteDef (`make_suite` takes it, or 'module:ATTR' naming it)."""
  if not isinstance(name, str) or not name or ':' in name:
    _fail(f'a suite needs a non-empty name without ":", got {name!r}')
  groups = []
  for part in parts:
    if isinstance(part, Group):
      groups.append(part.names)
    elif isinstance(part, tasks_lib.TaskSpec):
      groups.append((part.name,))
    elif isinstance(part, str) and (part in tasks_lib.TASKS or part in models_lib.VARIANTS):
      groups.append((part,))
    else:
      _fail(f'suite {name!r}: {part!r} is not a group, a task or a registered task name')
  if not groups:
    _fail(f'suite {name!r} has no tasks')
  names = [n for g in groups for n in g]
  if len(set(names)) != len(names):
    _fail(f'suite {name!r} lists a task twice: {names}')
  try:
    registry.register_suite(name, groups)
  except ValueError as e:
    _fail(e)
  return SuiteDef(name, tuple(groups))


def gym_suite(name: str, tasks: Sequence[Union[str, tuple[str, Callable]]]) -> gym_suite_lib.GymSuiteDef:
  """Registers suite `name` of gymnasium envs: ids ('Hopper-v5') or (name, factory) pairs, factory() returning a
  gymnasium env with Box spaces (each is made once here to read them). See ktm/envs/gym_suite.py."""
  if not isinstance(name, str) or not name or ':' in name:
    _fail(f'a suite needs a non-empty name without ":", got {name!r}')
  suite_def = gym_suite_lib.definition(name, tasks)
  try:
    registry.register_gym_suite(suite_def)
  except ValueError as e:
    _fail(e)
  return suite_def
