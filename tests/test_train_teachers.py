"""train_teachers.py end to end on the CPU-sized group, and the generated config flags."""

import json
import os

from absl import flags
import jax
import numpy as np
import pytest

from experiments import config_flags
from ktm import loop, presets, rollout, td3, teachers
from ktm.methods import OffPolicySchedule
from ktm.envs import make_suite
from ktm.runs import teacher_training


def test_tiny_run_beats_random_policy_and_writes_outputs(tmp_path):
  # 2000 steps (4000 until 2026-12-04): best returns 56.6 / 335.4 / 85.8 / 56.6 on this CPU, the bar <= 32
  schedule = dict(steps=2000, start_steps=500, chunk_steps=10, replay_capacity=5000, updates_per_step=3)
  workdir = str(tmp_path)
  results = teacher_training.train_teachers('pendulum_group',
                                            dict(hidden_sizes=(32, 32), actor_lr=1e-3, critic_lr=1e-3),
                                            schedule, loop.LoopConfig(eval_every=500, eval_episodes=5), workdir,
                                            progress_bar=False, tensorboard=True)
  eval_suite = make_suite('pendulum_group', num_envs=5)
  random_returns = np.asarray(rollout.evaluate(lambda p, obs, key: rollout.uniform_actions(key, eval_suite), None,
                                               jax.random.key(0), eval_suite)).mean(axis=1)
  for r, random_return in zip(results, random_returns):
    # Uniform-random actions keep a pole up for ~3-8 steps; the trained teacher must add at least 25 steps.
    assert r['best_return'] >= random_return + 25.0, (r, random_return)
    assert r['steps'] == 2000 and r['wall_seconds'] > 0
  saved = json.load(open(os.path.join(workdir, 'results.json')))
  assert [t['name'] for t in saved['tasks']] == list(eval_suite.task_names)
  lines = open(os.path.join(workdir, 'metrics.jsonl')).read().splitlines()
  assert [json.loads(l)['step'] for l in lines] == [500, 1000, 1500, 2000]
  assert os.listdir(os.path.join(workdir, 'tensorboard'))
  loaded = teachers.load(workdir, make_suite('pendulum_group'))
  assert loaded.cfg.hidden_sizes == (32, 32) and int(loaded.buffer.size[0]) == 2000


def test_every_config_field_has_a_flag_and_flags_override_presets():
  fv = flags.FlagValues()
  config_flags.define_flags(td3.TD3Config, exclude=('obs_size', 'act_size'), flag_values=fv)
  config_flags.define_flags(OffPolicySchedule, flag_values=fv)
  config_flags.define_flags(loop.LoopConfig, flag_values=fv)
  fv(['prog', '--actor_lr=0.01', '--hidden_sizes=7,5', '--steps=123', '--max_grad_norm=2.5'])
  td3_over = config_flags.overrides(td3.TD3Config, fv)
  assert td3_over == dict(actor_lr=0.01, hidden_sizes=(7, 5), max_grad_norm=2.5)
  train = config_flags.build(OffPolicySchedule, dict(steps=5, start_steps=3), fv)
  assert train.steps == 123 and train.start_steps == 3
  for cls, skip in ((td3.TD3Config, {'obs_size', 'act_size'}), (OffPolicySchedule, set()), (loop.LoopConfig, set())):
    for field in cls.__dataclass_fields__:
      assert field in fv or field in skip, field


def test_presets_build_valid_configs():
  for name, preset in presets.TEACHERS.items():
    OffPolicySchedule(**preset['schedule'])
    loop.LoopConfig(**preset['loop'])
    td3.TD3Config(obs_size=1, act_size=1, **preset['cfg'])
    assert preset['benchmark'] in ('halfcheetah_group', 'benchmark_b', 'pendulum_group', 'mt10+task_id'), name
  with pytest.raises(ValueError, match='chunk_steps'):
    OffPolicySchedule(chunk_steps=0)


def test_every_method_has_valid_cpu_and_quick_presets_on_one_teacher_preset():
  """Every method's 'quick' and 'cpu' presets (and the MT10 methods' 'mt10_cpu') build valid configs, and the methods
  of one preset share its suite and teacher preset (one teacher run serves the whole table)."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from ktm import sweep as sweep_lib  # pylint: disable=import-outside-toplevel
  from ktm.methods import METHODS  # pylint: disable=import-outside-toplevel
  for preset_name in ('quick', 'cpu', 'mt10_cpu'):
    suites = set()
    for name, by_preset in presets.METHODS.items():
      if preset_name not in by_preset:
        assert preset_name == 'mt10_cpu' and name in ('sharednet', 'gsurgery', 'a2c_mt'), name
        continue
      preset = by_preset[preset_name]
      suites.add((preset['benchmark'], preset.get('teachers', preset_name)))
      loop.LoopConfig(**preset['loop'])
      for field, cls in sweep_lib.config_fields(METHODS[name]).items():
        sizes = dict(obs_size=1, act_size=1) if 'obs_size' in {f.name for f in dataclasses.fields(cls)} else {}
        cls(**sizes, **preset.get(field, {}))
    assert len(suites) == 1, (preset_name, suites)
