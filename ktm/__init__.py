"""ktm: KTM-DRL multi-task knowledge transfer for continuous control in JAX/Flax."""

import os as _os

# On CPU, XLA's YNNPACK dot fusion runs this project's [256, 400] x [400, 400] matmuls 9-18% slower than Eigen
# (WORKSPACE.md, "CPU speed"). The flag is read when JAX creates its backend, so it applies only if ktm is
# imported before JAX's first computation; KTM_KEEP_XLA_FLAGS=1 leaves XLA_FLAGS alone.
if not _os.environ.get('KTM_KEEP_XLA_FLAGS') and 'ynn_fusion_type' not in _os.environ.get('XLA_FLAGS', ''):
  _os.environ['XLA_FLAGS'] = (_os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_experimental_ynn_fusion_type=').strip()

__version__ = '0.1.0'

# KTM_CACHE_CALLBACK_PROGRAMS=1: programs that step the native physics use JAX's persistent cache too
# (ktm/callback_cache.py; the tests turn it on).
if _os.environ.get('KTM_CACHE_CALLBACK_PROGRAMS') == '1':
  from ktm import callback_cache as _callback_cache
  _callback_cache.enable()
