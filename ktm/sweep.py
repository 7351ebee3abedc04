"""Sweeps: N seeds x a grid of hyper-parameter values trained as ONE compiled program.

A sweep of S members puts a member axis in front of every array of the run state (learners, replay, envs, keys;
`ktm.loop.RunState`); the compiled chunks `vmap` the method over it. Member m has its own seed and its own values of
the swept fields, which enter the program as traced arrays [S] (`hparams`), so one compile serves every member.
Only float fields can be swept (learning rates, alpha, beta, tau, gamma, noises, ...): a structural field (sizes,
batch size, policy delay, epoch counts, capacities, modes) changes shapes or the program itself and needs separate
runs. Members are ordered setting-major: member = setting_index * num_seeds + seed_index.
"""

import copy
import dataclasses
import itertools
import typing
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ktm import validate

SEED = 'seed'


@dataclasses.dataclass(frozen=True)
class Sweep:
  """The members of a run: their seeds [S] and, per swept field, their values [S]."""
  seeds: Tuple[int, ...]
  values: Tuple[Tuple[str, Tuple[float, ...]], ...] = ()

  def __post_init__(self):
    if not self.seeds:
      raise ValueError('a sweep needs at least one member')
    for name, vals in self.values:
      if len(vals) != len(self.seeds):
        raise ValueError(f'sweep field {name!r} has {len(vals)} values for {len(self.seeds)} members')

  @property
  def size(self) -> int:
    return len(self.seeds)

  @property
  def fields(self) -> Tuple[str, ...]:
    return tuple(name for name, _ in self.values)

  def member(self, m: int) -> Dict[str, float]:
    """Member m's swept values {field: value} (without the seed)."""
    return {name: vals[m] for name, vals in self.values}

  def setting(self, m: int) -> Tuple[Tuple[str, float], ...]:
    """Member m's setting (its swept values), the key members of different seeds share."""
    return tuple(sorted(self.member(m).items()))

  def describe(self, m: int) -> str:
    return ' '.join([f'seed={self.seeds[m]}'] + [f'{k}={v:g}' for k, v in self.member(m).items()])

  def hparams(self) -> Dict[str, np.ndarray]:
    """The swept values as float32 arrays [S]: the traced inputs of the compiled program."""
    return {name: np.asarray(vals, np.float32) for name, vals in self.values}

  def to_json(self) -> dict:
    return dict(seeds=list(self.seeds), values={name: list(vals) for name, vals in self.values})

  @classmethod
  def from_json(cls, obj: dict) -> 'Sweep':
    return cls(tuple(obj['seeds']), tuple((k, tuple(v)) for k, v in obj.get('values', {}).items()))


def single(seed: int) -> Sweep:
  return Sweep((seed,))


def parse_spec(spec: str) -> Tuple[str, Tuple[float, ...]]:
  """'alpha=0,0.5,1' -> ('alpha', (0.0, 0.5, 1.0))."""
  name, sep, values = spec.partition('=')
  name = name.strip()
  if not sep or not name or not values.strip():
    raise ValueError(f'--sweep={spec} is not NAME=v1,v2,...')
  try:
    parsed = tuple(float(v) for v in values.split(','))
  except ValueError:
    raise ValueError(f'--sweep={spec}: values must be numbers, comma-separated') from None
  if len(set(parsed)) != len(parsed):
    raise ValueError(f'--sweep={spec} repeats a value')
  return name, parsed


def grid(seed: int, num_seeds: int, specs: Sequence[str]) -> Sweep:
  """The grid product of every `--sweep` spec, times `num_seeds` seeds (seed, seed + 1, ...)."""
  if num_seeds < 1:
    raise ValueError(f'--seeds must be >= 1, got {num_seeds}')
  if seed + num_seeds - 1 > validate.MAX_SEED:
    raise ValueError(f'--seeds={num_seeds} from --seed={seed} reaches seed {seed + num_seeds - 1}: seeds must be '
                     f'<= {validate.MAX_SEED}')
  parsed = [parse_spec(s) for s in specs]
  names = [n for n, _ in parsed]
  if len(set(names)) != len(names):
    raise ValueError(f'--sweep names a field twice: {names}')
  if SEED in names:
    raise ValueError('seeds are swept with --seeds=N (members use seed, seed + 1, ...), not --sweep=seed=...')
  settings = list(itertools.product(*[vals for _, vals in parsed])) or [()]
  seeds = tuple(seed + i for _ in settings for i in range(num_seeds))
  values = tuple((n, tuple(s[j] for s in settings for _ in range(num_seeds))) for j, n in enumerate(names))
  return Sweep(seeds, values)


# ---- swept fields <-> the method's configs ----

def config_fields(cls) -> Dict[str, type]:
  """{field: config dataclass} of a method class: the fields a user sets (not `tasks` / `teacher_cfg`)."""
  hints = typing.get_type_hints(cls)
  return {f.name: hints[f.name] for f in dataclasses.fields(cls)
          if f.name not in ('tasks', 'teacher_cfg') and dataclasses.is_dataclass(hints[f.name])}


def _owners(method_cls, name: str) -> List[Tuple[str, type]]:
  """(method field, its type) of every config of `method_cls` with a field `name`, and whether it is a float."""
  out = []
  for field, config_cls in config_fields(method_cls).items():
    hints = typing.get_type_hints(config_cls)
    if name in hints:
      out.append((field, hints[name]))
  return out


def sweepable(method_cls) -> List[str]:
  """The float fields of the method's configs: what `--sweep` accepts."""
  names = set()
  for config_cls in config_fields(method_cls).values():
    names.update(n for n, t in typing.get_type_hints(config_cls).items() if t is float)
  return sorted(names)


def check_fields(method_cls, names: Sequence[str]) -> None:
  """ValueError (one line) for a swept field that is unknown to the method or structural."""
  for name in names:
    owners = _owners(method_cls, name)
    if not owners:
      raise ValueError(f'--sweep={name}: {method_cls.name} has no setting {name!r}; sweepable: '
                       f'{", ".join(sweepable(method_cls))} (and --seeds)')
    if any(t is not float for _, t in owners):
      raise ValueError(f'--sweep={name}: {name} is structural (it changes array shapes or the compiled program), '
                       'so it cannot vary inside one program: train each value as a separate run')


def _replace_unchecked(obj, **changes):
  """A copy of frozen dataclass `obj` with `changes`, skipping `__post_init__` (values may be tracers)."""
  new = copy.copy(obj)
  for k, v in changes.items():
    object.__setattr__(new, k, v)
  return new


def _by_config(method, values: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
  """{method field: {config field: value}} for the configs of `method` that hold fields of `values`."""
  out = {}
  for field in config_fields(type(method)):
    names = {f.name for f in dataclasses.fields(getattr(method, field))}
    mine = {k: v for k, v in values.items() if k in names}
    if mine:
      out[field] = mine
  return out


def with_values(method, values: Dict[str, Any]):
  """`method` with its configs' fields set to `values` ({field: value}; tracers inside the program, where the
  members' validated values are not checked again)."""
  if not values:
    return method
  return _replace_unchecked(method, **{field: _replace_unchecked(getattr(method, field), **mine)
                                       for field, mine in _by_config(method, values).items()})


def member_methods(method, sweep: Sweep) -> List[Any]:
  """Every member's method with its own values, built (and so validated) as a normal config: ValueError names the
  member whose value is not allowed."""
  check_fields(type(method), sweep.fields)
  out, built = [], {}       # one method per setting: members differing only in their seed share it
  for m in range(sweep.size):
    values = sweep.member(m)
    setting = repr(sorted(values.items()))
    if setting not in built:
      try:
        changes = {field: dataclasses.replace(getattr(method, field), **mine)
                   for field, mine in _by_config(method, values).items()}
        built[setting] = dataclasses.replace(method, **changes)
      except ValueError as e:
        raise ValueError(f'sweep member {m} ({sweep.describe(m)}): {e}') from None
    out.append(built[setting])
  return out


def static_zero(x) -> bool:
  """Whether `x` is a plain number equal to 0 (a traced swept value never is: both of its terms are computed)."""
  return isinstance(x, (int, float)) and x == 0
