"""Multi-task MuJoCo suites (gymnasium v5 tasks) on MJX or native MuJoCo, jittable."""

from ktm.envs.registry import SINGLE_TASKS, SUITES, make_suite
from ktm.envs.suite import Suite
from ktm.envs.types import EnvState, PhysicsState, Readout, StepOutput

__all__ = ['EnvState', 'PhysicsState', 'Readout', 'SINGLE_TASKS', 'SUITES', 'StepOutput',
           'Suite', 'make_suite']
