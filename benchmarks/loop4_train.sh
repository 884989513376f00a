#!/bin/bash
# Loop pass 4 (2026-11-29): same data, same seed; MiniLM triplets vs n-tuples, with and without
# the graded loss, and all-mpnet-base-v2 (triplets: its n-tuples take hours on 2 cores). Run from the repository root after
#   rader trajectories import benchmarks/harvest.jsonl.gz
#   RADER_CORPORA='["builtin","theoremqa"]' rader dataset build --out $RADER_HOME/data/verified ... (RESULTS.md)
# Usage: benchmarks/loop4_train.sh NAME...   (names below; each writes $RADER_HOME/trained/NAME)
set -euo pipefail
: "${RADER_HOME:?set RADER_HOME}"
DATA=${DATA:-$RADER_HOME/data/verified}
EPOCHS=${EPOCHS:-1}
for name in "$@"; do
  case $name in
    minilm-triplet) args=(--base minilm --negatives 1) ;;
    minilm-ntuple)  args=(--base minilm) ;;
    minilm-graded)  args=(--base minilm --graded margin_mse) ;;
    minilm-triplet-graded) args=(--base minilm --negatives 1 --graded margin_mse) ;;
    mpnet-triplet)  args=(--base mpnet --negatives 1) ;;
    mpnet-ntuple)   args=(--base mpnet) ;;
    mpnet-graded)   args=(--base mpnet --graded margin_mse) ;;
    *) echo "unknown run $name" >&2; exit 2 ;;
  esac
  echo "== $name: ${args[*]} epochs $EPOCHS ($(date -u +%H:%M:%S))"
  nice -n 15 rader --no-progress train --data "$DATA" --out "$RADER_HOME/trained/$name" --epochs "$EPOCHS" \
    --seed 0 "${args[@]}"
done
