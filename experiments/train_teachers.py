r"""Train one TD3 teacher per task of a suite — all K in one compiled program — and save them with their replay data.

  # CPU-sized demo (pendulum_group, small networks):
  python experiments/train_teachers.py --preset=quick --workdir=/tmp/ktm/teachers
  # the paper's teachers (1M steps, 400-400) for Benchmark A or B:
  python experiments/train_teachers.py --benchmark=halfcheetah_group --workdir=runs/teachers_a

Every TD3Config and TrainConfig field is also a flag (e.g. --actor_lr, --hidden_sizes=256,256, --chunk_steps=1).
Writes WORKDIR/teachers/<Task>/ (see ktm.teachers), WORKDIR/metrics.{csv,jsonl}, WORKDIR/tensorboard/,
WORKDIR/config.json and WORKDIR/results.json.
"""

import dataclasses
import os

from absl import app, flags
import jax

from experiments import config_flags
from ktm import checkpoint, metrics, multi_td3, td3, teachers
from ktm.envs import make_suite

PRESETS = {
    # The paper's settings (TD3 defaults): 1M steps, 400-400, 25k random steps, evaluation every 5k steps.
    'paper': dict(benchmark='halfcheetah_group', td3={}, train={}),
    # Sized for a 2-core CPU: see WORKSPACE.md for its time and returns.
    'quick': dict(benchmark='pendulum_group',
                  td3=dict(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3),
                  train=dict(steps=15_000, start_steps=1_000, chunk_steps=10, eval_every=2_500,
                             replay_capacity=15_000, updates_per_step=3)),
}

flags.DEFINE_enum('preset', 'paper', sorted(PRESETS), 'Settings to start from; other flags override them.')
flags.DEFINE_string('benchmark', None, "Suite name (default: the preset's), e.g. halfcheetah_group, benchmark_b.")
flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
flags.DEFINE_enum('backend', 'auto', ['auto', 'mjx', 'native'], 'Physics backend (auto: native on CPU).')
flags.DEFINE_boolean('overwrite', False, 'Replace existing teacher directories in WORKDIR.')
flags.DEFINE_boolean('tensorboard', True, 'Also write TensorBoard event files.')
flags.DEFINE_boolean('progress_bar', True, 'Show a progress bar.')
config_flags.define_flags(td3.TD3Config, exclude=('obs_size', 'act_size'))
config_flags.define_flags(multi_td3.TrainConfig)
FLAGS = flags.FLAGS


def configs():
  """(benchmark, TD3Config kwargs without sizes, TrainConfig) from the preset and flags."""
  preset = PRESETS[FLAGS.preset]
  train_cfg = config_flags.build(multi_td3.TrainConfig, preset['train'])
  td3_kwargs = {**preset['td3'], **config_flags.overrides(td3.TD3Config, exclude=('obs_size', 'act_size'))}
  return FLAGS.benchmark or preset['benchmark'], td3_kwargs, train_cfg


def run(benchmark: str, td3_kwargs: dict, train_cfg: multi_td3.TrainConfig, workdir: str, backend: str = 'auto',
        overwrite: bool = False, tensorboard: bool = True, progress_bar: bool = True):
  """Trains and saves the teachers; returns the per-task results (also written to WORKDIR/results.json)."""
  suite = make_suite(benchmark, num_envs=train_cfg.num_envs, backend=backend)
  eval_suite = make_suite(benchmark, num_envs=train_cfg.eval_episodes, backend=backend)
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, **td3_kwargs)
  teachers.check_writable(workdir, suite.task_names, overwrite)
  checkpoint.write_json(os.path.join(workdir, 'config.json'), dict(
      benchmark=benchmark, backend=suite.backend_name, td3=dataclasses.asdict(cfg),
      train=dataclasses.asdict(train_cfg), jax=jax.__version__, device=str(jax.devices()[0])))
  print(f'{benchmark}: {suite.num_tasks} tasks {suite.task_names} on {suite.backend_name} physics, '
        f'{jax.devices()[0].platform}; {train_cfg.steps:,} steps each, networks {cfg.hidden_sizes}')
  writer = metrics.MetricsWriter(workdir, tensorboard=tensorboard)
  bar = metrics.Progress(train_cfg.steps, 'teachers', disable=not progress_bar)

  def progress(step, train_metrics, returns):
    bar.update(train_cfg.chunk_steps)
    if returns is not None:
      means = returns.mean(axis=1)
      row = metrics.per_task('eval_return', suite.task_names, means)
      for name in ('train_return', 'critic_loss', 'actor_loss', 'q1'):
        if name in train_metrics:
          row.update(metrics.per_task(name, suite.task_names, train_metrics[name]))
      writer.write(step, row)
      bar.show_returns(suite.task_names, means)

  state, history, wall = teachers.train(suite, eval_suite, cfg, train_cfg, progress)
  bar.close()
  writer.close()
  teachers.save(workdir, suite, state, cfg, train_cfg, history, overwrite=overwrite)
  results = teachers.summarize(suite.task_names, history, train_cfg.steps, wall)
  checkpoint.write_json(os.path.join(workdir, 'results.json'), dict(benchmark=benchmark, wall_seconds=wall,
                                                                    tasks=results))
  print(f'{"task":<32} {"final":>9} {"best":>9}')
  for r in results:
    print(f'{r["name"]:<32} {r["final_return"]:>9.1f} {r["best_return"]:>9.1f}')
  print(f'{wall:.0f} s; teachers in {os.path.join(workdir, "teachers")}')
  return results


def main(argv):
  del argv
  benchmark, td3_kwargs, train_cfg = configs()
  run(benchmark, td3_kwargs, train_cfg, FLAGS.workdir, FLAGS.backend, FLAGS.overwrite, FLAGS.tensorboard,
      FLAGS.progress_bar)


if __name__ == '__main__':
  app.run(main)
