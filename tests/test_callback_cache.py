"""ktm/callback_cache.py: a program with a host callback is compiled once and then loaded from the persistent cache
by other processes, bound to THEIR callbacks; a process without the patch never loads it (it would crash); entries
are written atomically."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Prints f(x) for a program whose host callback multiplies by FACTOR (a Python value the program cannot contain),
# and whether the program came from the persistent cache.
PROGRAM = r'''
import os, sys
import ktm, jax, jax.numpy as jnp, numpy as np
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event)
                                       if event == '/jax/compilation_cache/cache_hits' else None)
factor = float(sys.argv[1])
def host(x):
  return (np.asarray(x) * factor).astype(np.float32)
@jax.jit
def f(x):
  y = jax.pure_callback(host, jax.ShapeDtypeStruct(x.shape, x.dtype), x * 2.0)
  return jnp.sum(y) + 1.0
x = jnp.arange(4, dtype=jnp.float32)
hits.clear()
print(float(f(x)), 'hit' if hits else 'compiled')
'''


def run(cache, factor, patched):
  env = {k: v for k, v in os.environ.items() if k != 'KTM_CACHE_CALLBACK_PROGRAMS'}
  env.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PLATFORMS='cpu')
  if patched:
    env['KTM_CACHE_CALLBACK_PROGRAMS'] = '1'
  proc = subprocess.run([sys.executable, '-c', PROGRAM, str(factor)], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc.stdout.split()


def test_a_callback_program_is_loaded_from_the_cache_with_the_loading_process_callbacks(tmp_path):
  cache = tmp_path / 'cache'
  # sum(2 * [0, 1, 2, 3] * factor) + 1
  assert run(cache, 2.0, patched=True) == ['25.0', 'compiled']
  assert any(name.startswith('cb-') for name in os.listdir(cache))
  assert not any(name.endswith('.tmp') for name in os.listdir(cache))      # written atomically: no leftovers
  assert run(cache, 3.0, patched=True) == ['37.0', 'hit']           # this process's callback, not the writer's
  assert run(cache, 3.0, patched=False) == ['37.0', 'compiled']     # JAX alone never reads a cb- entry
