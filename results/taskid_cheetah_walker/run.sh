#!/bin/bash
# TD3-MT on HalfCheetah + Walker2d with and without the task id (issue 28, item 3): 2 seeds each as one sweep,
# EPOCHS epochs (30k by default; 5k uniform-random first), 256-256 in float32, evaluated every 2500 epochs.
# Usage: [EPOCHS=N] run.sh CORE [without|with]... (both, one after the other, by default).
CORE=$1; shift
JOBS=${@:-without with}
EPOCHS=${EPOCHS:-30000}
cd "$(dirname "$0")/../.."
R=${R:-/work/runs/taskid_cw}; mkdir -p $R; S=results/taskid_cheetah_walker/suite.py:SUITE
echo 19 > /proc/self/autogroup 2>/dev/null || true
for name in $JOBS; do
  case $name in without) bench=$S ;; with) bench=$S+task_id ;; *) echo "unknown job $name" >&2; exit 2 ;; esac
  [ -f "$R/$name/results.json" ] && continue
  nice -n 19 taskset -c $CORE /work/venv/bin/python experiments/run_baseline.py --method=td3_mt --preset=cpu \
    --benchmark=$bench --compute_dtype=float32 --online_epochs=$EPOCHS --online_capacity=$EPOCHS \
    --online_start_steps=5000 --eval_every=2500 --checkpoint_every=2500 --seeds=2 --train_teachers=false \
    --workdir=$R/$name --progress_bar=false --tensorboard=false >> $R/$name.log 2>&1
done
