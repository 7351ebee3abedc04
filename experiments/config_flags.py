"""absl flags generated from config dataclasses, so every config field has a flag and nothing is applied by hand.

A generated flag defaults to None, meaning "keep the preset's (or the dataclass's) value".
"""

import dataclasses
import functools
import sys
import typing
from typing import Any, Callable, Dict, Iterable

from absl import flags


def _base_type(annotation):
  if typing.get_origin(annotation) is typing.Union:   # Optional[X]
    return next(a for a in typing.get_args(annotation) if a is not type(None))
  return annotation


def define_flags(cls, exclude: Iterable[str] = (), flag_values=flags.FLAGS) -> None:
  """Defines one flag per field of dataclass `cls` (ints, floats, bools, strings, tuples of ints)."""
  hints = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    if field.name in exclude or field.name in flag_values:
      continue
    kind = _base_type(hints[field.name])
    default = field.default if field.default is not dataclasses.MISSING else None
    help_text = f'{cls.__name__}.{field.name} (default: preset value, else {default})'
    if kind is bool:
      flags.DEFINE_boolean(field.name, None, help_text, flag_values=flag_values)
    elif kind is int:
      flags.DEFINE_integer(field.name, None, help_text, flag_values=flag_values)
    elif kind is float:
      flags.DEFINE_float(field.name, None, help_text, flag_values=flag_values)
    elif kind is str:
      flags.DEFINE_string(field.name, None, help_text, flag_values=flag_values)
    elif typing.get_origin(kind) is tuple:
      flags.DEFINE_list(field.name, None, help_text + ' (comma-separated)', flag_values=flag_values)
    else:
      raise TypeError(f'no flag type for {cls.__name__}.{field.name}: {kind}')


def overrides(cls, flag_values=flags.FLAGS, exclude: Iterable[str] = ()) -> Dict[str, Any]:
  """{field: value} for the fields of `cls` whose flags were given (tuples parsed as ints)."""
  out = {}
  hints = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    if field.name in exclude or field.name not in flag_values:
      continue
    value = flag_values[field.name].value
    if value is None:
      continue
    if typing.get_origin(_base_type(hints[field.name])) is tuple:
      value = tuple(int(v) for v in value)
    out[field.name] = value
  return out


def build(cls, preset: Dict[str, Any], flag_values=flags.FLAGS, **fixed) -> Any:
  """cls(**fixed, **preset, **flag overrides), flags winning over the preset."""
  return cls(**{**preset, **overrides(cls, flag_values, exclude=fixed), **fixed})


def define_run_flags(preset_names: Iterable[str], workdir_help: str) -> None:
  """The flags every experiment script shares: --preset, --benchmark, --workdir, --backend, --tensorboard,
  --progress_bar."""
  flags.DEFINE_enum('preset', 'paper', sorted(preset_names), 'Settings to start from; other flags override them.')
  flags.DEFINE_string('benchmark', None, "Suite name (default: the preset's), e.g. halfcheetah_group, benchmark_b.")
  flags.DEFINE_string('workdir', None, workdir_help, required=True)
  flags.DEFINE_enum('backend', 'auto', ['auto', 'mjx', 'native'], 'Physics backend (auto: native on CPU).')
  flags.DEFINE_boolean('tensorboard', True, 'Also write TensorBoard event files.')
  flags.DEFINE_boolean('progress_bar', True, 'Show a progress bar.')


def user_errors_exit(main: Callable) -> Callable:
  """Wraps a script's main so that a wrong path, a corrupt file or a mismatched config prints one `error:` line
  and exits with status 1 instead of a traceback."""
  from ktm.checkpoint import CheckpointError  # pylint: disable=import-outside-toplevel

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except (FileNotFoundError, FileExistsError, CheckpointError, ValueError) as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(1)
  return wrapped
