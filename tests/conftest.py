import os

# A persistent compilation cache keeps CI's repeated compiles cheap; tests stay on the CPU.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import jax  # noqa: E402

# One cache per pytest-xdist worker: two processes never write the same cache entry.
jax.config.update('jax_compilation_cache_dir',
                  os.environ.get('KTM_JAX_CACHE', os.path.join(os.path.expanduser('~'), '.cache', 'ktm-jax'))
                  + os.environ.get('PYTEST_XDIST_WORKER', ''))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)

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
