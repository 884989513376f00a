"""Retrieval speed and memory: our BM25, dense (faiss) and hybrid layers versus raw libraries.

On synthetic math-like passages (deterministic from ``--seed``) at each of ``--sizes`` it
measures:

* BM25: index build throughput (passages/s) of ``BM25Index.build`` and of raw bm25s
  (``bm25s.tokenize`` + ``BM25().index``), and single-query latency p50/p95 (k=10) of
  ``BM25Index.search`` versus raw ``bm25s.tokenize`` + ``BM25.retrieve``, with the
  ours/raw ratio at p50 against a 10 % overhead target. The two use different tokenizers
  (ours keeps LaTeX), so their posting lists differ a little.
* Dense: real encoder (``load_encoder("minilm")``) document throughput on ``--encoder-docs``
  passages and single-query encoding latency. Encoding the large corpora on a CPU would take
  hours, so the faiss indexes hold seeded random unit vectors of the encoder's dimension:
  build time of ``make_faiss_index`` (``flat`` and ``hnsw``) and latency of
  ``DenseIndex.search_vectors`` versus raw ``faiss.Index.search`` on the same index, plus the
  estimated end-to-end dense query latency (query encoding p50 + search p50). An hnsw task
  that runs past ``--hnsw-timeout`` seconds is skipped, and the report says so.
* Hybrid: what ``HybridIndex.search`` does after encoding the query (BM25 and dense search
  at depth 100 each, then ``fuse``) with pre-encoded query vectors; encoding comes on top.
* Memory: each index is built in a fresh process; the peak RSS growth during the build is
  read from ``VmHWM`` in ``/proc/self/status`` (reset just before the build), and the size
  on disk from ``.save()`` into a scratch folder.

Ours and raw are timed on alternating queries, one query at a time, after a warm-up query,
with ``time.perf_counter``. Results go to stdout as tables and to ``--out`` as JSON.

Run (the defaults take about ten minutes on 2 CPU cores):

    python benchmarks/retrieval_speed.py [--sizes 1000,20000,200000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np
import Stemmer

from rader.retriever import (
    BM25Index,
    Corpus,
    DenseIndex,
    HybridIndex,
    Query,
    Theorem,
    fuse,
    load_encoder,
    make_faiss_index,
)

K = 10
OVERHEAD_TARGET = 1.10
INDEX_TYPES = ("flat", "hnsw")
PACKAGES = ("rader", "bm25s", "PyStemmer", "faiss-cpu", "numpy", "numba", "torch",
            "sentence-transformers", "transformers")
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "retrieval_speed.json"

# -- synthetic data ------------------------------------------------------------------------
STOPWORDS = [
    "the", "of", "a", "is", "and", "for", "let", "be", "that", "if", "then", "with", "to", "in",
    "we", "by",
]
MATH_WORDS = [
    "integer", "prime", "divisor", "polynomial", "root", "coefficient", "triangle", "angle",
    "circle", "radius", "chord", "tangent", "sequence", "series", "sum", "product", "limit",
    "derivative", "integral", "function", "matrix", "determinant", "vector", "eigenvalue",
    "probability", "expected", "value", "variance", "permutation", "combination", "factorial",
    "binomial", "modulo", "residue", "congruence", "remainder", "quotient", "fraction",
    "rational", "irrational", "real", "complex", "inequality", "equation", "identity",
    "theorem", "lemma", "proof", "induction", "parity", "digit", "base", "logarithm",
    "exponent", "geometric", "arithmetic", "mean", "median", "area", "perimeter", "volume",
    "cube", "square", "hypotenuse", "parallel", "perpendicular", "similar", "congruent",
    "inscribed", "polygon", "vertex", "edge", "graph", "tree", "path", "cycle", "coloring",
    "counting", "pigeonhole", "bijection", "recurrence", "convergent", "divergent", "bounded",
    "monotone", "continuous", "differentiable", "maximum", "minimum", "optimization",
    "symmetric", "periodic", "trigonometric", "sine", "cosine", "secant", "reciprocal",
    "conjugate", "modulus", "argument", "unit", "lattice",
]
LATEX = [
    r"$\binom{n}{k}$", "$x^{n}$", r"$\sin x$", r"$\cos \theta$", r"$a \equiv b \pmod{m}$",
    "mod", r"$\frac{a}{b}$", r"$\sum_{i=1}^{n} i^2$", r"$\int_0^1 f(x)\,dx$", r"$\sqrt{x}$",
    r"$\gcd(a, b)$", r"$\log_b x$", r"$a^{p-1} \equiv 1$", r"$e^{i\pi}$", r"$\det A$",
    r"$\lim_{n \to \infty}$", r"$\lfloor x \rfloor$", r"$\phi(n)$", r"$\tan^2 x$",
    r"$\alpha + \beta$", r"$x \le y$", r"$\prod_{k} p_k$", r"$\mathbb{Z}$", r"$|z|$",
]
SYLLABLES = [
    "ka", "lo", "mi", "nu", "re", "si", "ta", "vo", "ze", "qui", "bran", "dor", "fel", "gim",
    "hax", "jun", "pel", "tor", "wix", "yam",
]
TAIL_WORDS = 5000  # rare pseudo-words give the vocabulary a long, Zipf-like tail


@cache
def _token_pool(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens ranked by frequency, and Zipf-Mandelbrot sampling weights for them."""
    rng = np.random.default_rng(seed)
    tail: set[str] = set()
    while len(tail) < TAIL_WORDS:
        tail.add("".join(rng.choice(SYLLABLES, size=rng.integers(2, 5))))
    pool = np.array([*STOPWORDS, *LATEX, *MATH_WORDS, *sorted(tail)], dtype=object)
    weights = 1.0 / (np.arange(len(pool)) + 2.7)
    return pool, weights / weights.sum()


def _token_strings(count: int, low: int, high: int, seed: int, stream: int) -> list[str]:
    """``count`` strings of ``low`` to ``high`` tokens drawn from the pool of ``seed``."""
    pool, weights = _token_pool(seed)
    rng = np.random.default_rng([seed, stream])
    lengths = rng.integers(low, high + 1, size=count)
    tokens = pool[rng.choice(len(pool), size=int(lengths.sum()), p=weights)]
    return [" ".join(part) for part in np.split(tokens, np.cumsum(lengths)[:-1])]


def synthetic_ids(size: int) -> list[str]:
    return [f"syn-{i:07d}" for i in range(size)]


def synthetic_corpus(size: int, seed: int) -> Corpus:
    titles = _token_strings(size, 2, 4, seed, stream=1)
    texts = _token_strings(size, 25, 60, seed, stream=2)
    theorems = (Theorem(doc_id, title, text + ".", source="synthetic")
                for doc_id, title, text in zip(synthetic_ids(size), titles, texts, strict=True))
    return Corpus(theorems, name=f"synthetic-{size}")


def synthetic_queries(count: int, seed: int) -> list[str]:
    return _token_strings(count, 4, 12, seed, stream=3)


def unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


# -- measuring -----------------------------------------------------------------------------
def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> float:
    """Reset this process's peak RSS (VmHWM) to its current RSS; returns that RSS in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def build_measured(build: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run ``build``; return its result, wall time and the peak RSS growth while it ran."""
    before = reset_peak_rss()
    start = time.perf_counter()
    result = build()
    seconds = time.perf_counter() - start
    peak = _status_mib("VmHWM")
    return result, {"build_s": seconds, "peak_rss_growth_mib": peak - before,
                    "process_peak_rss_mib": peak}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "n": len(ms)}


def time_each(fn: Callable[[Any], Any], inputs: Sequence[Any]) -> list[float]:
    """Seconds per call of ``fn`` on each input, after one warm-up call."""
    fn(inputs[0])
    times = []
    for item in inputs:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return times


def compare(ours: Callable[[Any], Any], raw: Callable[[Any], Any],
            inputs: Sequence[Any]) -> dict[str, Any]:
    """Latency of ours and raw on the same inputs, alternating which goes first."""
    ours(inputs[0])
    raw(inputs[0])
    times: dict[str, list[float]] = {"ours": [], "raw": []}
    for i, item in enumerate(inputs):
        order = (("ours", ours), ("raw", raw)) if i % 2 == 0 else (("raw", raw), ("ours", ours))
        for name, fn in order:
            start = time.perf_counter()
            fn(item)
            times[name].append(time.perf_counter() - start)
    stats = {name: latency_stats(values) for name, values in times.items()}
    ratio = stats["ours"]["p50_ms"] / stats["raw"]["p50_ms"]
    return {**stats, "ratio_p50": ratio, "meets_target": ratio <= OVERHEAD_TARGET}


# -- tasks (each runs in a fresh process) ---------------------------------------------------
def encoder_task(n_docs: int, n_queries: int, seed: int) -> dict[str, Any]:
    import torch

    encoder = load_encoder("minilm", batch_size=32)
    texts = [t.passage for t in synthetic_corpus(n_docs, seed)]
    encoder.encode_documents(texts[: encoder.batch_size], show_progress=False)  # warm-up
    start = time.perf_counter()
    encoder.encode_documents(texts, show_progress=False)
    seconds = time.perf_counter() - start
    queries = [[Query(text)] for text in synthetic_queries(n_queries, seed)]
    max_length = encoder.model.max_seq_length
    pieces = encoder.model.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return {
        "encoder": encoder.name, "dim": encoder.dim, "batch_size": encoder.batch_size,
        "documents": n_docs, "docs_per_s": n_docs / seconds, "max_seq_length": max_length,
        "mean_wordpieces": float(np.mean([len(ids) for ids in pieces])),
        "torch_threads": torch.get_num_threads(),
        "query_encoding": latency_stats(time_each(encoder.encode_queries, queries)),
    }


def bm25_task(size: int, seed: int, n_queries: int, folder: Path) -> dict[str, Any]:
    corpus = synthetic_corpus(size, seed)
    index, build = build_measured(lambda: BM25Index.build(corpus, show_progress=False))
    index.save(folder)
    stemmer = Stemmer.Stemmer("english")

    def tokenize(texts: str | list[str]) -> bm25s.tokenization.Tokenized:
        return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)

    def build_raw() -> bm25s.BM25:
        model = bm25s.BM25()
        model.index(tokenize([t.passage for t in corpus]), show_progress=False)
        return model

    raw, raw_build = build_measured(build_raw)
    queries = synthetic_queries(n_queries, seed)
    latency = compare(lambda q: index.search(Query(q), k=K),
                      lambda q: raw.retrieve(tokenize(q), k=K, show_progress=False), queries)
    return {"build": {**build, "docs_per_s": size / build["build_s"]},
            "raw_build": {**raw_build, "docs_per_s": size / raw_build["build_s"]},
            "disk_bytes": folder_bytes(folder), "vocabulary": len(index.model.vocab_dict),
            **latency}


def dense_task(size: int, index_type: str, dim: int, seed: int, n_queries: int,
               folder: Path) -> dict[str, Any]:
    """Builds before loading the encoder, so the build's RSS growth is not hidden by
    memory that the encoder's loading freed."""
    vectors = unit_vectors(size, dim, seed)
    faiss_index, build = build_measured(lambda: make_faiss_index(vectors, index_type))
    index = DenseIndex(faiss_index, synthetic_ids(size), load_encoder("minilm"))
    folder.mkdir(parents=True)
    index.save(folder)
    queries = list(unit_vectors(n_queries, dim, seed + 1)[:, None, :])  # (1, dim) each
    latency = compare(lambda v: index.search_vectors(v, k=K), lambda v: faiss_index.search(v, K),
                      queries)
    return {"build": build, "disk_bytes": folder_bytes(folder), **latency}


def hybrid_task(size: int, seed: int, n_queries: int, scratch: Path) -> dict[str, Any]:
    encoder = load_encoder("minilm")
    ids = synthetic_ids(size)
    hybrid = HybridIndex(BM25Index.load(scratch / "bm25", ids),
                         DenseIndex.load(scratch / "flat", ids, encoder))
    depth = max(K, hybrid.depth)
    texts = synthetic_queries(n_queries, seed)
    vectors = unit_vectors(n_queries, encoder.dim, seed + 1)[:, None, :]
    queries = list(zip([Query(t) for t in texts], vectors, strict=True))

    def rankings(query: tuple[Query, np.ndarray]) -> tuple[list, list]:
        return (hybrid.bm25.search(query[0], k=depth),
                hybrid.dense.search_vectors(query[1], k=depth)[0])

    def fuse_pair(pair: tuple[list, list]) -> list:
        return fuse(*pair, method=hybrid.method, alpha=hybrid.alpha, rrf_k=hybrid.rrf_k, k=K)

    total = time_each(lambda q: fuse_pair(rankings(q)), queries)
    fuse_only = time_each(fuse_pair, [rankings(q) for q in queries])
    return {"fusion": hybrid.method, "depth": depth, "dense_index": "flat",
            "search_and_fuse": latency_stats(total), "fuse_only": latency_stats(fuse_only)}


def _child(conn, task: Callable[..., dict[str, Any]], args: tuple) -> None:
    conn.send(task(*args))
    conn.close()


def run_isolated(task: Callable[..., dict[str, Any]], *args: Any,
                 timeout: float | None = None) -> dict[str, Any] | None:
    """Run ``task(*args)`` in a fresh process; None if it runs past ``timeout`` seconds."""
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(writer, task, args))
    start = time.perf_counter()
    process.start()
    writer.close()
    if not reader.poll(timeout):
        process.kill()
        process.join()
        return None
    try:
        result = reader.recv()
    except EOFError:
        result = None
    process.join()
    if result is None:
        sys.exit(f"{task.__name__}{args} failed (exit code {process.exitcode}); see above")
    print(f"  {task.__name__}{args[:2]}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return result


def measure_size(size: int, dim: int, args: argparse.Namespace,
                 scratch: Path) -> dict[str, Any]:
    print(f"size {size}", file=sys.stderr)
    result: dict[str, Any] = {"size": size}
    result["bm25"] = run_isolated(bm25_task, size, args.seed, args.queries, scratch / "bm25")
    result["dense"] = {}
    for index_type in INDEX_TYPES:
        timeout = args.hnsw_timeout if index_type == "hnsw" else None
        dense = run_isolated(dense_task, size, index_type, dim, args.seed, args.queries,
                             scratch / index_type, timeout=timeout)
        if dense is None:
            dense = {"skipped": f"{index_type} task did not finish within {timeout:g} s"}
            print(f"  {index_type} at {size}: {dense['skipped']}; skipped", file=sys.stderr)
        result["dense"][index_type] = dense
    result["hybrid"] = run_isolated(hybrid_task, size, args.seed, args.queries, scratch)
    shutil.rmtree(scratch)
    return result


# -- report --------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                  if line.startswith("model name")), "unknown")
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model,
            "memory_gib": round(_memtotal_mib() / 1024, 1), "platform": platform.platform(),
            "python": platform.python_version(), "faiss_threads": faiss.omp_get_max_threads()}


def _memtotal_mib() -> float:
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines()
                if x.startswith("MemTotal:"))
    return int(line.split()[1]) / 1024


def versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(line, widths, strict=True))
                     for line in lines)


def _ms(stats: dict[str, float]) -> list[str]:
    return [f"{stats['p50_ms']:.3f}", f"{stats['p95_ms']:.3f}"]


def _ratio(result: dict[str, Any]) -> list[str]:
    return [f"{result['ratio_p50']:.2f}", "yes" if result["meets_target"] else "NO"]


def _mem(build: dict[str, float], disk_bytes: int) -> list[str]:
    return [f"{build['peak_rss_growth_mib']:.1f}", f"{disk_bytes / 2**20:.1f}"]


def report(results: dict[str, Any]) -> str:
    m, enc, sizes = results["machine"], results["encoder"], results["sizes"]
    query_ms = enc["query_encoding"]["p50_ms"]
    parts = [
        f"date      {results['date']}",
        f"machine   {m['nproc']} CPUs, {m['cpu']}, {m['memory_gib']} GiB, {m['platform']}, "
        f"faiss threads {m['faiss_threads']}, torch threads {enc['torch_threads']}",
        "versions  " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
        f"python    {m['python']}; {results['settings']['queries']} queries per measurement, "
        f"k={K}, one query at a time; ratio = ours p50 / raw p50, target <= {OVERHEAD_TARGET:.2f}",
        "",
        f"Encoder {enc['encoder']} (dim {enc['dim']}, real model): documents "
        f"{enc['docs_per_s']:.1f} passages/s ({enc['documents']} synthetic passages, mean "
        f"{enc['mean_wordpieces']:.0f} wordpieces, cut at {enc['max_seq_length']}; batch "
        f"{enc['batch_size']}); query encoding p50 {query_ms:.2f} ms, p95 "
        f"{enc['query_encoding']['p95_ms']:.2f} ms ({enc['query_encoding']['n']} queries)",
        "",
        "BM25 (ours: BM25Index with MathTokenizer; raw: bm25s.tokenize + BM25.retrieve)",
        table(["size", "vocab", "build/s ours", "build/s raw", "ours p50 ms", "ours p95 ms",
               "raw p50 ms", "raw p95 ms", "ratio", "<=1.10", "build RSS+ MiB", "disk MiB"],
              [[str(r["size"]), str(r["bm25"]["vocabulary"]),
                f"{r['bm25']['build']['docs_per_s']:.0f}",
                f"{r['bm25']['raw_build']['docs_per_s']:.0f}",
                *_ms(r["bm25"]["ours"]), *_ms(r["bm25"]["raw"]), *_ratio(r["bm25"]),
                *_mem(r["bm25"]["build"], r["bm25"]["disk_bytes"])] for r in sizes]),
        "",
        f"Dense faiss (random unit vectors, dim {enc['dim']}; ours: DenseIndex.search_vectors; "
        "raw: index.search; e2e = query encoding p50 + ours p50, estimated)",
        table(["size", "index", "build s", "ours p50 ms", "ours p95 ms", "raw p50 ms",
               "raw p95 ms", "ratio", "<=1.10", "build RSS+ MiB", "disk MiB", "e2e p50 ms"],
              [_dense_row(r["size"], kind, d, query_ms)
               for r in sizes for kind, d in r["dense"].items()]),
        "",
        "Hybrid (BM25 + flat dense at depth 100 each, then fuse; pre-encoded query vectors: "
        "query encoding comes on top, e2e adds the encoder's p50)",
        table(["size", "fusion", "p50 ms", "p95 ms", "fuse-only p50 ms", "fuse-only p95 ms",
               "e2e p50 ms"],
              [[str(r["size"]), r["hybrid"]["fusion"], *_ms(r["hybrid"]["search_and_fuse"]),
                *_ms(r["hybrid"]["fuse_only"]),
                f"{query_ms + r['hybrid']['search_and_fuse']['p50_ms']:.2f}"] for r in sizes]),
        "",
        "build RSS+ = peak RSS growth while building, each index in a fresh process; "
        "disk = what .save() wrote",
    ]
    return "\n".join(parts)


def _dense_row(size: int, kind: str, dense: dict[str, Any], query_ms: float) -> list[str]:
    if "skipped" in dense:
        return [str(size), kind, "skipped", *["-"] * 9]
    return [str(size), kind, f"{dense['build']['build_s']:.2f}", *_ms(dense["ours"]),
            *_ms(dense["raw"]), *_ratio(dense), *_mem(dense["build"], dense["disk_bytes"]),
            f"{query_ms + dense['ours']['p50_ms']:.2f}"]


# -- main ----------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,20000,200000",
                        help="comma-separated corpus sizes (default: %(default)s)")
    parser.add_argument("--queries", type=int, default=200,
                        help="queries per BM25, dense and hybrid timing (default: %(default)s)")
    parser.add_argument("--encoder-docs", type=int, default=1000,
                        help="passages for the real encoder's throughput (default: %(default)s)")
    parser.add_argument("--encoder-queries", type=int, default=100,
                        help="queries for the real encoder's latency (default: %(default)s)")
    parser.add_argument("--hnsw-timeout", type=float, default=300,
                        help="seconds after which an hnsw task is skipped (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="JSON results file (default: benchmarks/out/retrieval_speed.json)")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    return args


def main() -> None:
    args = parse_args()
    os.environ["RADER_NO_PROGRESS"] = "1"  # the spawned workers inherit it
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
        "versions": versions(), "settings": {**vars(args), "out": str(args.out), "k": K},
    }
    print(f"date {results['date']}; machine {results['machine']}", file=sys.stderr)
    results["encoder"] = run_isolated(encoder_task, args.encoder_docs, args.encoder_queries,
                                      args.seed)
    with tempfile.TemporaryDirectory(prefix="retrieval_speed-") as scratch:
        results["sizes"] = [measure_size(size, results["encoder"]["dim"], args,
                                         Path(scratch) / str(size))
                            for size in args.sizes]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(report(results))
    print(f"\nJSON written to {args.out}")


if __name__ == "__main__":
    main()
