#!/bin/bash
# One evidence worker per core (issues 24 and 28): runs the jobs below in order, each once its teacher set is complete
# (TEACHERS empty: the job trains a teacher set itself), skipping finished ones (results.json) and ones another worker
# holds (a run directory has one writer: ktm/lock.py). Re-run after a restart: every run resumes from its checkpoint.
# Usage: worker.sh CORE. Each job: TEACHERS|NAME|PYTHONPATH|COMMAND.
# This is the queue that ran on the workplace VM from 2026-12-04 (one worker per core, started once the teacher set
# each needs existed: B's teachers on core 1, A's on core 0, both `train_teachers.py --preset=cpu [--benchmark=...]`
# under the same XLA_FLAGS, taskset and nice). R (run directories) and the metaworld copy MW are that machine's;
# results/<benchmark>_trust/README.md (once written) names which outputs came from it.
CORE=$1
cd /work/main
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
R=/work/runs; TA=$R/teachers_a_cpu; TB=$R/teachers_b_cpu; TM=$R/teachers_mt10_cpu; MW=$R/mw
BAD="--corrupt_teachers=HalfCheetahBigLeg=random,HalfCheetahSmallFoot=adversarial"
K=experiments/run_ktm.py; BL=experiments/run_baseline.py
JOBS=(
  "$TB|ktm_plus_vn_b||$K --preset=cpu_plus --benchmark=benchmark_b --value_norm=scale --seeds=2"
  "$TB|ktm_plus_b||$K --preset=cpu_plus --benchmark=benchmark_b --seeds=2"
  "$TA|ktm_plus_a||$K --preset=cpu_plus --seeds=3"
  "$TA|td3_mt_tn01_a||$BL --method=td3_mt --preset=cpu --target_noise=0.1 --seeds=3"
  "$TA|ktm_a||$K --preset=cpu --seeds=3"
  "$TA|ktm_wo_offline_a||$K --preset=cpu --offline_epochs=0 --online_epochs=100000 --online_capacity=100000 --online_start_steps=10000 --seeds=3"
  "$TA|ktm_plus_patience_a||$K --preset=cpu_plus --offline_patience=2 --seeds=3"
  "$TA|sac_mt_a||$BL --method=sac_mt --preset=cpu --seeds=3"
  "$TA|ktm_bad_a||$K --preset=cpu $BAD --seeds=2"
  "$TA|ktm_plus_bad_a||$K --preset=cpu_plus $BAD --seeds=2"
  "$TB|td3_mt_vn_b||$BL --method=td3_mt --benchmark=benchmark_b --preset=cpu --value_norm=scale --seeds=2"
  "$TB|sac_mt_vn_b||$BL --method=sac_mt --benchmark=benchmark_b --preset=cpu --value_norm=scale --seeds=2"
  "|teachers_mt10_cpu|$MW|experiments/train_teachers.py --preset=mt10_cpu --seeds=2"
  "$TM|ktm_mt10||$K --preset=mt10_cpu --seeds=2"
  "$TM|sac_mt_mt10||$BL --method=sac_mt --preset=mt10_cpu --seeds=2"
  "$TM|td3_mt_mt10||$BL --method=td3_mt --preset=mt10_cpu --seeds=2"
  "|teachers_b_taskid||experiments/train_teachers.py --preset=cpu --benchmark=benchmark_b+task_id"
  "$R/teachers_b_taskid|ktm_taskid_b||$K --preset=cpu --benchmark=benchmark_b+task_id --seeds=2"
)
for pass in $(seq 1 200); do
  left=0
  for job in "${JOBS[@]}"; do
    IFS='|' read -r teachers name path cmd <<< "$job"
    [ -f "$R/$name/results.json" ] && continue
    left=$((left + 1))
    extra=""
    if [ -n "$teachers" ]; then
      [ -f "$teachers/results.json" ] || continue
      extra="--teacher_dir=$teachers"
    fi
    echo "$(date -u +%FT%TZ) core $CORE: $name" >> $R/logs/worker_$CORE.log
    PYTHONPATH=$path nice -n 19 taskset -c $CORE /work/venv/bin/python $cmd $extra --workdir=$R/$name \
      --progress_bar=false --tensorboard=false >> $R/logs/$name.$CORE.log 2>&1
    echo "$(date -u +%FT%TZ) core $CORE: $name exit $?" >> $R/logs/worker_$CORE.log
  done
  [ $left -eq 0 ] && break
  sleep 120
done
echo "$(date -u +%FT%TZ) core $CORE: no jobs left" >> $R/logs/worker_$CORE.log
