"""Bad inputs to every script (experiments/: train_teachers, run_ktm, run_baseline, evaluate, render, report;
examples/gym_policy; the example suites through --benchmark): each gives ONE `error: ...` line on stderr naming the
problem, a non-zero exit, no traceback, within LIMIT_SECONDS, and leaves every file under the case's directory
(workdir, teacher directory, run) as it was. Oversized settings (issue 26) are refused by ktm/resources.py.

The cases run in ONE subprocess (this file run as a script: the driver below), which imports each script in turn
(deleting the flags the one before defined), and for each case re-parses its flags (absl's through
config_flags.parse_flags, as app.run would; argparse's in the example) and calls its main() with stdout/stderr
captured at the file descriptor level and an alarm as a time limit, so a case that starts training fails the test
instead of hanging. A few cases run the real command line (flag parsing, app.run) in their own subprocess.

A case that needs validation in the training loop's files can be marked with `Case(..., xfail='needs loop-side
validation (...)')` until that lands; none is marked now.
"""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASE_SECONDS = 60          # the alarm: a bad input must fail long before any training could finish
LIMIT_SECONDS = 10         # what a case may take (issue 26); a command-line case also starts Python and JAX
CLI_LIMIT_SECONDS = 20


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  script: str                 # T, K, B, E, V, R or G below
  args: Tuple[str, ...]       # may use {work} {teachers} {run} {root}; --workdir / --checkpoint added if absent
  expect: str                 # substring of the error line (case-insensitive)
  setup: str = ''             # see SETUPS
  cli: bool = False           # run the real command line in its own subprocess
  xfail: Optional[str] = None


T, K, B, E, V, R, G = 'train_teachers', 'run_ktm', 'run_baseline', 'evaluate', 'render', 'report', 'gym_policy'
EXAMPLES = (G,)              # examples/<name>.py (argparse), the others experiments/<name>.py (absl)
QUICK = ('--preset=quick', '--progress_bar=false', '--tensorboard=false')

CASES = [
    # TD3Config ranges (teachers and student share the class)
    Case('teachers_negative_actor_lr', T, QUICK + ('--actor_lr=-0.001',), 'actor_lr'),
    Case('teachers_zero_critic_lr', T, QUICK + ('--critic_lr=0',), 'critic_lr'),
    Case('teachers_gamma_above_1', T, QUICK + ('--gamma=1.5',), 'gamma'),
    Case('teachers_tau_0', T, QUICK + ('--tau=0',), 'tau'),
    Case('teachers_batch_size_0', T, QUICK + ('--batch_size=0',), 'batch_size'),
    Case('teachers_batch_size_negative', T, QUICK + ('--batch_size=-1',), 'batch_size'),
    Case('teachers_hidden_sizes_0', T, QUICK + ('--hidden_sizes=0',), 'hidden_sizes'),
    Case('teachers_hidden_sizes_not_int', T, QUICK + ('--hidden_sizes=64,abc',), 'hidden_sizes'),
    Case('teachers_policy_delay_0', T, QUICK + ('--policy_delay=0',), 'policy_delay'),
    Case('teachers_negative_noise', T, QUICK + ('--exploration_noise=-0.1',), 'exploration_noise'),
    Case('teachers_max_grad_norm_0', T, QUICK + ('--max_grad_norm=0',), 'max_grad_norm'),
    Case('teachers_nan_lr', T, QUICK + ('--actor_lr=nan',), 'actor_lr'),
    # schedule / loop / environment
    Case('teachers_steps_0', T, QUICK + ('--steps=0',), 'steps'),
    Case('teachers_eval_episodes_0', T, QUICK + ('--eval_episodes=0',), 'eval_episodes'),
    Case('teachers_unknown_benchmark', T, QUICK + ('--benchmark=no_such_suite',), 'no_such_suite'),
    Case('teachers_workdir_under_a_file', T, QUICK + ('--workdir={root}/afile/work',), 'not a directory',
         setup='afile'),
    Case('teachers_read_only_workdir', T, QUICK + ('--workdir={root}/ro/work',), 'read-only|permission|cannot write',
         setup='read_only'),
    Case('teachers_replay_too_big_for_memory', T, QUICK + ('--replay_capacity=100000000000',), 'memory'),
    # student (KTMConfig and the student's TD3Config), before any teacher is trained
    Case('ktm_negative_alpha', K, QUICK + ('--alpha=-1',), 'alpha'),
    Case('ktm_negative_beta', K, QUICK + ('--beta=-0.5',), 'beta'),
    Case('ktm_gamma_0', K, QUICK + ('--gamma=0',), 'gamma'),
    Case('ktm_tau_above_1', K, QUICK + ('--tau=1.5',), 'tau'),
    Case('ktm_batch_size_0', K, QUICK + ('--batch_size=0',), 'batch_size'),
    Case('ktm_negative_lr', K, QUICK + ('--critic_lr=-3e-4',), 'critic_lr'),
    Case('ktm_offline_epochs_negative', K, QUICK + ('--offline_epochs=-1',), 'offline_epochs'),
    Case('ktm_unknown_combine', K, QUICK + ('--combine=bogus',), 'combine'),
    Case('ktm_unknown_replay', K, QUICK + ('--replay=bogus',), 'replay'),
    Case('ktm_unknown_online_adam', K, QUICK + ('--online_adam=reset',), 'online_adam'),
    Case('ktm_checkpoint_every_0', K, QUICK + ('--checkpoint_every=0',), 'checkpoint_every'),
    Case('ktm_unknown_benchmark', K, QUICK + ('--benchmark=no_such_suite',), 'no_such_suite'),
    Case('teachers_gym_discrete_actions', T, QUICK + ('--benchmark=gym:CartPole-v1',), 'only Box spaces'),
    Case('ktm_gym_backend_mjx', K, QUICK + ('--benchmark=gym:Pendulum-v1', '--backend=mjx'),
         "backend 'mjx' is not available"),
    Case('ktm_teacher_dir_under_a_file', K, QUICK + ('--teacher_dir={root}/afile/teachers',), 'not a directory',
         setup='afile'),
    Case('ktm_workdir_holds_another_run', K, QUICK, 'another configuration', setup='other_run'),
    Case('ktm_teacher_dir_of_another_suite', K, QUICK + ('--teacher_dir={teachers}',),
         'halfcheetah|other (tasks|suite|benchmark)', setup='other_teachers'),
    Case('ktm_init_from_missing_run', K, QUICK + ('--init_from={root}/missing',), 'no run directory'),
    Case('ktm_init_from_corrupt_config', K, QUICK + ('--init_from={run}',), 'corrupt json', setup='corrupt_config'),
    Case('ktm_init_from_another_runs_settings', K, QUICK + ('--init_from={run}',),
         r'differs in more than .*benchmark: halfcheetah_group -> pendulum_group', setup='source_run'),
    # evaluate.py
    Case('evaluate_missing_run_dir', E, ('--checkpoint={root}/missing',), 'no run directory'),
    Case('evaluate_corrupt_config', E, ('--checkpoint={run}',), 'corrupt json', setup='corrupt_config'),
    Case('evaluate_run_dir_is_a_file', E, ('--checkpoint={root}/afile',), 'afile', setup='afile'),
    Case('evaluate_episodes_0', E, ('--checkpoint={run}', '--episodes=0'), 'episodes', setup='corrupt_config'),
    Case('evaluate_episodes_negative', E, ('--checkpoint={run}', '--episodes=-3'), 'episodes',
         setup='corrupt_config'),
    Case('evaluate_agreement_samples_0', E, ('--checkpoint={run}', '--agreement', '--samples=0'), 'samples',
         setup='corrupt_config'),
    # issue 26: seeds past int32, a user suite that raises, nothing to train, report.py's inputs
    Case('ktm_seed_beyond_int32', K, QUICK + ('--seed=3000000000',), r'seed = 3000000000 .*2147483647'),
    Case('teachers_seeds_reach_beyond_int32', T, QUICK + ('--seed=2147483647', '--seeds=2'),
         'reaches seed 2147483648'),
    Case('ktm_user_suite_raises_on_import', K, QUICK + ('--benchmark={root}/bad_suite.py:SUITE',),
         r'bad_suite.py, line 3\): ZeroDivisionError', setup='bad_suite'),
    Case('ktm_offline_and_online_epochs_0', K, QUICK + ('--offline_epochs=0', '--online_epochs=0'),
         'nothing would be trained'),
    Case('report_missing_run_dir', R, ('{root}/missing', '--out={root}/out'), 'missing has no config.json'),
    Case('report_no_run_dir', R, ('--out={root}/out',), 'at least one RUN_DIR'),
    # issue 26 item 3: settings whose memory cannot fit, refused by the resource model before anything is written
    Case('teachers_100000_seeds', T, QUICK + ('--seeds=100000',), r'out of memory: .*x 100000 sweep members.*fewer '
         'members'),
    Case('teachers_huge_num_envs', T, QUICK + ('--num_envs=100000000',), r'collects 1,000,000,000 transitions'),
    Case('teachers_huge_num_envs_and_replay', T, QUICK + ('--num_envs=100000000', '--replay_capacity=1000000000'),
         r'out of memory: .*(envs|collected|replay) .*--num_envs'),
    Case('teachers_huge_batch_size', T, QUICK + ('--batch_size=1000000000',), r'out of memory: .*activations .*'
         '--batch_size'),
    Case('teachers_huge_hidden_sizes', T, QUICK + ('--hidden_sizes=100000,100000',), r'out of memory: .*learner .*'
         '--hidden_sizes'),
    Case('teachers_huge_eval_episodes', T, QUICK + ('--eval_episodes=100000000',), r'out of memory: .*evaluation .*'
         '--eval_episodes'),
    Case('ktm_100000_seeds', K, QUICK + ('--seeds=100000',), r'out of memory: .*x 100000 sweep members'),
    Case('ktm_huge_batch_size', K, QUICK + ('--batch_size=1000000000',), r'out of memory: .*activations'),
    Case('ktm_huge_hidden_sizes', K, QUICK + ('--hidden_sizes=100000,100000',), r'out of memory: .*learner'),
    Case('ktm_huge_eval_episodes', K, QUICK + ('--eval_episodes=100000000',), r'out of memory: .*evaluation'),
    Case('ktm_huge_num_envs', K, QUICK + ('--num_envs=100000000',), r'collects .* but the replay holds 10,000'),
    Case('ktm_huge_online_capacity', K, QUICK + ('--online_capacity=100000000000',), r'out of memory: .*replay'),
    Case('baseline_sac_100000_seeds', B, QUICK + ('--method=sac_mt', '--seeds=100000'), r'out of memory: .*x 100000 '
         'sweep members'),
    Case('baseline_a2c_huge_num_envs', B, QUICK + ('--method=a2c_mt', '--num_envs=1000000000'),
         r'out of memory: .*(envs|activations)'),
    Case('baseline_sharednet_huge_batch_size', B, QUICK + ('--method=sharednet', '--batch_size=1000000000'),
         r'out of memory: .*activations'),
    Case('baseline_gsurgery_huge_hidden_sizes', B, QUICK + ('--method=gsurgery', '--hidden_sizes=100000,100000'),
         r'out of memory: .*learner'),
    Case('baseline_td3_mt_huge_eval_episodes', B, QUICK + ('--method=td3_mt', '--eval_episodes=100000000'),
         r'out of memory: .*evaluation'),
    # run_baseline.py: every method's configs, the method choice, the loop
    Case('baseline_no_method', B, QUICK, '--method is required'),
    Case('baseline_foreign_setting', B, QUICK + ('--method=sac_mt', '--n_steps=3'), 'has no setting --n_steps'),
    Case('baseline_two_foreign_settings', B, QUICK + ('--method=td3_mt', '--alpha_lr=0.1', '--n_steps=3'),
         r'^error: --method=td3_mt has no setting --alpha_lr, --n_steps \(see --helpfull\)$'),
    Case('baseline_a2c_without_teachers_in_the_default_dir', B, QUICK + ('--method=a2c_mt', '--train_teachers=false'),
         r'^error: no complete teacher set in .*train_teachers\.py'),
    Case('baseline_td3_mt_alpha', B, QUICK + ('--method=td3_mt', '--alpha=1'), 'alpha = 0'),
    Case('baseline_sac_negative_lr', B, QUICK + ('--method=sac_mt', '--actor_lr=-1'), 'actor_lr'),
    Case('baseline_sac_gamma_0', B, QUICK + ('--method=sac_mt', '--gamma=0'), 'gamma'),
    Case('baseline_sac_init_temperature_0', B, QUICK + ('--method=sac_mt', '--init_temperature=0'),
         'init_temperature'),
    Case('baseline_sharednet_batch_size_0', B, QUICK + ('--method=sharednet', '--batch_size=0'), 'batch_size'),
    Case('baseline_sharednet_updates_per_step_0', B, QUICK + ('--method=sharednet', '--updates_per_step=0'),
         'updates_per_step'),
    Case('baseline_gsurgery_tau_0', B, QUICK + ('--method=gsurgery', '--tau=0'), 'tau'),
    Case('baseline_gsurgery_replay_capacity_0', B, QUICK + ('--method=gsurgery', '--replay_capacity=0'),
         'replay_capacity'),
    Case('baseline_gsurgery_start_steps_negative', B, QUICK + ('--method=gsurgery', '--start_steps=-1'),
         'start_steps'),
    Case('baseline_a2c_n_steps_0', B, QUICK + ('--method=a2c_mt', '--n_steps=0'), 'n_steps'),
    Case('baseline_a2c_without_teachers', B, QUICK + ('--method=a2c_mt', '--train_teachers=false',
                                                      '--teacher_dir={teachers}'), 'teacher'),
    Case('baseline_eval_every_0', B, QUICK + ('--method=sac_mt', '--eval_every=0'), 'eval_every'),
    Case('baseline_num_envs_0', B, QUICK + ('--method=sac_mt', '--num_envs=0'), 'num_envs'),
    Case('baseline_seed_beyond_int32', B, QUICK + ('--method=sac_mt', '--seed=3000000000'), 'seed'),
    Case('baseline_unknown_benchmark', B, QUICK + ('--method=sac_mt', '--benchmark=no_such_suite'), 'no_such_suite'),
    Case('baseline_workdir_under_a_file', B, QUICK + ('--method=sac_mt', '--workdir={root}/afile/work'),
         'not a directory', setup='afile'),
    Case('baseline_workdir_holds_another_run', B, QUICK + ('--method=sac_mt',), 'another configuration',
         setup='other_run'),
    Case('baseline_bad_sweep', B, QUICK + ('--method=sac_mt', '--sweep=no_such_field=1,2'), 'no_such_field'),
    # more of run_ktm.py and train_teachers.py
    Case('ktm_eval_every_0', K, QUICK + ('--eval_every=0',), 'eval_every'),
    Case('ktm_num_envs_0', K, QUICK + ('--num_envs=0',), 'num_envs'),
    Case('ktm_online_capacity_0', K, QUICK + ('--online_capacity=0',), 'online_capacity'),
    Case('ktm_offline_chunk_0', K, QUICK + ('--offline_chunk=0',), 'offline_chunk'),
    Case('ktm_unknown_trust_rule', K, QUICK + ('--trust_rule=bogus',), 'trust_rule'),
    Case('ktm_trust_audit_above_1', K, QUICK + ('--trust_audit=2',), 'trust_audit'),
    Case('ktm_offline_patience_0', K, QUICK + ('--offline_patience=0',), 'offline_patience'),
    Case('ktm_offline_patience_without_online_stage', K, QUICK + ('--offline_patience=2', '--online_epochs=0'),
         'offline_patience'),
    Case('ktm_bad_corrupt_teachers', K, QUICK + ('--corrupt_teachers=NoSuchTask:random',), 'NoSuchTask'),
    Case('ktm_sweep_unknown_field', K, QUICK + ('--sweep=no_such_field=1,2',), 'no_such_field'),
    Case('ktm_sweep_no_values', K, QUICK + ('--sweep=alpha=',), 'alpha'),
    Case('ktm_sweep_structural_hidden_sizes', K, QUICK + ('--sweep=hidden_sizes=16,32',), 'hidden_sizes is structural'),
    Case('ktm_sweep_structural_online_epochs', K, QUICK + ('--sweep=online_epochs=1,2',),
         'online_epochs is structural'),
    Case('ktm_sweep_value_out_of_range', K, QUICK + ('--sweep=alpha=1,-1',), r'KTMConfig\.alpha = -1\.0 is not allowed'),
    Case('ktm_seeds_0', K, QUICK + ('--seeds=0',), 'seeds'),
    Case('ktm_teacher_dir_is_a_file', K, QUICK + ('--teacher_dir={root}/afile',), 'afile', setup='afile'),
    Case('teachers_chunk_steps_0', T, QUICK + ('--chunk_steps=0',), 'chunk_steps'),
    Case('teachers_updates_per_step_0', T, QUICK + ('--updates_per_step=0',), 'updates_per_step'),
    Case('teachers_start_steps_negative', T, QUICK + ('--start_steps=-5',), 'start_steps'),
    Case('teachers_target_noise_negative', T, QUICK + ('--target_noise=-1',), 'target_noise'),
    Case('teachers_seed_negative', T, QUICK + ('--seed=-1',), 'seed'),
    Case('teachers_workdir_holds_a_complete_set', T, QUICK, 'already holds a complete teacher set',
         setup='complete_teachers'),
    # the examples: user suites by module path, gym_policy.py
    Case('teachers_example_suite_missing_attribute', T, QUICK + ('--benchmark=examples.hopper_group:NOPE',), 'NOPE'),
    Case('teachers_example_suite_missing_module', T, QUICK + ('--benchmark=examples.no_such_module:SUITE',),
         'cannot import the module .*no_such_module'),
    Case('teachers_user_suite_unknown_geom', T, QUICK + ('--benchmark={root}/bad_geom.py:SUITE',),
         "Hopper has no geom 'torso'", setup='bad_geom_suite'),
    Case('teachers_user_suite_missing_file', T, QUICK + ('--benchmark={root}/missing.py:SUITE',), 'missing.py'),
    Case('gym_policy_missing_run', G, ('--run={root}/missing', '--task=InvertedPendulumLongPole'), 'missing'),
    Case('gym_policy_no_run_flag', G, ('--task=InvertedPendulumLongPole',), '--run'),
    Case('gym_policy_unknown_task', G, ('--run={run}', '--task=NoSuchTask'), 'NoSuchTask', setup='valid_run'),
    Case('gym_policy_episodes_0', G, ('--run={run}', '--task=InvertedPendulum', '--episodes=0'), 'episodes',
         setup='valid_run'),
    Case('gym_policy_corrupt_config', G, ('--run={run}', '--task=InvertedPendulumLongPole'), 'corrupt json',
         setup='corrupt_config'),
    # evaluate.py, more
    Case('evaluate_run_without_checkpoints', E, ('--checkpoint={run}',), 'checkpoint', setup='valid_run'),
    Case('evaluate_seed_beyond_int32', E, ('--checkpoint={run}', '--seed=3000000000'), 'seed', setup='valid_run'),
    Case('evaluate_seed_negative', E, ('--checkpoint={run}', '--seed=-1'), 'seed', setup='valid_run'),
    Case('evaluate_member_out_of_range', E, ('--checkpoint={run}', '--member=5'), 'member', setup='valid_run'),
    Case('evaluate_config_names_no_method', E, ('--checkpoint={run}',), 'no known method',
         setup='source_run_no_method'),
    Case('evaluate_empty_run_dir', E, ('--checkpoint={root}/empty',), 'config.json', setup='empty_dir'),
    Case('evaluate_agreement_seed_beyond_int32', E, ('--checkpoint={run}', '--agreement', '--seed=3000000000'),
         'seed', setup='valid_run'),
    # render.py (checks before MuJoCo's OpenGL is needed)
    Case('render_missing_run', V, ('--checkpoint={root}/missing',), 'no run directory'),
    Case('render_episode_length_0', V, ('--checkpoint={run}', '--episode_length=0'), 'episode_length',
         setup='valid_run'),
    Case('render_width_0', V, ('--checkpoint={run}', '--width=0'), 'width', setup='valid_run'),
    Case('render_height_negative', V, ('--checkpoint={run}', '--height=-2'), 'height', setup='valid_run'),
    Case('render_seed_beyond_int32', V, ('--checkpoint={run}', '--seed=3000000000'), 'seed', setup='valid_run'),
    Case('render_run_without_checkpoints', V, ('--checkpoint={run}', '--out={root}/videos'), 'checkpoint',
         setup='valid_run'),
    Case('render_corrupt_config', V, ('--checkpoint={run}',), 'corrupt json', setup='corrupt_config'),
    Case('render_out_under_a_file', V, ('--checkpoint={run}', '--out={root}/afile/videos'), 'afile|not a directory',
         setup='valid_run_and_afile'),
    # report.py, more
    Case('report_bootstrap_reps_0', R, ('{run}', '--out={root}/out', '--bootstrap_reps=0'), 'bootstrap_reps',
         setup='valid_run'),
    Case('report_corrupt_config', R, ('{run}', '--out={root}/out'), 'corrupt json', setup='corrupt_config'),
    Case('report_out_is_a_file', R, ('{run}', '--out={root}/afile'), 'afile', setup='valid_run_and_afile'),
    Case('report_run_is_a_file', R, ('{root}/afile', '--out={root}/out'), 'afile', setup='afile'),
    Case('report_config_names_no_method', R, ('{run}', '--out={root}/out'), 'method', setup='source_run_no_method'),
    Case('report_readme_missing', R, ('{run}', '--out={root}/out', '--readme={root}/missing.md'), 'missing.md',
         setup='valid_run'),
    Case('report_empty_label', R, ('{run}=', '--out={root}/out'), 'label', setup='valid_run'),
    Case('baseline_unknown_method', B, QUICK + ('--method=bogus',), 'method'),
    Case('cli_gym_policy_no_run', G, ('--task=InvertedPendulum',), '--run', cli=True),
    # the real command line: app.run, flag parsing
    Case('cli_teachers_gamma', T, QUICK + ('--gamma=2',), 'gamma', cli=True),
    Case('cli_ktm_alpha', K, QUICK + ('--alpha=-1',), 'alpha', cli=True),
    Case('cli_evaluate_missing', E, ('--checkpoint={root}/missing',), 'no run directory', cli=True),
    Case('cli_unparsable_int', T, QUICK + ('--batch_size=abc',), 'batch_size', cli=True),
    Case('cli_unknown_backend', E, ('--checkpoint={root}/missing', '--backend=gpu'), 'backend', cli=True),
    Case('cli_ktm_empty_workdir', K, QUICK + ('--workdir=',), 'workdir is empty', cli=True),
    Case('cli_teachers_empty_workdir', T, QUICK + ('--workdir=',), 'workdir is empty', cli=True),
    Case('cli_report_missing_run_dir', R, ('{root}/missing', '--out={root}/out'), 'missing has no config.json',
         cli=True),
]


# ---- case directories ----

def _setup_afile(root):
  with open(os.path.join(root, 'afile'), 'w') as f:
    f.write('not a directory\n')


def _setup_other_run(root):
  os.makedirs(os.path.join(root, 'work'))
  with open(os.path.join(root, 'work', 'config.json'), 'w') as f:
    json.dump({'method': 'ktm', 'benchmark': 'halfcheetah_group', 'seed': 12345}, f)


def _setup_other_teachers(root):
  """A complete-looking teacher set of another suite (halfcheetah_group) in {teachers}."""
  path = os.path.join(root, 'teachers', 'teachers')
  os.makedirs(os.path.join(path, 'HalfCheetah'))
  with open(os.path.join(path, 'set.json'), 'w') as f:
    json.dump({'tasks': ['HalfCheetah', 'HalfCheetahBigThigh']}, f)
  with open(os.path.join(path, 'HalfCheetah', 'teacher.json'), 'w') as f:
    json.dump({'task_name': 'HalfCheetah', 'suite_tasks': ['HalfCheetah', 'HalfCheetahBigThigh']}, f)


def _setup_bad_suite(root):
  """{root}/bad_suite.py: a user suite file whose import raises."""
  with open(os.path.join(root, 'bad_suite.py'), 'w') as f:
    f.write('from ktm.envs import custom\nSCALE = 2\nSUITE = custom.suite([]) if SCALE / 0 else None\n')


def _setup_bad_geom_suite(root):
  """{root}/bad_geom.py: a user suite file whose morphology edit names a geom the model lacks."""
  from tests.test_user_suites import BAD_DEFINITIONS, PRELUDE  # pylint: disable=import-outside-toplevel
  with open(os.path.join(root, 'bad_geom.py'), 'w') as f:
    f.write(PRELUDE + 'SUITE = custom.suite("bad", [' + BAD_DEFINITIONS['unknown geom'][0] + '])\n')


def _setup_corrupt_config(root):
  os.makedirs(os.path.join(root, 'run'))
  with open(os.path.join(root, 'run', 'config.json'), 'w') as f:
    f.write('{oops')


def _setup_source_run(root):
  """{run}: a KTM-DRL run directory of another benchmark (config.json only)."""
  os.makedirs(os.path.join(root, 'run'))
  with open(os.path.join(root, 'run', 'config.json'), 'w') as f:
    json.dump({'method': 'ktm', 'benchmark': 'halfcheetah_group', 'seed': 0}, f)


def _setup_valid_run(root):
  """{run}/config.json of a KTM-DRL 'tiny' run on pendulum_group, as student_training.run writes it (no checkpoints
  yet)."""
  from ktm import loop, presets  # pylint: disable=import-outside-toplevel
  from ktm.envs import make_suite  # pylint: disable=import-outside-toplevel
  from ktm.methods import TaskInfo  # pylint: disable=import-outside-toplevel
  from ktm.runs import run_config  # pylint: disable=import-outside-toplevel
  suite, preset = make_suite('pendulum_group'), presets.KTM['tiny']
  method = run_config.build_method('ktm', TaskInfo.from_suite(suite), dict(
      cfg=dict(preset['cfg'], obs_size=suite.obs_size, act_size=suite.act_size), ktm=preset['ktm']))
  os.makedirs(os.path.join(root, 'run'))
  with open(os.path.join(root, 'run', 'config.json'), 'w') as f:
    json.dump(run_config.run_config(method, 'pendulum_group', loop.LoopConfig(**preset['loop']), None), f)


def _setup_valid_run_and_afile(root):
  _setup_valid_run(root)
  _setup_afile(root)


def _setup_source_run_no_method(root):
  os.makedirs(os.path.join(root, 'run'))
  with open(os.path.join(root, 'run', 'config.json'), 'w') as f:
    json.dump({'benchmark': 'pendulum_group', 'seed': 0}, f)


def _setup_complete_teachers(root):
  """{work}/teachers/set.json: WORKDIR holds a complete teacher set."""
  os.makedirs(os.path.join(root, 'work', 'teachers'))
  with open(os.path.join(root, 'work', 'teachers', 'set.json'), 'w') as f:
    json.dump({'tasks': []}, f)


def _setup_read_only(root):
  """{root}/ro: a read-only file system (a tmpfs mounted ro) or, for non-root users, a mode 0555 directory."""
  path = os.path.join(root, 'ro')
  os.makedirs(path)
  if os.geteuid() != 0:
    os.chmod(path, 0o555)
    return
  proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', path], capture_output=True)
  if proc.returncode != 0:
    pytest.skip('root without mount permission: cannot make a read-only directory')


def _teardown(root):
  path = os.path.join(root, 'ro')
  if os.path.ismount(path):
    subprocess.run(['umount', path], check=False)
  elif os.path.isdir(path):
    os.chmod(path, 0o755)


SETUPS = {'': lambda root: None, 'afile': _setup_afile, 'other_run': _setup_other_run,
          'other_teachers': _setup_other_teachers, 'corrupt_config': _setup_corrupt_config,
          'read_only': _setup_read_only, 'source_run': _setup_source_run, 'bad_suite': _setup_bad_suite,
          'bad_geom_suite': _setup_bad_geom_suite,
          'valid_run': _setup_valid_run, 'valid_run_and_afile': _setup_valid_run_and_afile,
          'source_run_no_method': _setup_source_run_no_method, 'complete_teachers': _setup_complete_teachers,
          'empty_dir': lambda root: os.makedirs(os.path.join(root, 'empty'))}


def snapshot(root: str) -> Dict[str, tuple]:
  """{relative path: ('dir',) or (size, sha256, mtime_ns)} of everything under root."""
  out = {}
  for directory, dirs, files in os.walk(root):
    for d in dirs:
      out[os.path.relpath(os.path.join(directory, d), root)] = ('dir',)
    for name in files:
      path = os.path.join(directory, name)
      with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
      st = os.stat(path)
      out[os.path.relpath(path, root)] = (st.st_size, digest, st.st_mtime_ns)
  return out


def argv(case: Case, root: str) -> List[str]:
  paths = dict(root=root, work=os.path.join(root, 'work'), teachers=os.path.join(root, 'teachers'),
               run=os.path.join(root, 'run'))
  args = [a.format(**paths) for a in case.args]
  if case.script in (T, K, B) and not any(a.startswith('--workdir=') for a in args):
    args.append(f'--workdir={paths["work"]}')
  if case.script == K and not any(a.startswith('--teacher_dir=') for a in args):
    args.append(f'--teacher_dir={paths["teachers"]}')
  return args


# ---- running: one driver subprocess for the in-process cases ----

def _run_driver(jobs: List[Tuple[str, str, List[str]]]) -> Dict[str, dict]:
  """Every in-process case (script, case name, argv) in ONE driver subprocess."""
  with tempfile.TemporaryDirectory() as tmp:
    jobs_path, out_path = os.path.join(tmp, 'jobs.json'), os.path.join(tmp, 'out.json')
    with open(jobs_path, 'w') as f:
      json.dump(jobs, f)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), jobs_path, out_path], cwd=tmp,
                          capture_output=True, text=True, timeout=CASE_SECONDS * len(jobs) + 120,
                          env=dict(os.environ, JAX_PLATFORMS='cpu'))
    assert os.path.exists(out_path), f'the driver failed:\n{proc.stderr[-3000:]}'
    with open(out_path) as f:
      return json.load(f)


def _run_cli(script: str, args: List[str]) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    folder = 'examples' if script in EXAMPLES else 'experiments'
    start = time.monotonic()
    try:
      proc = subprocess.run([sys.executable, os.path.join(ROOT, folder, f'{script}.py')] + args, cwd=tmp,
                            capture_output=True, text=True, timeout=CASE_SECONDS + 60,
                            env=dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT))
    except subprocess.TimeoutExpired:     # it trains instead of refusing: this case fails, not the whole table
      return dict(rc=None, stderr=f'still running after {CASE_SECONDS + 60} s', stdout='',
                  seconds=time.monotonic() - start)
  return dict(rc=proc.returncode, stderr=proc.stderr, stdout=proc.stdout, seconds=time.monotonic() - start)


@pytest.fixture(scope='module')
def results(tmp_path_factory):
  """{case name: (result, snapshot before, snapshot after, root)} for every case, run once per module."""
  base = tmp_path_factory.mktemp('bad_inputs')
  prepared, skipped = {}, {}
  for case in CASES:
    root = str(base / case.name)
    os.makedirs(root)
    try:
      SETUPS[case.setup](root)
    except pytest.skip.Exception as e:
      skipped[case.name] = str(e)
      continue
    prepared[case.name] = (root, argv(case, root), snapshot(root))
  out = {}
  try:
    out.update(_run_driver([(c.script, c.name, prepared[c.name][1]) for c in CASES
                            if not c.cli and c.name in prepared]))
    for case in CASES:
      if case.cli and case.name in prepared:
        out[case.name] = _run_cli(case.script, prepared[case.name][1])
    return {name: (out[name], before, snapshot(root), root) for name, (root, _, before) in prepared.items()}, \
        skipped
  finally:
    for root, _, _ in prepared.values():
      _teardown(root)


def _param(case: Case):
  marks = [pytest.mark.xfail(strict=False, reason=case.xfail)] if case.xfail else []
  return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize('case', [_param(c) for c in CASES])
def test_bad_input_gives_one_error_line_and_changes_no_file(case, results):
  import re  # pylint: disable=import-outside-toplevel
  done, skipped = results
  if case.name in skipped:
    pytest.skip(skipped[case.name])
  result, before, after, root = done[case.name]
  stderr = result['stderr']
  assert result['rc'] not in (0, None), f'exit status {result["rc"]}; stderr:\n{stderr[-2000:]}'
  assert 'Traceback' not in stderr, stderr[-3000:]
  errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
  assert len(errors) == 1, f'want one error line, got {errors}; stderr:\n{stderr[-2000:]}'
  assert re.search(case.expect, errors[0], re.IGNORECASE), errors[0]
  changed = sorted(set(before) ^ set(after)) + sorted(k for k in before if k in after and before[k] != after[k])
  assert not changed, f'files created, removed or changed under {root}: {changed}'
  limit = CLI_LIMIT_SECONDS if case.cli else LIMIT_SECONDS
  assert result['seconds'] < limit, f'{result["seconds"]:.1f} s'


def test_every_case_is_distinct_and_there_are_enough():
  assert len({c.name for c in CASES}) == len(CASES) >= 100
  assert {c.script for c in CASES} == {T, K, B, E, V, R, G}
  assert len({(c.script, c.args, c.setup, c.cli) for c in CASES}) == len(CASES)


# ---- the pieces: range rules, the error wrapper, --help ----

def test_td3_config_ranges_name_field_value_and_allowed_range():
  import math  # pylint: disable=import-outside-toplevel
  from ktm import td3  # pylint: disable=import-outside-toplevel
  bad = {'actor_lr': (0.0, '> 0'), 'critic_lr': (math.inf, '> 0'), 'gamma': (1.0001, 'in (0, 1]'),
         'tau': (0.0, 'in (0, 1]'), 'batch_size': (0, 'an integer >= 1'), 'policy_delay': (-2, 'an integer >= 1'),
         'hidden_sizes': ((64, 0), 'a non-empty list of integers >= 1'), 'target_noise': (-1e-9, '>= 0'),
         'target_noise_clip': (float('nan'), '>= 0'), 'max_grad_norm': (-1.0, 'None (off) or > 0')}
  for name, (value, allowed) in bad.items():
    with pytest.raises(ValueError) as info:
      td3.TD3Config(obs_size=3, act_size=2, **{name: value})
    message = str(info.value)
    assert '\n' not in message and message.startswith(f'TD3Config.{name} = ') and message.endswith(allowed), message
  good = td3.TD3Config(obs_size=3, act_size=2, gamma=1.0, tau=1.0, batch_size=1, hidden_sizes=(1,),
                       exploration_noise=0.0, max_grad_norm=0.5)        # the edges of every range are allowed
  assert good.hidden_sizes == (1,)
  with pytest.raises(ValueError, match='TD3Config.hidden_sizes = \\(empty\\)'):
    td3.TD3Config(obs_size=3, act_size=2, hidden_sizes=())


def _exit_of(fn, capsys):
  """(exit status, stderr lines) of a user_errors_exit-wrapped fn."""
  from experiments import config_flags  # pylint: disable=import-outside-toplevel
  with pytest.raises(SystemExit) as info:
    config_flags.user_errors_exit(lambda argv: fn())([])
  return info.value.code, capsys.readouterr().err.strip().splitlines()


def _raise(e):
  raise e


def _wrapped_os_error():
  try:
    _raise(OSError(30, 'Read-only file system', '/ro/ckpt'))
  except OSError as e:
    raise RuntimeError('orbax: save failed\nwith a long\nmessage') from e


def test_user_errors_exit_one_line_each(capsys):
  import errno  # pylint: disable=import-outside-toplevel
  from ktm.checkpoint import CheckpointError  # pylint: disable=import-outside-toplevel
  cases = [
      (lambda: _raise(OSError(errno.ENOSPC, 'No space left on device', '/w/checkpoints')), 1,
       'error: No space left on device: /w/checkpoints (free disk space'),
      (lambda: _raise(PermissionError(errno.EACCES, 'Permission denied', '/w')), 1,
       'error: Permission denied: /w (choose a writable directory)'),
      (_wrapped_os_error, 1, 'error: Read-only file system: /ro/ckpt'),
      (lambda: _raise(MemoryError('replay needs 900 GiB')), 1, 'error: out of memory: replay needs 900 GiB'),
      (lambda: _raise(ValueError('TD3Config.tau = 0 is not allowed:\n must be in (0, 1]')), 1,
       'error: TD3Config.tau = 0 is not allowed: must be in (0, 1]'),
      (lambda: _raise(FileExistsError('/w/teachers exists')), 1, 'error: /w/teachers exists'),
      (lambda: _raise(CheckpointError('no usable checkpoint in /w')), 1, 'error: no usable checkpoint in /w'),
      (lambda: _raise(KeyboardInterrupt()), 130, 'error: interrupted (Ctrl-C)'),
      (lambda: _raise(type('Interrupted', (Exception,), {'exit_code': 143})('SIGTERM: checkpoint saved')), 143,
       'error: SIGTERM: checkpoint saved'),
  ]
  for fn, code, start in cases:
    got_code, lines = _exit_of(fn, capsys)
    assert got_code == code and len(lines) == 1 and lines[0].startswith(start), (got_code, lines)
  from experiments import config_flags  # pylint: disable=import-outside-toplevel
  with pytest.raises(RuntimeError, match='a bug'):        # a bug keeps its traceback
    config_flags.user_errors_exit(lambda argv: _raise(RuntimeError('a bug')))([])


def test_ktm_traceback_1_keeps_the_traceback_of_a_user_error(monkeypatch):
  from experiments import config_flags  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv('KTM_TRACEBACK', '1')
  with pytest.raises(ValueError, match='TD3Config.tau'):
    config_flags.user_errors_exit(lambda argv: _raise(ValueError('TD3Config.tau = 0 is not allowed')))([])


def test_gym_policy_help_and_a_bad_flag(capsys):
  from examples import gym_policy  # pylint: disable=import-outside-toplevel
  with pytest.raises(SystemExit) as info:
    gym_policy.main(['gym_policy', '--help'])
  assert info.value.code == 0 and '--run RUN' in capsys.readouterr().out
  with pytest.raises(SystemExit) as info:
    gym_policy.main(['gym_policy', '--run=x', '--task=y', '--episodes=abc'])
  assert info.value.code == 1
  assert capsys.readouterr().err.strip().splitlines() == [
      "error: argument --episodes: invalid int value: 'abc' (see --help)"]


def test_help_lists_the_scripts_flags_with_meaning_and_range_and_helpfull_the_rest():
  script = os.path.join(ROOT, 'experiments', 'train_teachers.py')
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT)
  short = subprocess.run([sys.executable, script, '--help'], capture_output=True, text=True, timeout=300, env=env)
  text = ' '.join(short.stdout.split())
  assert 'flags:' in short.stdout, short.stderr[-2000:]     # (absl's --help exits with status 1)
  for expected in ('--gamma: Discount factor of the TD target. Allowed: in (0, 1].',
                   '--actor_lr: Adam learning rate of the actor. Allowed: > 0.',
                   '--hidden_sizes: Units of each hidden layer', '--workdir:', '--preset: <'):
    assert expected in text, expected
  for internal in ('logtostderr', 'only_check_args', '--verbosity', '--jax_'):
    assert internal not in text, internal
  full = subprocess.run([sys.executable, script, '--helpfull'], capture_output=True, text=True, timeout=300, env=env)
  assert 'logtostderr' in full.stdout and '--gamma' in full.stdout


def test_configs_that_extend_td3s_show_the_meanings_of_its_fields():
  """--help reads each field's meaning from its comment, also in the dataclass a config extends (SharedNet's and
  G-Surgery's configs extend TD3's), and a config's own comment wins."""
  from ktm import td3, validate  # pylint: disable=import-outside-toplevel
  from ktm.methods import gsurgery, sharednet  # pylint: disable=import-outside-toplevel
  for cls in (td3.TD3Config, sharednet.SharedNetConfig, gsurgery.GSurgeryConfig):
    meanings = validate.field_meanings(cls)
    assert set(meanings) == {f.name for f in dataclasses.fields(cls)}, cls
    assert meanings['actor_lr'] == 'Adam learning rate of the actor'
  assert 'before PCGrad' in validate.field_meanings(gsurgery.GSurgeryConfig)['value_norm']


def test_render_needs_no_opengl_library_for_help_and_names_a_missing_one_in_one_line(tmp_path):
  """MUJOCO_GL naming a backend MuJoCo cannot load (here an unknown one; a missing libOSMesa fails at the same
  import): --help still works, and a render stops with one error line naming the fix."""
  script = os.path.join(ROOT, 'experiments', 'render.py')
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT, MUJOCO_GL='no_such_gl')
  short = subprocess.run([sys.executable, script, '--help'], capture_output=True, text=True, timeout=120, env=env)
  assert '--checkpoint:' in short.stdout and 'Traceback' not in short.stderr, short.stderr[-2000:]
  proc = subprocess.run([sys.executable, script, f'--checkpoint={tmp_path}'], capture_output=True, text=True,
                        timeout=120, env=env, cwd=tmp_path)
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines() == [l for l in proc.stderr.strip().splitlines() if l.startswith('error: ')]
  assert 'MUJOCO_GL=no_such_gl' in proc.stderr and 'apt-get install libosmesa6' in proc.stderr
  assert os.listdir(tmp_path) == []


# ---- the driver (this file run as a script) ----

class _CaseTimeout(BaseException):
  """Raised by the alarm; a BaseException so that no `except Exception` of the script swallows it."""


def _run_case(main: Callable[[List[str]], Any], args: List[str]) -> dict:
  import signal  # pylint: disable=import-outside-toplevel
  import traceback  # pylint: disable=import-outside-toplevel
  captured = tempfile.TemporaryFile(mode='w+')
  sys.stdout.flush()
  sys.stderr.flush()
  saved = os.dup(1), os.dup(2)
  os.dup2(captured.fileno(), 1)
  os.dup2(captured.fileno(), 2)

  def on_alarm(signum, frame):
    raise _CaseTimeout(f'case still running after {CASE_SECONDS} s')

  previous = signal.signal(signal.SIGALRM, on_alarm)
  signal.alarm(CASE_SECONDS)
  rc, start = 0, time.monotonic()
  try:
    main(args)
  except SystemExit as e:
    rc = e.code if isinstance(e.code, int) else 1
  except BaseException:  # pylint: disable=broad-except  (a traceback is a test failure, reported as such)
    traceback.print_exc()
    rc = 1
  finally:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    os.close(saved[0])
    os.close(saved[1])
  captured.seek(0)
  return dict(rc=rc, stderr=captured.read(), stdout='', seconds=time.monotonic() - start)


def _driver(jobs_path: str, out_path: str) -> None:
  """Runs every in-process case, a script's cases after each other: before a script is imported, the flags the one
  before defined are deleted (the scripts define flags of the same names); absl's own stay."""
  import importlib  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, ROOT)
  from absl import app, flags, logging  # pylint: disable=import-outside-toplevel,unused-import
  from experiments import config_flags  # pylint: disable=import-outside-toplevel
  shared = set(flags.FLAGS)        # absl's own flags (app's, logging's): imported first, defined once
  with open(jobs_path) as f:
    jobs = json.load(f)
  out = {}
  for script in dict.fromkeys(s for s, _, _ in jobs):
    for name in set(flags.FLAGS) - shared:
      delattr(flags.FLAGS, name)
    if script in EXAMPLES:           # argparse: main(argv)
      module = importlib.import_module(f'examples.{script}')
      main = lambda args, module=module, script=script: module.main([script] + args)
    else:                            # absl: flags parsed afresh for every case; report.py reads its runs from argv
      module = importlib.import_module(f'experiments.{script}')

      def main(args, module=module):
        flags.FLAGS.unparse_flags()
        module.main(config_flags.parse_flags([module.__name__] + args))   # a bad flag: one line, exit 2
    out.update({name: _run_case(main, args) for s, name, args in jobs if s == script})
  with open(out_path, 'w') as f:
    json.dump(out, f)


if __name__ == '__main__':
  _driver(*sys.argv[1:3])
