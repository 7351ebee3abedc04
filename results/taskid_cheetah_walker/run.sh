#!/bin/bash
# TD3-MT on HalfCheetah + Walker2d with and without the task id (issue 28, item 3): 2 seeds each as one sweep,
# 30k epochs (5k uniform-random first), 256-256 in float32, evaluated every 2500 epochs. Usage: run.sh CORE.
CORE=$1
cd "$(dirname "$0")/../.."
R=${R:-/work/runs/taskid_cw}; S=results/taskid_cheetah_walker/suite.py:SUITE
echo 19 > /proc/self/autogroup 2>/dev/null || true
for job in "without|$S" "with|$S+task_id"; do
  IFS='|' read -r name bench <<< "$job"
  [ -f "$R/$name/results.json" ] && continue
  nice -n 19 taskset -c $CORE /work/venv/bin/python experiments/run_baseline.py --method=td3_mt --preset=cpu \
    --benchmark=$bench --compute_dtype=float32 --online_epochs=30000 --online_capacity=30000 \
    --online_start_steps=5000 --eval_every=2500 --checkpoint_every=2500 --seeds=2 --train_teachers=false \
    --workdir=$R/$name --progress_bar=false --tensorboard=false >> $R/$name.log 2>&1
done
