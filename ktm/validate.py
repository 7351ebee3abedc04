"""Range checks for the config dataclasses: a bad value fails at construction with ONE line that names the
config, the field, the value and the allowed range, e.g.

  ValueError: TD3Config.gamma = 1.5 is not allowed: must be in (0, 1]

How a config uses them: declare each field's allowed values ONCE, as a class attribute `RANGES` (a plain dict,
not a dataclass field), and check them all in `__post_init__`:

  @dataclasses.dataclass(frozen=True)
  class TrainConfig:
    steps: int = 1_000_000        # env steps per env of each task
    start_steps: int = 25_000     # uniform-random actions (and no updates) before this many steps
    ...
    RANGES = dict(steps=validate.AT_LEAST_1, start_steps=validate.NON_NEGATIVE_INT, ...)

    def __post_init__(self):
      validate.check(self, self.RANGES)

`experiments/config_flags.py` prints `RANGES` in each generated flag's `--help` text ("allowed: > 0"), and the
field's trailing comment as its meaning, so a range declared here is both enforced and documented. Rules:
  POSITIVE (> 0), NON_NEGATIVE (>= 0), AT_LEAST_1 (integer >= 1), at_least(n), interval(lo, hi, ...),
  UNIT_INTERVAL_OPEN_LOW ((0, 1]), one_of(*choices), SIZES (non-empty integers >= 1), optional(rule) (None or rule),
  UPDATE_RATIO (p / q > 0, for an `UpdateRatio` field: updates per env step).
Float rules also reject NaN and +-inf. For a one-off check the functional helpers do the same in one call:
`positive(cfg, 'actor_lr', 'critic_lr')`, `non_negative(cfg, 'alpha', 'beta')`, `in_range(cfg, 'gamma', 0, 1,
low_open=True)`, `check(cfg, {'batch_size': AT_LEAST_1})`.
"""

import dataclasses
import fractions
import math
import numbers
import typing
from typing import Any, Callable, Dict, Mapping, Tuple


@dataclasses.dataclass(frozen=True)
class Rule:
  """An allowed-values predicate and its text for messages and --help ("> 0", "in (0, 1]")."""
  ok: Callable[[Any], bool]
  text: str

  def __str__(self) -> str:
    return self.text


def _real(x) -> bool:
  """A finite real number (bools are not numbers here)."""
  return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _integer(x) -> bool:
  return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def interval(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Rule:
  """A finite number in [low, high] (open ends as asked); `high` may be math.inf."""
  def ok(x):
    return (_real(x) and (x > low if low_open else x >= low)
            and (x < high if high_open else x <= high))
  left, right = '(' if low_open else '[', ')' if high_open or high == math.inf else ']'
  return Rule(ok, f'in {left}{_num(low)}, {_num(high)}{right}')


def _num(x) -> str:
  return 'inf' if x == math.inf else (f'{x:g}' if isinstance(x, float) else str(x))


def greater_than(low: float) -> Rule:
  """A finite number > low."""
  return Rule(lambda x: _real(x) and x > low, f'> {_num(low)}')


def at_least(minimum: int) -> Rule:
  """An integer >= minimum."""
  return Rule(lambda x: _integer(x) and x >= minimum, f'an integer >= {minimum}')


def one_of(*choices) -> Rule:
  return Rule(lambda x: x in choices, 'one of ' + ', '.join(repr(c) for c in choices))


def optional(rule: Rule, none_means: str = 'off') -> Rule:
  """None (meaning `none_means`) or a value allowed by `rule`."""
  return Rule(lambda x: x is None or rule.ok(x), f'None ({none_means}) or {rule.text}')


POSITIVE = greater_than(0)
NON_NEGATIVE = Rule(lambda x: _real(x) and x >= 0, '>= 0')
AT_LEAST_1 = at_least(1)
NON_NEGATIVE_INT = at_least(0)
MAX_SEED = 2**31 - 1    # seeds go to the compiled program as int32
SEED = Rule(lambda x: _integer(x) and 0 <= x <= MAX_SEED, f'an integer in [0, {MAX_SEED}]')
UNIT_INTERVAL_OPEN_LOW = interval(0, 1, low_open=True)
UNIT_INTERVAL = interval(0, 1)
MAX_UPDATE_PERIOD = 1000   # the largest q of an updates-per-step ratio p / q


def update_ratio(x) -> Tuple[int, int]:
  """(p, q) with x = p / q exactly (q <= MAX_UPDATE_PERIOD): updates per env step as p updates every q steps.
  ValueError for a value that is not a positive number of that form (e.g. 0.25 -> (1, 4), 3 -> (3, 1),
  1 / 3 as a float -> (1, 3), 0.3 -> (3, 10))."""
  if not _real(x) or x <= 0:
    raise ValueError(f'{x!r} is not a number > 0')
  ratio = fractions.Fraction(x).limit_denominator(MAX_UPDATE_PERIOD)
  if float(ratio) != float(x):
    raise ValueError(f'{x!r} is not p / q with q <= {MAX_UPDATE_PERIOD}')
  return ratio.numerator, ratio.denominator


def _is_update_ratio(x) -> bool:
  try:
    update_ratio(x)
  except ValueError:
    return False
  return True


# Updates per env step: an integer >= 1, or a fraction p / q (0.25 = one update every 4 steps), exact.
UPDATE_RATIO = Rule(_is_update_ratio, f'a number > 0 that is p / q with q <= {MAX_UPDATE_PERIOD} (e.g. 2, 0.25, '
                    '0.5), applied exactly: floor(steps x p / q) updates after `steps` steps')
# A field holding an UPDATE_RATIO: a float to the flags, but not a float to `--sweep` (it is structural).
UpdateRatio = typing.NewType('UpdateRatio', float)


def integral(x):
  """x as an int when it is an integral float (3.0 -> 3), so a ratio given as a flag is stored as the preset's."""
  return int(x) if isinstance(x, float) and x.is_integer() else x


SIZES = Rule(lambda x: isinstance(x, (tuple, list)) and len(x) > 0 and all(_integer(h) and h >= 1 for h in x),
             'a non-empty list of integers >= 1')


def _fail(cfg: Any, name: str, value: Any, rule: Rule) -> None:
  value_text = ','.join(str(v) for v in value) if isinstance(value, (tuple, list)) else repr(value)
  raise ValueError(f'{type(cfg).__name__}.{name} = {value_text or "(empty)"} is not allowed: must be {rule.text}')


def check(cfg: Any, rules: Mapping[str, Rule]) -> None:
  """Raises ValueError (one line) for the first field of `cfg` whose value `rules[field]` does not allow."""
  for name, rule in rules.items():
    value = getattr(cfg, name)
    if not rule.ok(value):
      _fail(cfg, name, value, rule)


def check_values(rules: Mapping[str, Rule], **values: Any) -> None:
  """A script's own arguments (no config class): ValueError '--name = value is not allowed: must be ...'."""
  for name, value in values.items():
    if not rules[name].ok(value):
      raise ValueError(f'--{name} = {value!r} is not allowed: must be {rules[name].text}')


def positive(cfg: Any, *names: str) -> None:
  """Each field is a finite number > 0."""
  check(cfg, {n: POSITIVE for n in names})


def non_negative(cfg: Any, *names: str) -> None:
  """Each field is a finite number >= 0."""
  check(cfg, {n: NON_NEGATIVE for n in names})


def in_range(cfg: Any, name: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
  """Field `name` is a finite number in [low, high] (open ends as asked)."""
  check(cfg, {name: interval(low, high, low_open, high_open)})


def describe(cls: type) -> Dict[str, str]:
  """{field: allowed-values text} from `cls.RANGES` (empty if the class declares none); for help texts."""
  return {name: rule.text for name, rule in getattr(cls, 'RANGES', {}).items()}


def field_meanings(cls: type) -> Dict[str, str]:
  """{field: its trailing `# comment`, with the comment-only lines right below it} read from the source of the class
  and of the dataclasses it extends (one sentence per field, for --help)."""
  import inspect  # pylint: disable=import-outside-toplevel
  import re  # pylint: disable=import-outside-toplevel
  names = {f.name for f in dataclasses.fields(cls)}
  out = {}
  for klass in reversed(cls.__mro__):     # a subclass's comment wins
    if not dataclasses.is_dataclass(klass):
      continue
    try:
      source = inspect.getsource(klass)
    except (OSError, TypeError):
      continue
    for match in re.finditer(r'^\s+(\w+)\s*:[^\n#]*#\s*(.+)\n((?:[ \t]+#.*\n)*)', source, re.MULTILINE):
      if match.group(1) in names:
        more = [line.strip()[1:].strip() for line in match.group(3).splitlines()]
        out[match.group(1)] = ' '.join([match.group(2).strip()] + more)
  return out

