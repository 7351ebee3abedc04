"""Time to score: a method trained with two presets side by side (by default 'quick', one env per task as the paper,
and 'fast', E envs per task) until the mean evaluation return reaches a target on EVERY task, or a wall-clock budget.

  python -m benchmarks.time_to_score --method=ideal --target=900 --budget_s=240      # pendulum_group teachers
  python -m benchmarks.time_to_score --method=sac_mt --presets=quick,fast --target=900 --budget_s=240

Per side: training wall seconds (the compiled chunks, their compiles included; evaluations not counted, since
their cost depends only on how often one looks), env steps per task, and gradient updates (each on one minibatch
per task; `ktm.methods.base.updates_after`) at the first evaluation that reached the target. Evaluations are every
`--eval_env_steps` env steps per task on both sides (eval_every = that / E epochs), 10 deterministic episodes per
task as in training runs; a side stops at its budget of training seconds or at its preset's last epoch. Writes
JSON and a markdown table (benchmarks/results/time_to_score_<method>.{json,md}); no run directory.
"""

import argparse
import subprocess
import time
from typing import Dict, Optional

import numpy as np

from benchmarks import common
from ktm import loop, presets, resources
from ktm import sweep as sweep_lib
from ktm.envs import make_suite
from ktm.methods import METHODS, TaskInfo
from ktm.methods.base import updates_after
from ktm.report.tables import markdown
from ktm.runs import run_config

METHODS_WITHOUT_TEACHERS = ('ideal', 'td3_mt', 'sac_mt', 'sharednet', 'gsurgery')


def _configs(name: str, preset: dict, suite) -> dict:
  return {field: (dict(kwargs, obs_size=suite.obs_size, act_size=suite.act_size)
                  if 'obs_size' in cls.__dataclass_fields__ else kwargs)
          for field, cls in sweep_lib.config_fields(METHODS[name]).items()
          for kwargs in [dict(preset.get(field, {}))]}


def train_until(method, suite, eval_suite, cfg: loop.LoopConfig, target: float, budget_s: float):
  """The host loop's chunks (`loop.next_chunk`) with an evaluation every `cfg.eval_every` epochs, until the
  per-task mean return is >= `target` on every task, the training wall (chunks only: compiles included, evaluations
  not) passes `budget_s`, or the stage ends. Returns (reached, evaluations: [{epoch, train_s, min/mean return}],
  first chunk seconds)."""
  sweep = sweep_lib.single(cfg.seed)
  state = loop.init_members(sweep, method, suite)
  state = loop.advance_stage(state.replace(learner=loop.begin_stage(state.learner, method, 0)), method)
  stages, seeds, train_s, first_chunk_s, evaluations = method.stages(), loop.seeds_array(sweep), 0.0, None, []
  while int(state.stage) < len(stages) and train_s < budget_s:
    stage, epoch = int(state.stage), int(state.epoch)
    n = loop.next_chunk(stages, stage, epoch, cfg)
    start = time.perf_counter()
    state, _ = loop.offpolicy_chunk(state, None, method, suite, stage, n, epoch >= stages[stage].random_epochs)
    common.block(state)
    train_s += time.perf_counter() - start
    first_chunk_s = train_s if first_chunk_s is None else first_chunk_s
    if (epoch + n) % cfg.eval_every == 0 or epoch + n == stages[stage].epochs:
      returns, _ = loop.evaluate_members(state.learner, seeds, np.int32(epoch + n), method, eval_suite)
      means = np.asarray(returns)[0].mean(axis=-1)   # [K]
      evaluations.append(dict(epoch=epoch + n, train_s=train_s, min_task_return=float(means.min()),
                              mean_return=float(means.mean())))
      if means.min() >= target:
        return True, evaluations, first_chunk_s
    state = loop.advance_stage(state, method)
  return False, evaluations, first_chunk_s


def run_side(name: str, preset_name: str, benchmark: Optional[str], target: float, budget_s: float,
             eval_env_steps: int, seed: int) -> Dict[str, object]:
  """One preset's run to the target (or the budget); its row of the table."""
  preset = presets.METHODS[name][preset_name]
  num_envs = preset['loop'].get('num_envs', 1)
  cfg = loop.LoopConfig(**dict(preset['loop'], eval_every=max(1, eval_env_steps // num_envs), eval_episodes=10,
                               checkpoint_every=10**9, seed=seed))
  benchmark = benchmark or preset['benchmark']
  suite = make_suite(benchmark, num_envs=num_envs)
  method = run_config.build_method(name, TaskInfo.from_suite(suite), _configs(name, preset, suite))
  resources.check_chunk_fits_replay(method, cfg)
  stage = method.stages()[-1]
  start = time.perf_counter()
  reached, evaluations, first_chunk_s = train_until(method, suite, make_suite(benchmark, num_envs=cfg.eval_episodes),
                                                    cfg, target, budget_s)
  last = evaluations[-1] if evaluations else dict(epoch=0, train_s=0.0)
  return dict(method=name, preset=preset_name, num_envs=num_envs, batch_size=method.batch_size,
              updates_per_step=stage.updates_per_epoch, reached=reached, wall_s=last['train_s'],
              env_steps=last['epoch'] * num_envs,
              updates=int(updates_after(max(last['epoch'] - stage.random_epochs, 0), stage.update_ratio)),
              first_chunk_s=first_chunk_s, total_wall_s=time.perf_counter() - start, evaluations=evaluations,
              best_min_task_return=max((e['min_task_return'] for e in evaluations), default=None))


def table(rows, target: float, budget_s: float) -> str:
  """The markdown table; the last row gives each quantity of the second side as a ratio to the first."""
  def cell(r, key):
    return f'{r[key]:,.0f}' if r['reached'] else f'> {r[key]:,.0f} (not reached)'
  header = ['method', 'preset', 'E', 'batch', 'updates / step', f'train s to {target:g}', 'env steps / task',
            'updates', 'first chunk s', 'wall s (with evals)', 'best min-task return']
  out = [[r['method'], r['preset'], r['num_envs'], r['batch_size'], f'{r["updates_per_step"]:g}', cell(r, 'wall_s'),
          cell(r, 'env_steps'), cell(r, 'updates'), f'{r["first_chunk_s"]:.1f}', f'{r["total_wall_s"]:.0f}',
          f'{r["best_min_task_return"]:.0f}' if r['best_min_task_return'] is not None else '']
         for r in rows]
  if len(rows) == 2 and all(r['reached'] for r in rows):
    a, b = rows
    out.append(['', f'{b["preset"]} / {a["preset"]}', '', '', '', f'{b["wall_s"] / a["wall_s"]:.2f}',
                f'{b["env_steps"] / a["env_steps"]:.2f}', f'{b["updates"] / max(a["updates"], 1):.2f}', '', '', ''])
  return markdown(header, out) + (f'\n\nBudget {budget_s:g} training seconds per side; target: mean return >= '
                                  f'{target:g} on every task (10 deterministic episodes each).\n')


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--method', default='ideal', choices=METHODS_WITHOUT_TEACHERS)
  parser.add_argument('--presets', default='quick,fast', help='comma-separated presets, run one after the other')
  parser.add_argument('--benchmark', default=None, help="default: the first preset's")
  parser.add_argument('--target', type=float, default=900.0, help='mean evaluation return to reach on every task')
  parser.add_argument('--budget_s', type=float, default=240.0, help='wall-clock budget per side')
  parser.add_argument('--eval_env_steps', type=int, default=1000, help='env steps per task between evaluations')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--out', default=None, help='default: benchmarks/results/time_to_score_<method>.json (+ .md)')
  args = parser.parse_args()
  rows = []
  for preset_name in args.presets.split(','):
    row = run_side(args.method, preset_name, args.benchmark, args.target, args.budget_s, args.eval_env_steps,
                   args.seed)
    print(f'{preset_name}: reached={row["reached"]} wall {row["wall_s"]:.1f} s, {row["env_steps"]:,} env steps, '
          f'{row["updates"]:,} updates', flush=True)
    rows.append(row)
  text = table(rows, args.target, args.budget_s)
  print(text)
  out = args.out or f'benchmarks/results/time_to_score_{args.method}.json'
  machine = dict(common.machine_info(), lscpu_model_name=lscpu_model_name())
  common.write_json(out, dict(machine=machine, args=vars(args), rows=rows,
                              presets={p: presets.METHODS[args.method][p] for p in args.presets.split(',')}))
  write_markdown(out[:-len('.json')] + '.md', vars(args), machine, rows)


def lscpu_model_name() -> str:
  """`lscpu`'s "Model name" ('' where lscpu is missing)."""
  try:
    text = subprocess.run(['lscpu'], capture_output=True, text=True, check=False).stdout
  except OSError:
    return ''
  return next((l.split(':', 1)[1].strip() for l in text.splitlines() if l.startswith('Model name')), '')


def write_markdown(path: str, args: dict, machine: dict, rows) -> None:
  """The run's command, machine and table as markdown (also from a saved JSON's fields)."""
  with open(path, 'w') as f:
    f.write(f'# Time to score: {args["method"]}\n\n`python -m benchmarks.time_to_score --method={args["method"]} '
            f'--presets={args["presets"]} --target={args["target"]:g} --budget_s={args["budget_s"]:g} '
            f'--eval_env_steps={args["eval_env_steps"]}`\n\nMachine: {machine["cpu"]} (lscpu model name), '
            f'{machine["cores"]} cores, {machine["backend"]}, jax {machine["jax"]}.\n\n'
            f'{table(rows, args["target"], args["budget_s"])}')


if __name__ == '__main__':
  main()
