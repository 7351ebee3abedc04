import os

# A persistent compilation cache keeps CI's repeated compiles cheap; tests stay on the CPU. It is set through the
# environment so that the experiments/ scripts that tests start as subprocesses (kills, resumes, sweeps: each a fresh
# process) share it, and it is ONE cache for both pytest-xdist workers and those scripts. Every program is written to
# it however short its compile (eager ops compile in ~10-200 ms each, thousands of times over the suite). An entry
# read while another process is still writing it fails to decompress, and JAX then warns and compiles instead (a size
# limit would make JAX lock the directory, but then every write lists the whole cache: slower than the compiles).
# Programs with host callbacks (everything that steps the native physics), which JAX never writes, are cached too
# (ktm/callback_cache.py): a tiny run_ktm.py then starts in 16 s instead of 28 s once another process compiled it.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ['JAX_COMPILATION_CACHE_DIR'] = os.environ.get('KTM_JAX_CACHE',
                                                         os.path.join(os.path.expanduser('~'), '.cache', 'ktm-jax'))
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'
os.environ['KTM_CACHE_CALLBACK_PROGRAMS'] = '1'
# Tests run tiny networks for a few steps, so XLA compiles take most of their time. LLVM -O0 code generation compiles
# the same HLO programs ~2.2x faster than -O1 (test_methods + test_run_ktm alone, cold: compile 86 s -> 38 s); the
# programs run slower (test_methods' time outside compiles: 33 s -> 64 s), and the suite as a whole takes a quarter
# less (2-core Zen 3, cold: 576 s at -O1 -> 421 s at -O0 with the test cuts of the same sitting). An earlier -O0
# trial (before the flags below were added) moved test_policy's 200-step HalfCheetah trajectory past its 1e-4; with
# them it passes. Results differ from the experiments' (XLA's default -O2) in rounding, so tests hold numbers to
# tolerances and bit-exactness to runs under the same flags, as everywhere.
# XLA:CPU's legacy elemental emitters (not the MLIR fusion emitters) and LLVM without its expensive passes compile
# faster again at the same run time (measured at -O1: four TD3/SAC programs 6.7 s -> 3.7 s). One LLVM module per
# program instead of XLA:CPU's parallel codegen split: on a worker that has one core the split only adds modules to
# build (test_td3 + test_sac + test_transfer cold on one core: 52-55 s -> 45-47 s).
_TEST_XLA_FLAGS = ('--xla_backend_optimization_level=0', '--xla_cpu_use_fusion_emitters=false',
                   '--xla_llvm_disable_expensive_passes=true', '--xla_cpu_parallel_codegen_split_count=1')
for _flag in _TEST_XLA_FLAGS:
  if _flag.split('=')[0] not in os.environ.get('XLA_FLAGS', ''):
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _flag).strip()

import jax  # noqa: E402  (after the environment is set: jax reads the cache settings from it at import)
import ktm  # noqa: E402,F401  (turns the callback cache on in this process too)

import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402


# Modules whose compiled programs are large (MJX physics): dropped from memory after the module.
_LARGE_PROGRAMS = ('test_envs', 'test_envs_parity', 'test_precision')


@pytest.fixture(autouse=True, scope='module')
def _free_compiled_programs(request):
  """Keeps compiled programs in memory from module to module (tests that build the same method on the same suite
  reuse them without even a cache read and deserialization), except after the modules that
  compile MJX physics, whose programs are large: there JAX's in-memory caches are dropped (the persistent cache still
  serves what it holds)."""
  yield
  if request.module.__name__.split('.')[-1] in _LARGE_PROGRAMS:
    jax.clear_caches()
    gc.collect()


# The modules that take longest (measured: tests/profile_tests.py), in the order the two workers should start them.
# Each module runs whole on one worker (--dist=loadfile): its module fixtures (teacher sets, uninterrupted runs) are
# built once and its tests reuse each other's compiled programs; the longest go first so neither worker ends alone.
LONGEST_FIRST = ('test_methods', 'test_sweep', 'test_kills', 'test_run_ktm', 'test_trust', 'test_precision',
                 'test_bad_inputs', 'test_run_baseline', 'test_envs', 'test_policy', 'test_transfer')


def pytest_collection_modifyitems(config, items):
  """Orders the modules longest first, and skips `slow` tests (long versions of tests that also have a short one in
  the default run) unless KTM_SLOW=1."""
  del config
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.module.__name__.split('.')[-1], len(rank)))   # stable: files keep order
  if os.environ.get('KTM_SLOW') == '1':
    return
  skip = pytest.mark.skip(reason='slow: long version of a tested behaviour; run with KTM_SLOW=1')
  for item in items:
    if 'slow' in item.keywords:
      item.add_marker(skip)


# ---- KTM_TEST_PROFILE=DIR: where each test's time goes (tests/profile_tests.py turns the files into a table) ----
_PROFILE_DIR = os.environ.get('KTM_TEST_PROFILE')
_COMPILE_EVENTS = {'/jax/core/compile/backend_compile_duration': 'compile_s',
                   '/jax/core/compile/jaxpr_trace_duration': 'trace_s',
                   '/jax/core/compile/jaxpr_to_mlir_module_duration': 'lower_s',
                   '/jax/compilation_cache/cache_retrieval_time_sec': 'cache_read_s'}
_current = {}


def _on_jax_event(event, duration, **kwargs):
  del kwargs
  name = _COMPILE_EVENTS.get(event)
  if name and _current:
    _current[name] = _current.get(name, 0.0) + duration
    if name == 'compile_s':
      _current['compiles'] = _current.get('compiles', 0) + 1


if _PROFILE_DIR:
  jax.monitoring.register_event_duration_secs_listener(_on_jax_event)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  """Per test (setup + call + teardown): wall seconds, JAX compile / trace / lowering seconds and compile count in
  this process, and the CPU seconds of subprocesses the test waited for."""
  del nextitem
  if not _PROFILE_DIR:
    yield
    return
  _current.clear()
  _current.update(test=item.nodeid, worker=os.environ.get('PYTEST_XDIST_WORKER', 'main'))
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  yield
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  _current.update(wall_s=time.perf_counter() - start,
                  subprocess_cpu_s=(after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime))
  os.makedirs(_PROFILE_DIR, exist_ok=True)
  with open(os.path.join(_PROFILE_DIR, f"{_current['worker']}.jsonl"), 'a') as f:
    f.write(json.dumps(_current) + '\n')
  _current.clear()
