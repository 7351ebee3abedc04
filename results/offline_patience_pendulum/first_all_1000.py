"""Per run directory and seed: the offline stage's realized end, the first evaluation with every task at 1000 (global
epoch, and env steps per task = global epoch - offline epochs), and the final mean over tasks of the last 5
evaluations: python results/offline_patience_pendulum/first_all_1000.py DIR..."""
import json
import os
import sys

import numpy as np

from ktm import metrics


def rows(path):
  return [json.loads(l) for l in open(path) if l.strip()]


print('| run | seed | offline epochs (realized) | first evaluation with every task at 1000: epoch / env steps per task | '
      'final, mean over tasks of the last 5 evaluations |')
print('|---|---|---|---|---|')
for run in sys.argv[1:]:
  config = json.load(open(os.path.join(run, 'config.json')))
  planned = config.get('ktm', {}).get('offline_epochs', 0) if config['method'] == 'ktm' else 0
  dirs = [run] + sorted(os.path.join(run, d) for d in os.listdir(run) if d.startswith('member_'))
  for seed, d in enumerate(dirs):
    offline = metrics.first_stage_end(d) or planned if planned else 0
    evals = [r for r in rows(os.path.join(d, 'metrics.jsonl')) if any(k.startswith('eval_return/') for k in r)]
    returns = [[v for k, v in r.items() if k.startswith('eval_return/')] for r in evals]
    first = next((r['step'] for r, x in zip(evals, returns) if min(x) >= 1000), None)
    reached = '—' if first is None else f'{first:,} / {max(first - offline, 0):,}'
    print(f'| {os.path.basename(run)} | {seed} | {offline:,} | {reached} | {np.mean(returns[-5:]):.1f} |')
