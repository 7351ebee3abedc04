"""MJCF models: gymnasium's shipped assets, users' own MJCF, and the programmatic morphology variants.

A task's `xml` is a gymnasium asset name ('hopper.xml'), a path to an MJCF file, or MJCF text itself
(user tasks, see ktm/envs/custom.py).

Benchmark A (gym-extensions HalfCheetah variants): every number of the named geoms' `size`
scaled by 0.75 / 1.25, positions unchanged, total mass renormalised to 14 kg. The
pendulum group: InvertedPendulum with the pole's length or mass scaled by 0.75 / 1.25.
"""

import dataclasses
import math
import os

import gymnasium
import mujoco
import numpy as np

HALFCHEETAH_TOTAL_MASS = 14.0
_PARTS = {'Torso': ('torso',), 'Thigh': ('bthigh', 'fthigh'), 'Leg': ('bshin', 'fshin'),
          'Foot': ('bfoot', 'ffoot')}
_SIZES = {'Small': 0.75, 'Big': 1.25}


@dataclasses.dataclass(frozen=True)
class Variant:
  """A morphology variant of a base task: how to edit its MjSpec before compiling."""
  name: str
  base: str
  geom_size_scale: tuple[tuple[str, float], ...] = ()  # (geom, factor): size scaled
  fromto_scale: tuple[tuple[str, float], ...] = ()  # (geom, factor): length scaled
  density_scale: tuple[tuple[str, float], ...] = ()  # (geom, factor): mass scaled
  total_mass: float | None = None  # renormalise to this many kg after editing


HALFCHEETAH_VARIANTS = tuple(
    Variant(f'HalfCheetah{size}{part}', 'HalfCheetah',
            geom_size_scale=tuple((g, factor) for g in geoms),
            total_mass=HALFCHEETAH_TOTAL_MASS)
    for part, geoms in _PARTS.items() for size, factor in _SIZES.items())

PENDULUM_VARIANTS = (
    Variant('InvertedPendulumShortPole', 'InvertedPendulum', fromto_scale=(('cpole', 0.75),)),
    Variant('InvertedPendulumLongPole', 'InvertedPendulum', fromto_scale=(('cpole', 1.25),)),
    Variant('InvertedPendulumLightPole', 'InvertedPendulum', density_scale=(('cpole', 0.75),)),
    Variant('InvertedPendulumHeavyPole', 'InvertedPendulum', density_scale=(('cpole', 1.25),)),
)
VARIANTS = {v.name: v for v in HALFCHEETAH_VARIANTS + PENDULUM_VARIANTS}


def asset_path(xml: str) -> str:
  """Path of an MJCF file shipped inside the gymnasium package."""
  return os.path.join(os.path.dirname(gymnasium.__file__), 'envs', 'mujoco', 'assets', xml)


def is_mjcf_text(xml: str) -> bool:
  """True when `xml` is MJCF text rather than a file name."""
  return xml.lstrip().startswith('<')


def load_spec(xml: str) -> mujoco.MjSpec:
  """The uncompiled MjSpec of MJCF text, an MJCF file path, or a gymnasium asset name."""
  if is_mjcf_text(xml):
    return mujoco.MjSpec.from_string(xml)
  return mujoco.MjSpec.from_file(xml if os.path.isabs(xml) else asset_path(xml))


def register_variant(variant: Variant) -> None:
  """Adds a variant to VARIANTS; a name already taken by a different definition raises ValueError."""
  old = VARIANTS.get(variant.name)
  if old is not None and old != variant:
    raise ValueError(f'a different morphology variant named {variant.name!r} is already registered: {old}')
  VARIANTS[variant.name] = variant


def _scale_masses(spec: mujoco.MjSpec, factor: float) -> None:
  """Scales every body's mass and inertia by `factor` through its geoms (inertiafromgeom)."""
  for body in spec.bodies[1:]:  # skip the world body
    if body.explicitinertial:
      raise ValueError(f'body {body.name} has an explicit inertial; not supported')
  for geom in spec.geoms:
    if geom.parent.name == 'world':
      continue
    if math.isnan(geom.mass):
      geom.density *= factor
    else:
      geom.mass *= factor


def variant_spec(variant: Variant, xml: str) -> mujoco.MjSpec:
  """The edited (uncompiled) MjSpec of `variant`, built from its base task's `xml` (see `load_spec`)."""
  spec = load_spec(xml)
  for name, factor in variant.geom_size_scale:
    spec.geom(name).size = np.asarray(spec.geom(name).size) * factor
  for name, factor in variant.fromto_scale:
    spec.geom(name).fromto = np.asarray(spec.geom(name).fromto) * factor
  for name, factor in variant.density_scale:
    spec.geom(name).density *= factor
  if variant.total_mass is not None:
    # Do gym-extensions' settotalmass explicitly: compile without it, then scale densities.
    spec.compiler.settotalmass = -1
    total = spec.compile().body_mass.sum()
    _scale_masses(spec, variant.total_mass / total)
  return spec


def variant_xml(name: str, xml: str) -> str:
  """MJCF text of a variant (loadable by gymnasium's MujocoEnv via `xml_file=`)."""
  return variant_spec(VARIANTS[name], xml).to_xml()


def build_model(task_name: str, xml: str) -> mujoco.MjModel:
  """Compiled MjModel of a base task (gymnasium's own xml, a user's MJCF file or text) or of a registered variant."""
  if task_name in VARIANTS:
    return variant_spec(VARIANTS[task_name], xml).compile()
  if is_mjcf_text(xml):
    return mujoco.MjModel.from_xml_string(xml)
  return mujoco.MjModel.from_xml_path(xml if os.path.isabs(xml) else asset_path(xml))
