#!/bin/bash
# The whole learning loop as one recipe, every stage timed (RESULTS.md, "The full loop, timed"):
#   import the project's harvest -> harvest more for HARVEST_SECONDS (MATH train) and
#   TQA_HARVEST_SECONDS (TheoremQA, the half not held out; default 0) -> merge into the export ->
#   dataset (verified runs, RaDeR's generated queries, the TheoremQA held-out theorems kept out;
#   the LLM's replies cached in the project's benchmarks/generated_queries.jsonl, so only new
#   positives cost model time; commit it with the export) ->
#   train (MiniLM triplets, EPOCHS) -> eval (the three tables of the loop passes) ->
#   register -> the agent solves a problem with the new encoder.
# Run from the repository root, in a home of its own (the trained encoder is registered there):
#   RADER_HOME=/tmp/loop HARVEST_SECONDS=1800 benchmarks/full_loop.sh raderv5
# Each stage prints "stage NAME SECONDS s"; the table at the end collects them.
set -euo pipefail
: "${RADER_HOME:?set RADER_HOME}"
name=${1:?usage: full_loop.sh NAME}
shared=${RADER_SHARED_DATA:-../shared/data}
data=$RADER_HOME/data/$name model=$RADER_HOME/trained/$name
export RADER_CORPORA='["builtin","theoremqa"]' RADER_AGENT__RETRIEVE_EVERY=3 RADER_AGENT__MAX_RETRIEVALS=3
times=()
stage() {  # stage NAME COMMAND...: run it, record its wall time
  local label=$1 start=$SECONDS
  shift
  echo "== $label ($(date -u +%H:%M:%S))"
  "$@"
  times+=("$label $((SECONDS - start))")
  echo "stage $label $((SECONDS - start)) s"
}
harvest() {  # harvest SECONDS PROBLEMS OPTIONS...: a fixed wall time of harvest;
  # timeout's 124 is the planned end, not a failure
  local seconds=$1 problems=$2
  shift 2
  [ "$seconds" -gt 0 ] || return 0
  timeout --signal=INT "$seconds" rader --no-progress harvest --problems "$shared/problems/$problems" \
    --shuffle-seed 0 "$@" || [ $? -eq 124 ]
}
rader corpus list | grep -q theoremqa ||
  rader corpus add "$shared/theorems/theoremqa_theorems.jsonl" --name theoremqa
stage import rader trajectories import benchmarks/harvest.jsonl.gz
stage harvest harvest "${HARVEST_SECONDS:-1800}" math_train.jsonl --levels 1,2,3 --limit 2000 \
  --held-out-by id --held-out-fraction 0.1
# TheoremQA's questions of the half of its theorems that the evaluation never scores: the only
# harvest whose questions look like the held-out half's (0 skips it)
stage harvest_theoremqa harvest "${TQA_HARVEST_SECONDS:-0}" theoremqa_dev.jsonl --limit 400 \
  --held-out-by theorem --held-out-fraction 0.5
stage export rader trajectories export benchmarks/harvest.jsonl.gz --source harvest --merge
stage dataset rader --no-progress dataset build --out "$data" --dev-fraction 0.2 \
  --held-out-queries "$shared/problems/theoremqa_dev.jsonl" \
  --held-out-qrels "$shared/qrels/theoremqa_dev.qrels.tsv" --held-out-by theorem \
  --generate-with qwen2.5-coder-1.5b --query-cache benchmarks/generated_queries.jsonl
stage train rader --no-progress train --data "$data" --out "$model" --base minilm --negatives 1 \
  --epochs "${EPOCHS:-1}" --seed 0
stage eval env RADER_SHARED_DATA="$shared" benchmarks/loop4_eval.sh "$name" "dense,dense@$model,bm25,hybrid@$model" "$data"
stage register rader models register "$model" --name "$name"
stage solve env RADER_RETRIEVER__ENCODER="$name" rader --no-progress solve --retriever hybrid \
  "What is the sum of the roots of x^2 - 5x + 6 = 0?" --answer 5
echo "| stage | seconds |"
echo "|---|---:|"
for row in "${times[@]}"; do echo "| ${row% *} | ${row##* } |"; done
