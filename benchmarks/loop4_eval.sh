#!/bin/bash
# The three tables of RESULTS.md's learning-loop passes, for one list of retrievers:
#   TheoremQA dev, held-out half by theorem (200 questions of theorems never trained on),
#   BRIGHT theoremqa_theorems, the held-out half (scored against TheoremQA's theorems),
#   own dev: the judged (--unverified) dataset's dev split, judge's labels, per query kind.
# The first retriever is the baseline of column p (paired randomization test).
# Usage: RADER_HOME=... benchmarks/loop4_eval.sh TAG RETRIEVERS [JUDGED_DATA]
set -euo pipefail
: "${RADER_HOME:?set RADER_HOME}"
tag=$1 list=$2 judged=${3:-$RADER_HOME/data/judged}
shared=${RADER_SHARED_DATA:-../shared/data}
run() { nice -n 15 rader --no-progress eval --retrievers "$list" "$@"; }
run --corpus "$shared/theorems/theoremqa_theorems.jsonl" --queries "$shared/problems/theoremqa_dev.jsonl" \
    --qrels "$shared/qrels/theoremqa_dev.qrels.tsv" --held-out-by theorem --out "benchmarks/loop4_tqa_heldout_$tag.json"
run --corpus "$shared/theorems/theoremqa_theorems.jsonl" \
    --queries "$shared/qrels/bright_theoremqa_theorems_dev.jsonl" --gold-field theoremqa_theorem_doc_id \
    --held-out-by theorem --out "benchmarks/loop4_bright_heldout_$tag.json"
run --corpus "$judged/corpus.jsonl" --queries "$judged/queries.jsonl" --qrels "$judged/qrels/dev.tsv" \
    --out "benchmarks/loop4_own_dev_$tag.json"
