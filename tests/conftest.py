import os

# A persistent compilation cache keeps CI's repeated compiles cheap; tests stay on the CPU.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import jax  # noqa: E402

jax.config.update('jax_compilation_cache_dir',
                  os.environ.get('KTM_JAX_CACHE', os.path.join(os.path.expanduser('~'), '.cache', 'ktm-jax')))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
