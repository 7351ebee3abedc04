"""The README's headline: per benchmark, one line per method and the IQM figure, rendered from a report's
summary.json and written between two marker comments, so the README cannot drift from the results.

  <!-- report:BENCHMARK -->
  ... generated ...
  <!-- /report:BENCHMARK -->
"""

import os
import re
from typing import Optional

from ktm.report import figures
from ktm.report.tables import MISSING, fmt_value, markdown

NAMES = {'halfcheetah_group': 'Benchmark A (8 HalfCheetah morphologies)',
         'benchmark_b': 'Benchmark B (Ant, Hopper, Walker2d, HalfCheetah, 2 pendulums)'}


def markers(benchmark: str):
  return f'<!-- report:{benchmark} -->', f'<!-- /report:{benchmark} -->'


def _iqm(triple) -> str:
  if not triple or triple[0] is None:
    return MISSING
  return f'{triple[0]:.2f} [{triple[1]:.2f}, {triple[2]:.2f}]'


def snippet(benchmark_json: dict, command: Optional[str], figure: Optional[str]) -> str:
  """The headline block (markers excluded) of one benchmark of a summary.json: a table with one line per method
  (seeds; mean ratio of the paper's max per task, of the best checkpoint and of the final evaluations; IQM of the
  random-normalized best-checkpoint scores [95% CI]), the orderings the seeds resolve on the best-checkpoint
  score, and the IQM figure at the relative path `figure`."""
  b = benchmark_json
  rows = []
  for label in b['labels']:
    a = b['aggregate'][label]
    rows.append([label, str(a['runs'])] + [fmt_value(a[f'{k}_ratio'], 3) for k in ('max', 'checkpoint', 'final')]
                + [_iqm(a['iqm_checkpoint'])])
  header = ['Method', 'seeds', 'mean ratio, max per task (paper)', 'mean ratio, best checkpoint',
            f'mean ratio, final (last {b["final_evals"]})', 'IQM normalized, best checkpoint [95% CI]']
  resolved = [c['verdict'] for c in b.get('comparisons', []) if c['kind'] == 'checkpoint'
              and c['verdict'] != 'unresolved']
  total = sum(1 for c in b.get('comparisons', []) if c['kind'] == 'checkpoint')
  lines = [f'**{NAMES.get(b["benchmark"], b["benchmark"])}**' + (f', from `{command}`' if command else '') + ':',
           '', markdown(header, rows), '',
           f'Orderings the seeds resolve (best checkpoint, normalized; {total - len(resolved)} of {total} pairs '
           'unresolved): ' + ('; '.join(resolved) or 'none') + '.']
  if figure:
    lines += ['', f'![{b["benchmark"]} IQM normalized score]({figure})']
  return '\n'.join(lines)


def replace_block(text: str, benchmark: str, block: str) -> str:
  """`text` with the lines between the benchmark's two markers replaced by `block`; ValueError without them."""
  start, end = markers(benchmark)
  pattern = re.compile(re.escape(start) + r'\n.*?' + re.escape(end), re.S)
  if not pattern.search(text):
    raise ValueError(f'no "{start}" ... "{end}" block to rewrite')
  return pattern.sub(lambda _: f'{start}\n{block}\n{end}', text, count=1)


def read_block(text: str, benchmark: str) -> Optional[str]:
  """The lines between the benchmark's two markers, or None."""
  start, end = markers(benchmark)
  found = re.search(re.escape(start) + r'\n(.*?)\n' + re.escape(end), text, re.S)
  return found.group(1) if found else None


def figure_path(readme: str, out: str, benchmark: str) -> str:
  """The Table 2 IQM figure's path relative to the README's directory."""
  return os.path.relpath(os.path.join(out, figures.file_name(benchmark, 'iqm_table2')),
                         os.path.dirname(os.path.abspath(readme)))
