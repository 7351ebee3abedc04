#!/bin/bash
# MT10 at a reduced CPU scale (issue 28's evidence, and issue 24's question on teachers that mostly fail): one teacher
# set of 20k steps per task (seed 0), then 2-seed students of 6k epochs (KTM-DRL: 1.5k offline + 4.5k online) on one
# core each, evaluated every 1000 epochs. Usage: run.sh CORE JOB...; JOB in teachers ktm ktm_plus td3_mt sac_mt.
# Run directories in $R (the workplace VM's); results/mt10_small/README.md has what was copied from them.
CORE=$1; shift
cd "$(dirname "$0")/../.."
R=${R:-/work/runs/mt10s}; export PYTHONPATH=${MW:-/work/runs/mw}
echo 19 > /proc/self/autogroup 2>/dev/null || true
COMMON="--eval_every=1000 --checkpoint_every=1000"
STUDENT="--teacher_dir=$R/teachers --seeds=2"
KTM_EPOCHS="--offline_epochs=1500 --online_epochs=4500 --online_capacity=4500"
OFF_EPOCHS="--online_epochs=6000 --online_capacity=6000 --online_start_steps=1000"
for job in "$@"; do
  [ -f "$R/$job/results.json" ] && continue
  case $job in
    teachers) cmd="experiments/train_teachers.py --preset=mt10_cpu --steps=20000 --start_steps=2000 --eval_every=2500 \
                   --checkpoint_every=2500" ;;
    ktm) cmd="experiments/run_ktm.py --preset=mt10_cpu $KTM_EPOCHS $STUDENT $COMMON" ;;
    ktm_plus) cmd="experiments/run_ktm.py --preset=mt10_cpu_plus $KTM_EPOCHS $STUDENT $COMMON" ;;
    td3_mt) cmd="experiments/run_baseline.py --method=td3_mt --preset=mt10_cpu $OFF_EPOCHS $STUDENT $COMMON" ;;
    sac_mt) cmd="experiments/run_baseline.py --method=sac_mt --preset=mt10_cpu --steps=6000 --start_steps=1000 \
                 --replay_capacity=6000 $STUDENT $COMMON" ;;
  esac
  nice -n 19 taskset -c $CORE /work/venv/bin/python $cmd --workdir=$R/$job --progress_bar=false --tensorboard=false \
    >> $R/$job.log 2>&1
done
