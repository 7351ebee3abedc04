"""Mean evaluation return per task at the end of the offline stage (epoch 5000) and over the last 5 evaluations,
mean over the seeds of each run directory given: python results/trust_pendulum/offline_end.py DIR..."""
import json
import os
import sys

import numpy as np


def rows(path):
  return [json.loads(l) for l in open(path) if l.strip()]


def member_files(run):
  members = sorted(d for d in os.listdir(run) if d.startswith('member_'))
  return [os.path.join(run, 'metrics.jsonl')] + [os.path.join(run, m, 'metrics.jsonl') for m in members]


print('| run | tasks | return at the offline end (epoch 5000) | final: mean of the last 5 evaluations |')
print('|---|---|---|---|')
for run in sys.argv[1:]:
  offline, final = [], []
  with open(os.path.join(run, 'config.json')) as f:
    has_offline = json.load(f).get('ktm', {}).get('offline_epochs', 0) > 0
  for path in member_files(run):
    evals = [r for r in rows(path) if any(k.startswith('eval_return/') for k in r)]
    tasks = [k for k in evals[0] if k.startswith('eval_return/')]
    at = {r['step']: r for r in evals}
    offline.append([at[5000][t] for t in tasks] if 5000 in at else [np.nan] * len(tasks))
    final.append(np.mean([[r[t] for t in tasks] for r in evals[-5:]], axis=0))
  fmt = lambda a: ' / '.join(f'{v:.0f}' for v in np.mean(a, axis=0))
  print(f'| `{os.path.basename(run)}` | {len(tasks)} | {fmt(offline) if has_offline else "— (no offline stage)"} '
        f'| {fmt(final)} |')
