"""Benchmark B's two tasks with the same observation and action sizes (17 / 6): the pair a student without a task
id could confuse (issue 28, item 3). `--benchmark=results/taskid_cheetah_walker/suite.py:SUITE[+task_id]`."""

from ktm.envs import custom

SUITE = custom.suite('cheetah_walker', ['HalfCheetah', 'Walker2d'])
