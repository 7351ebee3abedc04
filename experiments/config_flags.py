"""absl flags generated from config dataclasses, so every config field has a flag and nothing is applied by hand.

A generated flag defaults to None, meaning "keep the preset's (or the dataclass's) value". Its help text is the
field's trailing `# comment` in the dataclass (its meaning) and the allowed values the class declares in `RANGES`
(see ktm/validate.py), so `--help` documents exactly what `__post_init__` enforces.

Flags defined here (generated and shared ones) count as the calling script's own key flags, so a script's `--help`
lists them; absl's, jax's and orbax's flags stay in `--helpfull`.

`user_errors_exit(main)` turns every user error (bad value, wrong path, corrupt file, OS error such as a full disk
or a read-only directory, out of memory, Ctrl-C) into ONE `error: ...` line on stderr and a non-zero exit.
"""

import dataclasses
import errno
import functools
import os
import sys
import typing
from typing import Any, Callable, Dict, Iterable

from absl import flags

from ktm import validate

# Flags this module defines are attributed to (and listed by --help of) the module that called it: the script.
flags.disclaim_key_flags()

# Meanings of fields that several configs share and that carry no comment of their own.
COMMON_MEANINGS = {
    'seed': 'random seed of the run (network initialization, exploration, environment resets)',
    'eval_episodes': 'deterministic evaluation episodes per task, run in parallel',
}

EXIT_INTERRUPTED = 130   # 128 + SIGINT, as shells report Ctrl-C


def _base_type(annotation):
  if typing.get_origin(annotation) is typing.Union:   # Optional[X]
    annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
  return getattr(annotation, '__supertype__', annotation)   # a NewType (validate.UpdateRatio): its base type


def _sentence(text: str) -> str:
  text = text.strip()
  return (text[0].upper() + text[1:] + ('' if text.endswith('.') else '.')) if text else text


def help_text(cls, field: dataclasses.Field) -> str:
  """'<Meaning>. Allowed: <range>. Default: the preset's value, else <default>.' for one config field."""
  meaning = validate.field_meanings(cls).get(field.name) or COMMON_MEANINGS.get(field.name) or f'{cls.__name__}.' \
      f'{field.name}'
  parts = [_sentence(meaning)]
  allowed = validate.describe(cls).get(field.name)
  if allowed:
    parts.append(f'Allowed: {allowed}.')
  default = field.default if field.default is not dataclasses.MISSING else None
  if isinstance(default, tuple):
    default = ','.join(str(d) for d in default)
  parts.append(f"Default: the preset's value, else {default}.")
  return ' '.join(parts)


def define_flags(cls, exclude: Iterable[str] = (), flag_values=flags.FLAGS) -> None:
  """Defines one flag per field of dataclass `cls` (ints, floats, bools, strings, tuples of ints); a field whose
  name is already a flag (shared by two configs) keeps the first definition."""
  hints = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    if field.name in exclude or field.name in flag_values:
      continue
    kind = _base_type(hints[field.name])
    text = help_text(cls, field)
    if kind is bool:
      flags.DEFINE_boolean(field.name, None, text, flag_values=flag_values)
    elif kind is int:
      flags.DEFINE_integer(field.name, None, text, flag_values=flag_values)
    elif kind is float:
      flags.DEFINE_float(field.name, None, text, flag_values=flag_values)
    elif kind is str:
      flags.DEFINE_string(field.name, None, text, flag_values=flag_values)
    elif typing.get_origin(kind) is tuple:
      flags.DEFINE_list(field.name, None, text + ' Comma-separated, e.g. 400,400.', flag_values=flag_values)
    else:
      raise TypeError(f'no flag type for {cls.__name__}.{field.name}: {kind}')


def _int_list(name: str, values) -> tuple:
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise ValueError(f'--{name}={",".join(values)} is not allowed: must be comma-separated integers') from None


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
      value = _int_list(field.name, value)
    out[field.name] = value
  return out


def build(cls, preset: Dict[str, Any], flag_values=flags.FLAGS, **fixed) -> Any:
  """cls(**fixed, **preset, **flag overrides), flags winning over the preset."""
  return cls(**{**preset, **overrides(cls, flag_values, exclude=fixed), **fixed})


def define_run_flags(preset_names: Iterable[str], workdir_help: str) -> None:
  """The flags every experiment script shares: --preset, --benchmark, --workdir, --backend, --tensorboard,
  --progress_bar."""
  flags.DEFINE_enum('preset', 'paper', sorted(preset_names), 'Settings to start from; other flags override them.')
  flags.DEFINE_string('benchmark', None, "Suite to train on (default: the preset's): halfcheetah_group "
                      '(Benchmark A), benchmark_b (Benchmark B), pendulum_group, or one task name.')
  flags.DEFINE_string('workdir', None, workdir_help, required=True)
  flags.register_validator('workdir', lambda v: v != '', message='--workdir is empty: name the run directory')
  flags.DEFINE_enum('backend', 'auto', ['auto', 'mjx', 'native'], 'Physics backend (auto: native MuJoCo through a '
                    'host callback, except MJX on a GPU/TPU from 512 envs per task, where MJX starts to pay).')
  flags.DEFINE_boolean('tensorboard', True, 'Also write TensorBoard event files.')
  flags.DEFINE_boolean('progress_bar', True, 'Show a progress bar.')
  define_sweep_flags()


def define_sweep_flags() -> None:
  """--seeds, --sweep and the multi-host flags (see ktm/sweep.py)."""
  flags.DEFINE_integer('seeds', 1, 'Sweep members per setting, trained in ONE program: seeds seed, seed + 1, ...',
                       lower_bound=1)
  flags.DEFINE_multi_string('sweep', [], 'NAME=v1,v2,... : train every value of the float setting NAME (repeat the '
                            'flag for a grid; times --seeds) in the same program, e.g. --sweep=alpha=0,0.5,1. '
                            'Structural settings (sizes, batch, epochs, capacities, modes) need separate runs.')
  flags.DEFINE_string('coordinator_address', None, 'Multi-host sweeps: host:port of process 0 for '
                      'jax.distributed.initialize; every process runs the same command with its own --process_id.')
  flags.DEFINE_integer('num_processes', None, 'Multi-host sweeps: how many processes take part.')
  flags.DEFINE_integer('process_id', None, "Multi-host sweeps: this process's index, 0 .. num_processes - 1.")


def sweep_from_flags(seed: int, flag_values=flags.FLAGS):
  """The run's members from --seeds / --sweep, after joining the other processes when --coordinator_address is
  given (jax.distributed; on CPU, collectives over gloo)."""
  from ktm import sweep  # pylint: disable=import-outside-toplevel
  members = sweep.grid(seed, flag_values.seeds, flag_values.sweep)
  distributed = (flag_values.coordinator_address, flag_values.num_processes, flag_values.process_id)
  if any(v is not None for v in distributed):
    if any(v is None for v in distributed):
      raise ValueError('a multi-host sweep needs --coordinator_address, --num_processes and --process_id')
    if not 0 <= flag_values.process_id < flag_values.num_processes:
      raise ValueError(f'--process_id={flag_values.process_id} is not allowed: must be in 0 .. '
                       f'{flag_values.num_processes - 1}')
    import jax  # pylint: disable=import-outside-toplevel
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(flag_values.coordinator_address, flag_values.num_processes, flag_values.process_id)
  return members


def _one_line(text: str, limit: int = 600) -> str:
  text = ' '.join(str(text).split())
  return text if len(text) <= limit else text[:limit - 3] + '...'


def _os_error_text(e: OSError) -> str:
  """'<what> (<path>)' for an OSError, with a hint for the common disk problems."""
  if len(e.args) == 1 or not e.strerror:   # raised by our code with a full message
    return str(e)
  where = ' '.join(f for f in (e.filename, e.filename2) if f)
  text = f'{e.strerror}: {where}' if where else e.strerror
  if e.errno in (errno.ENOSPC, errno.EDQUOT):
    text += ' (free disk space, then re-run the same command: it resumes from the last checkpoint)'
  elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
    text += ' (choose a writable directory)'
  return text


_OS_MESSAGES = ('No space left on device', 'Disk quota exceeded', 'Read-only file system', 'Permission denied',
                'RESOURCE_EXHAUSTED', 'Out of memory')


def _chain(e: BaseException):
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    yield e
    e = e.__cause__ or e.__context__


def user_error_text(e: BaseException):
  """The one-line text of a user error (anything a user can fix: value, path, file, disk, memory), or None for a
  bug (which keeps its traceback). Wrapped errors (orbax, tensorstore, XLA) are found through their causes."""
  from ktm.checkpoint import CheckpointError  # pylint: disable=import-outside-toplevel
  for cause in _chain(e):
    if isinstance(cause, MemoryError):
      return f'out of memory: {_one_line(cause) or type(cause).__name__}'
    if isinstance(cause, OSError):
      return _one_line(_os_error_text(cause))
  if isinstance(e, (ValueError, CheckpointError)):
    return _one_line(e)
  if any(m in str(e) for m in _OS_MESSAGES):
    return _one_line(f'{type(e).__name__}: {e}')
  return None


def user_errors_exit(main: Callable) -> Callable:
  """Wraps a script's main so that every user error prints ONE `error: ...` line on stderr and exits non-zero
  instead of a traceback: ValueError (bad settings), FileNotFoundError / FileExistsError / CheckpointError (wrong
  path, corrupt file, mismatched run), any other OSError (permissions, read-only or full disk), MemoryError, and
  errors wrapping one of those. Ctrl-C (KeyboardInterrupt) exits with 130. An exception whose class has an integer
  `exit_code` attribute (e.g. a loop's "interrupted, checkpoint saved") prints its message and exits with that code.
  Anything else is a bug and keeps its traceback; KTM_TRACEBACK=1 shows the traceback of every error."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except KeyboardInterrupt:
      print('error: interrupted (Ctrl-C); re-run the same command to resume from the last checkpoint',
            file=sys.stderr, flush=True)
      sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # pylint: disable=broad-except  (re-raised below unless it is a user error)
      code = getattr(type(e), 'exit_code', None)
      text = _one_line(e) if isinstance(code, int) else user_error_text(e)
      if text is None or os.environ.get('KTM_TRACEBACK') == '1':
        raise
      print(f'error: {text}', file=sys.stderr, flush=True)
      sys.exit(code if isinstance(code, int) else 1)
  return wrapped


def parse_flags(argv):
  """absl's flag parsing with a bad flag (unknown name, unparsable value, missing required flag) reported as ONE
  `error: ...` line and exit status 2; use as `app.run(main, flags_parser=config_flags.parse_flags)`."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {_one_line(e)} (see --help)', file=sys.stderr, flush=True)
    sys.exit(2)
