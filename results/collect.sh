#!/bin/bash
# Copies the small outputs of run directories (config.json, results.json, metrics.jsonl / .csv of every member; no
# checkpoints, teacher sets or TensorBoard files) into DEST/<run name>/, for committing under results/.
# Usage: results/collect.sh DEST RUN_DIR...
set -euo pipefail
dest=$1; shift
for run in "$@"; do
  name=$(basename "$run")
  (cd "$run" && find . \( -path ./checkpoints -o -path ./teachers -o -path '*/teachers' -o -path '*/tensorboard' \
       -o -path ./teachers_run \) -prune -o -type f \( -name config.json -o -name results.json -o -name 'metrics.jsonl' \
       -o -name 'metrics.csv' \) -print) | while read -r f; do
    mkdir -p "$dest/$name/$(dirname "$f")"
    cp "$run/$f" "$dest/$name/$f"
  done
  echo "$run -> $dest/$name ($(find "$dest/$name" -type f | wc -l) files)"
done
