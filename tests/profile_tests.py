"""Where the test suite's time goes, from a run with KTM_TEST_PROFILE=DIR (tests/conftest.py writes one JSON line
per test: wall seconds, this process's JAX compile / trace / lowering seconds and compile count, the CPU seconds of
subprocesses the test waited for):

  KTM_TEST_PROFILE=/tmp/prof python -m pytest -q
  python tests/profile_tests.py /tmp/prof [--top 40]

Prints markdown tables: per test file, and the slowest tests. "other" is wall minus in-process compile, trace and
lowering: the test's own computation (training steps, env steps, checkpoint I/O) and waiting for subprocesses.
"""

import argparse
import collections
import glob
import json
import os

COLUMNS = ('wall_s', 'compile_s', 'compiles', 'trace_s', 'lower_s', 'subprocess_cpu_s')


def read(directory):
  rows = []
  for path in sorted(glob.glob(os.path.join(directory, '*.jsonl'))):
    with open(path) as f:
      rows += [json.loads(line) for line in f if line.strip()]
  if not rows:
    raise SystemExit(f'error: no profile rows in {directory} (run the tests with KTM_TEST_PROFILE={directory})')
  return rows


def other(row):
  return row['wall_s'] - row.get('compile_s', 0) - row.get('trace_s', 0) - row.get('lower_s', 0)


def table(title, rows, key):
  groups = collections.OrderedDict()
  for row in rows:
    total = groups.setdefault(key(row), collections.Counter())
    for c in COLUMNS:
      total[c] += row.get(c, 0)
    total['other_s'] += other(row)
    total['tests'] += 1
  lines = [f'| {title} | tests | wall s | compile s (n) | trace + lower s | other s | subprocess CPU s |',
           '|---|---|---|---|---|---|---|']
  for name, t in sorted(groups.items(), key=lambda kv: -kv[1]['wall_s']):
    lines.append(f"| {name} | {t['tests']} | {t['wall_s']:.1f} | {t['compile_s']:.1f} ({t['compiles']}) | "
                 f"{t['trace_s'] + t['lower_s']:.1f} | {t['other_s']:.1f} | {t['subprocess_cpu_s']:.1f} |")
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('directory')
  parser.add_argument('--top', type=int, default=40)
  args = parser.parse_args()
  rows = read(args.directory)
  total = {c: sum(r.get(c, 0) for r in rows) for c in COLUMNS}
  print(f"{len(rows)} tests, {total['wall_s']:.0f} s of test wall time over all workers: in-process compile "
        f"{total['compile_s']:.0f} s ({total['compiles']} compiles), trace + lowering "
        f"{total['trace_s'] + total['lower_s']:.0f} s, subprocess CPU {total['subprocess_cpu_s']:.0f} s\n")
  print('\n'.join(table('file', rows, lambda r: r['test'].split('::')[0])) + '\n')
  slowest = sorted(rows, key=lambda r: -r['wall_s'])[:args.top]
  print('\n'.join(table('test', slowest, lambda r: r['test'])))


if __name__ == '__main__':
  main()
