"""What teacher trust (ktm/trust.py) costs per epoch: KTM-DRL's compiled chunk with each trust setting, timed
interleaved in one run (ratios to the paper's method are what count on a shared machine).

  python -m benchmarks.trust_epoch                     # Benchmark A at the cpu preset's sizes (256-256, bfloat16)
  python -m benchmarks.trust_epoch --benchmark=pendulum_group --hidden=32,32 --capacity=1000 --epochs=10  # smoke

Offline: the audit gate adds a `lax.cond` per task (every teacher passes here). Online: the rules add forward passes
(qfilter: the teacher's actor and two Q1 of the student's critic; agreement: two action-gradients) on the actor's
epochs, every `policy_delay`-th.
"""

import argparse

import jax

from benchmarks import common
from benchmarks.ktm_epoch import Chunk
from ktm import replay, td3, teachers
from ktm.envs import make_suite
from ktm.methods import TaskInfo
from ktm.methods.ktm_drl import OFFLINE, ONLINE, KTMConfig, KTMMethod

# name -> KTMConfig trust fields ('paper': the paper's method, no trust)
SETTINGS = {'paper': {}, 'audit': dict(trust_audit=0.0), 'qfilter': dict(trust_rule='qfilter'),
            'agreement': dict(trust_rule='agreement'), 'both': dict(trust_rule='both'),
            'ktm_plus (audit + agreement)': dict(trust_rule='agreement', trust_audit=0.0)}


def run_benchmark(benchmark='halfcheetah_group', hidden=(256, 256), batch=256, capacity=100_000, epochs=100,
                  repeats=5, dtype='bfloat16', backend='auto'):
  """Returns the JSON payload: rows (stage, setting, epochs/s, ratio to the paper's)."""
  suite = make_suite(benchmark, backend=backend)
  tasks, k, key = TaskInfo.from_suite(suite), suite.num_tasks, jax.random.key(0)
  teacher_cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, hidden_sizes=tuple(hidden))
  stand_ins = teachers.Teachers(states=td3.init_many(jax.random.fold_in(key, 1), k, teacher_cfg),
                                buffer=common.fill(replay.init(k, capacity, suite.obs_size, suite.act_size),
                                                   jax.random.fold_in(key, 2)), cfg=teacher_cfg, meta=())
  cfg = td3.TD3Config(obs_size=suite.obs_size, act_size=suite.act_size, batch_size=batch, hidden_sizes=tuple(hidden),
                      compute_dtype=dtype)
  rows = []
  for stage_name, stage in (('offline', OFFLINE), ('online', ONLINE)):
    chunks = {}
    for name, fields in SETTINGS.items():
      if stage == OFFLINE and 'trust_rule' in fields:
        continue                                  # the online rules do not change the offline stage
      method = KTMMethod(tasks=tasks, cfg=cfg, teacher_cfg=teacher_cfg,
                         ktm=KTMConfig(online_capacity=capacity, chunk_steps=epochs, offline_chunk=epochs, **fields))
      chunks[name] = Chunk(method, suite, method.make_aux(stand_ins), stage, epochs, capacity, key)
    for chunk in chunks.values():
      for _ in range(2):                          # compile + warm up
        chunk.call()
      common.block(chunk.state)
    for _ in range(repeats):
      for chunk in chunks.values():
        chunk.time(2)
    paper = 1 / chunks['paper'].best
    rows += [dict(stage=stage_name, setting=name, epochs_per_s=1 / c.best, over_paper=(1 / c.best) / paper)
             for name, c in chunks.items()]
  return dict(benchmark=benchmark, num_tasks=k, hidden=list(hidden), batch=batch, dtype=dtype,
              physics=suite.backend_name, rows=rows)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--benchmark', default='halfcheetah_group')
  p.add_argument('--hidden', default='256,256')
  p.add_argument('--batch', type=int, default=256)
  p.add_argument('--capacity', type=int, default=100_000, help="rows per task in D_k and in D'_k")
  p.add_argument('--epochs', type=int, default=100, help='epochs per compiled chunk')
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--dtype', default='bfloat16')
  p.add_argument('--backend', default='auto')
  p.add_argument('--out', default='benchmarks/results/trust_epoch.json')
  args = p.parse_args()
  payload = run_benchmark(args.benchmark, tuple(int(h) for h in args.hidden.split(',')), args.batch, args.capacity,
                          args.epochs, args.repeats, args.dtype, args.backend)
  print(f'KTM-DRL epochs with teacher trust on {args.benchmark} (K={payload["num_tasks"]}, hidden {args.hidden}, '
        f'{args.dtype}, batch {args.batch} per task, {payload["physics"]} physics)')
  common.print_table(payload['rows'], ['stage', 'setting', 'epochs_per_s', 'over_paper'])
  common.write_json(args.out, dict(config=vars(args), machine=common.machine_info(), **payload))


if __name__ == '__main__':
  main()
