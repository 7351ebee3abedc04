"""Actor and twin-critic networks (paper: 2 hidden layers of 400 ReLU units), with a choice of matmul precision.

`compute_dtype='float32'` is plain float32. `compute_dtype='bfloat16'` is mixed precision: parameters, activations
between layers, losses and gradients stay float32; every matmul (forward and both backward matmuls) takes bfloat16
inputs and accumulates in float32 (`preferred_element_type=float32`). Parameter names and shapes do not depend on
the dtype (`MLP_0/Dense_i/{kernel [in, out], bias [out]}`, as flax's nn.Dense), so checkpoints load either way.
"""

import functools
import inspect
from typing import Callable, Dict, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

COMPUTE_DTYPES = ('float32', 'bfloat16')


def compiled_init(static_argnames: Sequence[str]) -> Callable[[Callable], Callable]:
  """Decorator for a learner's `init(key, ..., cfg)`: one compiled program per config, where run eagerly (tests,
  scripts) a network's initialization compiles dozens of tiny programs, one per operation and shape. Inside a sweep
  a config holds traced hyperparameters (vmapped learning rates), which cannot be static and need no compile of
  their own: the function then runs as written, traced into the caller's program."""
  def decorate(init: Callable) -> Callable:
    compiled = jax.jit(init, static_argnames=static_argnames)
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(*args, **kwargs):
      arguments = signature.bind(*args, **kwargs).arguments
      try:
        hash(tuple(arguments[name] for name in static_argnames if name in arguments))
      except TypeError:      # a traced hyperparameter
        return init(*args, **kwargs)
      return compiled(*args, **kwargs)
    return wrapper
  return decorate


def check_compute_dtype(name: str) -> None:
  if name not in COMPUTE_DTYPES:
    raise ValueError(f'compute_dtype must be one of {COMPUTE_DTYPES}, got {name!r}')


def xla_compiler_options(compute_dtype: str, backend: Optional[str] = None) -> Dict[str, str]:
  """`jax.jit(..., compiler_options=...)` for a program whose networks use `compute_dtype`.

  On CPU a bfloat16 program needs XLA's YNNPACK dot kernels (AMX / AVX512-BF16), which `import ktm` switches off
  process-wide because float32 dots run faster on Eigen; without them XLA converts every bfloat16 dot back to
  float32 and mixed precision only adds conversions. Elsewhere (GPU) nothing is needed.
  """
  if compute_dtype == 'bfloat16' and (backend or jax.default_backend()) == 'cpu':
    return {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'}
  return {}


def _matmul(x: jnp.ndarray, w: jnp.ndarray, dtype) -> jnp.ndarray:
  """x [..., in] @ w [in, out] on `dtype` inputs with a float32 result."""
  return jax.lax.dot_general(x.astype(dtype), w.astype(dtype), (((x.ndim - 1,), (0,)), ((), ())),
                             preferred_element_type=jnp.float32)


@jax.custom_vjp
def bf16_matmul(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
  """x [..., in] @ w [in, out] (float32) with bfloat16 inputs and float32 accumulation -> float32 [..., out].

  The backward pass does the same: dx = g @ w^T and dw = x^T @ g on bfloat16 inputs, accumulated and returned in
  float32 (JAX's own transpose of a mixed dot would multiply float32 by bfloat16 and round dw to bfloat16).
  """
  return _matmul(x, w, jnp.bfloat16)


def _bf16_matmul_fwd(x, w):
  xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  return _matmul(xb, wb, jnp.bfloat16), (xb, wb)


def _bf16_matmul_bwd(residuals, g):
  xb, wb = residuals
  gb = g.astype(jnp.bfloat16)
  dx = jax.lax.dot_general(gb, wb, (((g.ndim - 1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
  # dw = x^T g as a plain [in, N] x [N, out] matmul on a row-major transpose: XLA:CPU's bfloat16 dot kernels
  # (YNNPACK) take only that form and otherwise run the dot in float32. A bare transpose would be folded back
  # into the dot's dimensions or become a column-major layout; flattening it behind a barrier forces the copy.
  x2 = xb.reshape(-1, xb.shape[-1])
  x_t = jax.lax.optimization_barrier(x2.T.reshape(-1)).reshape(x2.shape[1], x2.shape[0])
  dw = jax.lax.dot_general(x_t, gb.reshape(-1, g.shape[-1]), (((1,), (0,)), ((), ())),
                           preferred_element_type=jnp.float32)
  return dx, dw


bf16_matmul.defvjp(_bf16_matmul_fwd, _bf16_matmul_bwd)


class Dense(nn.Module):
  """y = x @ kernel + bias: [..., in] -> [..., features]; parameters as flax's nn.Dense (same names, shapes,
  initializers and hence the same values for the same key)."""
  features: int
  compute_dtype: str = 'float32'

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
    if self.compute_dtype == 'bfloat16':
      y = bf16_matmul(x, kernel)
    else:
      y = _matmul(x, kernel, jnp.float32)
    return y + bias


class MLP(nn.Module):
  """ReLU MLP: [..., in] -> [..., out_size]."""
  hidden_sizes: Sequence[int]
  out_size: int
  compute_dtype: str = 'float32'

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    for size in self.hidden_sizes:
      x = nn.relu(Dense(size, self.compute_dtype)(x))
    return Dense(self.out_size, self.compute_dtype)(x)


class Actor(nn.Module):
  """Deterministic policy: obs [..., obs_size] -> action [..., act_size] in [-1, 1]."""
  hidden_sizes: Sequence[int]
  act_size: int
  compute_dtype: str = 'float32'

  @nn.compact
  def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
    return jnp.tanh(MLP(self.hidden_sizes, self.act_size, self.compute_dtype)(obs))


class Critic(nn.Module):
  """One Q network: (obs [..., obs_size], action [..., act_size]) -> Q [...]."""
  hidden_sizes: Sequence[int]
  compute_dtype: str = 'float32'

  @nn.compact
  def __call__(self, obs: jnp.ndarray, action: jnp.ndarray) -> jnp.ndarray:
    return MLP(self.hidden_sizes, 1, self.compute_dtype)(jnp.concatenate([obs, action], axis=-1))[..., 0]


# The twin critics as ONE module: parameters carry a leading ensemble axis of 2, outputs are [2, ...].
TwinCritic = nn.vmap(
    Critic,
    variable_axes={'params': 0},
    split_rngs={'params': True},
    in_axes=None,
    out_axes=0,
    axis_size=2,
)


def q1_params(twin_params):
  """The first critic's parameters out of the twin critics' (drops the ensemble axis)."""
  return jax.tree.map(lambda p: p[0], twin_params)
