"""Encoders side by side: encode speed, query latency, index and model size, on real passages.

For each encoder in ``--encoders`` (built-in names such as ``minilm`` and ``mpnet``, registered
names or folders; a fine-tuned model runs at its base's speed) it measures, on the passages of
the built-in corpus plus TheoremQA's theorems (as the learning loop retrieves from them):

* document throughput (passages/s, batch 32, after a one-batch warm-up);
* single-query encoding latency p50/p95 on TheoremQA questions, one at a time;
* the exact (flat) faiss index: its size on disk after ``DenseIndex.save`` and its search p50;
* the model folder's weights on disk, the dimension, the mean word pieces per passage.

Encoders run one after another in the same process, alternating nothing else, so the ratios to
the first encoder (``*_vs_first``) compare like with like on this machine at this moment; the
absolute numbers move with the load. Results print as a table and go to ``--out`` as JSON.

Run (about 5 minutes on 2 cores for minilm,mpnet):

    python benchmarks/encoder_speed.py --encoders minilm,mpnet --home ~/.rader [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from rader.retriever import (
    Corpus,
    DenseIndex,
    Query,
    builtin_corpus,
    encoder_location,
    load_encoder,
    read_corpus,
)

SHARED = Path(os.environ.get("RADER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def folder_bytes(folder: Path, suffixes: tuple[str, ...] = ()) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*")
               if p.is_file() and (not suffixes or p.suffix in suffixes))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def measure(name: str, home: Path, corpus: Corpus, questions: list[str]) -> dict[str, Any]:
    import torch

    encoder = load_encoder(encoder_location(name, home), batch_size=32)
    texts = [t.passage for t in corpus]
    encoder.encode_documents(texts[:32], show_progress=False)  # warm-up
    start = time.perf_counter()
    index = DenseIndex.build(corpus, encoder, index_type="flat", show_progress=False)
    build_s = time.perf_counter() - start
    latencies = []
    for text in questions:
        start = time.perf_counter()
        encoder.encode_queries([Query(text)])
        latencies.append(time.perf_counter() - start)
    vectors = encoder.encode_queries([Query(text) for text in questions])
    searches = []
    for vector in vectors:
        start = time.perf_counter()
        index.search_vectors(vector[None, :], k=10)
        searches.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as scratch:
        index.save(Path(scratch))
        index_bytes = folder_bytes(Path(scratch))
    pieces = encoder.model.tokenizer(texts, truncation=True, max_length=encoder.model.max_seq_length)
    return {
        "encoder": name, "folder": str(encoder.folder), "dim": encoder.dim,
        "weights_mb": round(folder_bytes(encoder.folder, (".safetensors", ".bin")) / 2**20, 1),
        "max_seq_length": encoder.model.max_seq_length,
        "mean_wordpieces": round(statistics.fmean(len(ids) for ids in pieces["input_ids"]), 1),
        "passages": len(texts), "docs_per_s": round(len(texts) / build_s, 2),
        "query_p50_ms": round(percentile(latencies, 50), 1),
        "query_p95_ms": round(percentile(latencies, 95), 1),
        "index_mb": round(index_bytes / 2**20, 3), "search_p50_ms": round(percentile(searches, 50), 3),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoders", default="minilm,mpnet")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("RADER_HOME", "~/.rader")),
                        help="data directory (where catalog and registered encoders live)")
    parser.add_argument("--queries", type=int, default=100, help="TheoremQA questions timed one at a time")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/encoder_speed.json"))
    args = parser.parse_args(argv)
    theoremqa, _ = read_corpus(SHARED / "theorems" / "theoremqa_theorems.jsonl")
    corpus = Corpus.merge([builtin_corpus(), theoremqa])
    lines = (SHARED / "problems" / "theoremqa_dev.jsonl").read_text().splitlines()
    questions = [json.loads(line)["text"] for line in lines[: args.queries]]
    results = [measure(name, args.home.expanduser(), corpus, questions) for name in args.encoders.split(",")]
    first = results[0]
    for row in results:
        for key in ("docs_per_s", "query_p50_ms", "index_mb", "weights_mb", "search_p50_ms"):
            row[f"{key}_vs_first"] = round(row[key] / first[key], 2)
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.processor() or
              platform.machine(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
              "torch": version("torch"), "sentence_transformers": version("sentence-transformers"),
              "faiss": version("faiss-cpu"), "results": results}
    columns = ("encoder", "dim", "weights_mb", "docs_per_s", "query_p50_ms", "index_mb", "search_p50_ms",
               "docs_per_s_vs_first", "query_p50_ms_vs_first", "index_mb_vs_first")
    print(" | ".join(columns))
    for row in results:
        print(" | ".join(str(row[c]) for c in columns))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
