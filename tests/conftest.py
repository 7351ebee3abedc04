import os

# A persistent compilation cache keeps CI's repeated compiles cheap; tests stay on the CPU. It is set through the
# environment so that the experiments/ scripts that tests start as subprocesses (kills, resumes, sweeps: each a fresh
# process) share it. One cache per pytest-xdist worker. An entry read while another process is still writing it fails
# to decompress, and JAX then warns and compiles instead.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ['JAX_COMPILATION_CACHE_DIR'] = (
    os.environ.get('KTM_JAX_CACHE', os.path.join(os.path.expanduser('~'), '.cache', 'ktm-jax'))
    + os.environ.get('PYTEST_XDIST_WORKER', ''))
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '1.0'
# Tests run tiny networks for a few steps, so XLA compiles take most of their time. LLVM -O1 code generation compiles
# the same HLO programs ~1.8x faster than XLA's default -O2 (a 4-member sweep's first run: 34 s -> 19 s on this CPU).
# Its float results differ from -O2's in the last bits (tiny runs of six methods: parameters within 6e-8, the same
# evaluation returns), so tests hold numbers to tolerances and bit-exactness to runs under the same flags, as
# everywhere; the experiments keep XLA's default. -O0 compiles faster still but changes rounding enough to move a
# 200-step HalfCheetah trajectory (tests/test_policy.py) and runs the learning tests up to 2x slower.
if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_backend_optimization_level=1').strip()

import jax  # noqa: E402  (after the environment is set: jax reads the cache settings from it at import)

import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope='module')
def _free_compiled_programs():
  """Drops JAX's in-memory compiled programs after each test module: one process runs every test, and keeping all
  executables (MJX programs are large) grows its memory through the run; the persistent cache still serves
  recompiles."""
  yield
  jax.clear_caches()
  gc.collect()


def pytest_collection_modifyitems(config, items):
  """`slow` tests (long versions of tests that also have a short one in the default run) run with KTM_SLOW=1."""
  del config
  if os.environ.get('KTM_SLOW') == '1':
    return
  skip = pytest.mark.skip(reason='slow: long version of a tested behaviour; run with KTM_SLOW=1')
  for item in items:
    if 'slow' in item.keywords:
      item.add_marker(skip)
