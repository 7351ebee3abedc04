"""ktm: KTM-DRL multi-task knowledge transfer for continuous control in JAX/Flax."""

__version__ = "0.1.0"
