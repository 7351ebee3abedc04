"""The persistent compilation cache for programs with host callbacks (those that step the native physics).

JAX writes no program with a host callback to its persistent cache (`JAX_COMPILATION_CACHE_DIR`), so every process
compiles the native-physics programs again: ~12 s of a tiny run_ktm.py's 27 s on a 2-core CPU, and the test suite
starts dozens of such processes. Yet on CPU a Python callback is an FFI custom call that names its callback by an
index into the executable's callback list, and XLA can load a serialized executable with a new list
(`Client.deserialize_executable(..., host_callbacks=...)`). `enable()` makes JAX do that:

- a program with host callbacks is written under `cb-` + its cache key (a process without this module never reads
  it: loaded without its callbacks, such a program would crash when it calls one);
- such a program is read back with the callbacks of the process that asks for it, i.e. the ones its own lowering
  made, in the same order, so it calls this process's physics.

The cache key covers the whole program (the callbacks' operand and result shapes included) but not what a callback
does in Python, and need not: the callbacks bound at load time are this lowering's own.

It also makes cache writes atomic (a temporary file, then a rename): JAX writes an entry in place, so with many
processes on one cache a reader could meet a half-written entry, and a process killed mid-write left a cut one.

It patches private functions of jax 0.10 (`jax._src.compiler.compile_or_get_cached`, `_cache_write`,
`jax._src.compilation_cache.get_executable_and_time`, `jax._src.lru_cache.LRUCache.put`); with another JAX whose
functions differ it does nothing and says so. Opt-in: `KTM_CACHE_CALLBACK_PROGRAMS=1` (import ktm) or `enable()`;
the tests turn it on.
"""

import inspect
import os
import threading
import warnings

PREFIX = 'cb-'
_local = threading.local()   # the host callbacks of the program this thread is compiling
_enabled = False


def _callbacks():
  return tuple(getattr(_local, 'callbacks', ()))


def enable() -> bool:
  """Patches JAX (once per process) so programs with host callbacks use the persistent cache; False if this JAX's
  private functions are not the ones expected (nothing patched then)."""
  global _enabled
  if _enabled:
    return True
  from jax._src import compilation_cache, compiler, lru_cache   # pylint: disable=import-outside-toplevel
  expected = {compiler.compile_or_get_cached: ['backend', 'computation', 'devices', 'compile_options',
                                               'host_callbacks', 'executable_devices', 'pgle_profiler'],
              compiler._cache_write: ['cache_key', 'compile_time_secs', 'module_name', 'backend', 'executable',
                                      'host_callbacks'],
              compilation_cache.get_executable_and_time: ['cache_key', 'compile_options', 'backend',
                                                          'executable_devices'],
              lru_cache.LRUCache.put: ['self', 'key', 'value']}
  if any(list(inspect.signature(fn).parameters) != params for fn, params in expected.items()):
    warnings.warn('ktm.callback_cache: this JAX version differs from the one it patches (0.10); programs with host '
                  'callbacks are compiled in every process as usual')
    return False
  compile_or_get_cached, cache_write = compiler.compile_or_get_cached, compiler._cache_write
  read = compilation_cache.get_executable_and_time

  def compile_with_callbacks(backend, computation, devices, compile_options, host_callbacks, *args, **kwargs):
    _local.callbacks = host_callbacks
    try:
      return compile_or_get_cached(backend, computation, devices, compile_options, host_callbacks, *args, **kwargs)
    finally:
      _local.callbacks = ()

  def write_with_callbacks(cache_key, compile_time_secs, module_name, backend, executable, host_callbacks):
    if host_callbacks:
      cache_key = PREFIX + cache_key
    return cache_write(cache_key, compile_time_secs, module_name, backend, executable, ())

  def read_with_callbacks(cache_key, compile_options, backend, executable_devices):
    callbacks = _callbacks()
    if not callbacks:
      return read(cache_key, compile_options, backend, executable_devices)
    cache = compilation_cache._get_cache(backend)
    entry = None if cache is None else cache.get(PREFIX + cache_key)
    if entry is None:
      return None, None
    serialized, compile_time = compilation_cache.extract_executable_and_time(
        compilation_cache.decompress_executable(entry))
    return backend.deserialize_executable(serialized, executable_devices, compile_options,
                                          host_callbacks=list(callbacks)), compile_time

  put = lru_cache.LRUCache.put

  def atomic_put(cache, key, value):
    if cache.eviction_enabled:              # JAX then holds a file lock around its own write
      return put(cache, key, value)
    path = cache.path / f'{key}{lru_cache._CACHE_SUFFIX}'
    if path.exists():
      return None
    temporary = path.with_name(f'.{path.name}.{os.getpid()}.{threading.get_ident()}.tmp')
    temporary.write_bytes(value)
    os.replace(temporary, path)
    return None

  compiler.compile_or_get_cached = compile_with_callbacks
  lru_cache.LRUCache.put = atomic_put
  compiler._cache_write = write_with_callbacks
  compilation_cache.get_executable_and_time = read_with_callbacks
  _enabled = True
  return True
