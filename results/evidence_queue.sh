#!/bin/bash
# One evidence worker per core (issues 24 and 28): runs the jobs below, each once its teacher set is complete
# (TEACHERS empty: the job trains a teacher set itself), skipping finished ones (results.json) and ones another worker
# holds (a run directory has one writer: ktm/lock.py). A worker takes the jobs marked with its core (or none) first,
# in order, then the other core's. Processes end with the session that started them: start both workers again
# each sitting (`results/evidence_queue.sh 1 &`, then `results/evidence_queue.sh 0 &`); every run resumes from its
# last checkpoint (at most one evaluation interval, 5k epochs, is lost) while the VM keeps /work/runs; on a fresh
# machine every job starts over, teacher sets too. Whether a teacher set retrains bit-identically depends on the CPU:
# Benchmark B's, retrained here on the Zen 3 VM (2026-12-05, no AVX-512), differs from results/benchmark_b_cpu/teachers
# from the first evaluation on (Ant 203 vs 184 at 5k steps) and ended elsewhere (best Hopper 1044 vs 606, Walker2d
# 530 vs 852), so a student trained on it is compared with runs on the same set, not with the committed B tables. R (run
# directories) and the metaworld copy MW are the workplace VM's; results/<benchmark>_trust/README.md names which
# outputs came from it.
# Benchmark A's KTM-DRL, w/o Offline and SAC-MT have 2 committed seeds (results/benchmark_a_cpu/, on the same
# teachers: teacher training is bit-reproducible); the *_seed2 jobs add their third seed as a single run.
# Usage: evidence_queue.sh CORE. Each job: CORE|TEACHERS|NAME|PYTHONPATH|COMMAND.
CORE=$1
cd "$(dirname "$0")/.."
# With the kernel's autogroups (a setsid/nohup'd worker gets its own group), nice works only within a group: lower
# the group's own weight too, or the worker takes half of its core from tests and CI.
echo 19 > /proc/self/autogroup 2>/dev/null || true
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
R=/work/runs; TA=$R/teachers_a_cpu; TB=$R/teachers_b_cpu; TM=$R/teachers_mt10_cpu; MW=$R/mw
BAD="--corrupt_teachers=HalfCheetahBigLeg=random,HalfCheetahSmallFoot=adversarial"
K=experiments/run_ktm.py; BL=experiments/run_baseline.py; T=experiments/train_teachers.py
JOBS=(
  "1||teachers_b_cpu||$T --preset=cpu --benchmark=benchmark_b"
  "0||td3_mt_taskid_b||$BL --method=td3_mt --benchmark=benchmark_b+task_id --preset=cpu --seeds=2 --train_teachers=false"
  "1|$TB|ktm_plus_vn_b||$K --preset=cpu_plus --benchmark=benchmark_b --value_norm=scale --seeds=2"
  "0|$TB|ktm_plus_b||$K --preset=cpu_plus --benchmark=benchmark_b --seeds=2"
  "1||teachers_mt10_cpu|$MW|$T --preset=mt10_cpu --seeds=2"
  "0||teachers_a_cpu||$T --preset=cpu"
  "0|$TA|ktm_plus_a||$K --preset=cpu_plus --seeds=3"
  "1|$TM|ktm_mt10||$K --preset=mt10_cpu --seeds=2"
  "0|$TA|td3_mt_tn01_a||$BL --method=td3_mt --preset=cpu --target_noise=0.1 --seeds=3"
  "1|$TM|sac_mt_mt10||$BL --method=sac_mt --preset=mt10_cpu --seeds=2"
  "0|$TA|ktm_a_seed2||$K --preset=cpu --seed=2"
  "1|$TM|td3_mt_mt10||$BL --method=td3_mt --preset=mt10_cpu --seeds=2"
  "0|$TA|ktm_wo_offline_a_seed2||$K --preset=cpu --offline_epochs=0 --online_epochs=100000 --online_capacity=100000 --online_start_steps=10000 --seed=2"
  "1|$TA|sac_mt_a_seed2||$BL --method=sac_mt --preset=cpu --seed=2"
  "0|$TA|ktm_bad_a||$K --preset=cpu $BAD --seeds=2"
  "1|$TA|ktm_plus_bad_a||$K --preset=cpu_plus $BAD --seeds=2"
  "0|$TA|ktm_plus_patience_a||$K --preset=cpu_plus --offline_patience=2 --seeds=3"
  "1|$TB|td3_mt_vn_b||$BL --method=td3_mt --benchmark=benchmark_b --preset=cpu --value_norm=scale --seeds=2"
  "1|$TB|sac_mt_vn_b||$BL --method=sac_mt --benchmark=benchmark_b --preset=cpu --value_norm=scale --seeds=2"
  "||teachers_b_taskid||$T --preset=cpu --benchmark=benchmark_b+task_id"
  "|$R/teachers_b_taskid|ktm_taskid_b||$K --preset=cpu --benchmark=benchmark_b+task_id --seeds=2"
)
ORDER=()
for job in "${JOBS[@]}"; do [ "${job%%|*}" != "$((1 - CORE))" ] && ORDER+=("$job"); done
for job in "${JOBS[@]}"; do [ "${job%%|*}" == "$((1 - CORE))" ] && ORDER+=("$job"); done
mkdir -p $R/logs
# A fresh machine (the VM is not always kept between sittings) has no metaworld copy: MT10's jobs need one.
[ -d $MW/metaworld ] || /work/venv/bin/pip install -q --no-deps --target $MW metaworld==3.1.1 >> $R/logs/mw.log 2>&1
for pass in $(seq 1 200); do
  left=0
  for job in "${ORDER[@]}"; do
    IFS='|' read -r _ teachers name path cmd <<< "$job"
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
