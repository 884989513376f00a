"""`rader serve` against the Python API, measured in the same run on the same machine.

* ``/retrieve`` (Search-R1's contract) on the built-in corpus: queries/s for batches of 1, 16
  and 64 queries through HTTP (a keep-alive `httpx` client) versus the same batches through
  ``Retriever.search_many`` in this process, interleaved batch by batch after a warm-up round;
  the HTTP overhead is ``1 - http/api`` (target: at most 10 % at batch 64). Then 8 concurrent
  clients sending one query per request: latency p50/p95 and queries/s. The encoder runs with
  ``--threads`` PyTorch/OpenMP threads on both sides (default 1): with two threads on a busy
  2-core machine, the speed of the same search swung several-fold from run to run (OpenMP threads
  waiting on each other), which would measure thread scheduling, not HTTP.
* Chat: completion tokens/s of one agent run streamed through ``/v1/chat/completions`` versus
  the same problem and model through ``run_problem`` with a token callback, which is what
  `rader solve` runs (in this process, so neither side pays process start or model loading);
  alternating, the median of ``--chat-reps`` each (target: ratio at least 0.95). Token counts
  are those the run records for its steps, on both sides.
* Three concurrent streamed runs of different problems (llama.cpp with three slots): each stream
  must carry only its own chunk ids and its own stored problem; aggregate tokens/s against one
  stream's.

The server is a real ``rader serve`` subprocess on a free loopback port with the test model
(SmolLM2-135M, fetched from PyPI once) and the settings this script exports; its data directory
(``--home``) keeps the indexes between runs (a first hybrid build takes about a minute).

Run (about five minutes on 2 CPU cores when idle):

    python benchmarks/serve_throughput.py [--retriever hybrid] [--rounds 5] [--chat-reps 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("RADER_TEST_MODELS", Path.home() / ".cache" / "rader-test"))
BATCHES = (1, 16, 64)
CHAT_PROBLEM = "If $4^6=8^n$, what is $n$?"
CONCURRENT_PROBLEMS = ["What is $2^{10}$?", "Find $x$ if $3x - 7 = 11$.", "What is the sum of the first 10 "
                       "positive integers?"]


def problems(limit: int) -> list[str]:
    """Queries: MATH train problems from the shared data, else the built-in theorem titles."""
    path = Path(os.environ.get("RADER_SHARED_DATA", REPO.parent / "shared" / "data")) / "problems"
    texts: list[str] = []
    if (path / "math_train.jsonl").is_file():
        with (path / "math_train.jsonl").open() as rows:
            texts = [json.loads(line)["text"][:1000] for line, _ in zip(rows, range(limit), strict=False)]
    if len(texts) < limit:
        from rader.retriever import builtin_corpus

        texts += [t.title for t in builtin_corpus()][: limit - len(texts)]
    return texts


def start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "rader.app.cli", "serve", "--port", "0"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while not (found := re.search(r"rader serve: (http://[\d.]+:\d+)", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"rader serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return process, found.group(1)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- retrieval -----------------------------------------------------------------------------
def bench_retrieve(url: str, engine, queries: list[str], rounds: int, k: int) -> list[dict[str, Any]]:
    """Queries/s by batch size, HTTP and the Python API interleaved batch by batch (so a change in
    the machine's load hits both alike), after a warm-up round."""
    from rader.retriever import Query

    rows = []
    with httpx.Client(timeout=300) as http:
        for size in BATCHES:
            batches = [queries[i:i + size] for i in range(0, 64, size)]  # 64 queries a round
            http_s = api_s = 0.0
            for round_no in range(rounds + 1):  # round 0 warms both up
                for batch in batches:
                    started = time.perf_counter()
                    response = http.post(f"{url}/retrieve", json={"queries": batch, "topk": k,
                                                                  "return_scores": True, "kind": "problem"})
                    response.raise_for_status()
                    middle = time.perf_counter()
                    engine.search_many([Query(q, "problem") for q in batch], k=k)
                    if round_no:
                        http_s += middle - started
                        api_s += time.perf_counter() - middle
            total = 64 * rounds
            row = {"batch": size, "queries": total, "http_qps": total / http_s, "api_qps": total / api_s}
            row["ratio"] = row["http_qps"] / row["api_qps"]
            row["http_overhead_pct"] = 100 * (1 - row["ratio"])
            rows.append(row)
            print(f"batch {size:>2}: http {row['http_qps']:8.1f} q/s  api {row['api_qps']:8.1f} q/s  "
                  f"ratio {row['ratio']:.3f}  overhead {row['http_overhead_pct']:+.1f} %", flush=True)
    return rows


def bench_concurrent_retrieve(url: str, queries: list[str], clients: int, per_client: int, k: int):
    def client(offset: int) -> list[float]:
        latencies = []
        with httpx.Client(timeout=300) as http:
            for i in range(per_client):
                query = queries[(offset * per_client + i) % len(queries)]
                started = time.perf_counter()
                http.post(f"{url}/retrieve", json={"queries": [query], "topk": k}).raise_for_status()
                latencies.append(time.perf_counter() - started)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [s for part in pool.map(client, range(clients)) for s in part]
    wall = time.perf_counter() - started
    row = {"clients": clients, "requests": len(latencies), "qps": len(latencies) / wall,
           "p50_ms": 1000 * pct(latencies, 0.5), "p95_ms": 1000 * pct(latencies, 0.95)}
    print(f"{clients} concurrent clients, 1 query a request: {row['qps']:.1f} q/s, "
          f"p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms", flush=True)
    return row


# -- chat ----------------------------------------------------------------------------------
async def stream_run(http: httpx.AsyncClient, url: str, problem: str, options: dict) -> dict[str, Any]:
    body = {"model": "rader-agent", "stream": True, "messages": [{"role": "user", "content": problem}],
            "rader": options}
    started, events = time.perf_counter(), []
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line.removeprefix("data: ")))
    wall = time.perf_counter() - started
    end = events[-1]["rader"]
    return {"wall_s": wall, "completion_tokens": end["usage"]["completion_tokens"],
            "total_tokens": end["usage"]["total_tokens"], "steps": end["steps"], "status": end["status"],
            "trajectory_id": end["trajectory_id"], "chunk_ids": {e["id"] for e in events}, "problem": problem}


def api_run(parts, problem: str) -> dict[str, Any]:
    """The run as `rader solve` makes it: ``run_problem`` with node and token callbacks."""
    from rader.agent.records import Problem
    from rader.agent.runner import run_problem
    from rader.app.serve_runs import usage_of

    pieces: list[str] = []
    started = time.perf_counter()
    trajectory = run_problem(parts.graph, Problem("bench", problem), store=None, model=parts.model,
                             retriever=parts.retriever_name, on_token=lambda node, text: pieces.append(text),
                             on_update=lambda node, values, t: None)
    wall = time.perf_counter() - started
    usage = usage_of(trajectory)
    return {"wall_s": wall, "completion_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"], "steps": len(trajectory.steps),
            "status": trajectory.status}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["completion_tokens"] / r["wall_s"] for r in runs]
    totals = [r["total_tokens"] / r["wall_s"] for r in runs]
    return {"completion_tokens_per_s": statistics.median(rates),
            "total_tokens_per_s": statistics.median(totals),
            "runs": [{k: v for k, v in r.items() if k != "chunk_ids"} for r in runs]}


def bench_chat(url: str, parts, reps: int, options: dict) -> dict[str, Any]:
    async def one() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=900) as http:
            return await stream_run(http, url, CHAT_PROBLEM, options)

    asyncio.run(one())  # warm-up: the server's first call
    api_run(parts, CHAT_PROBLEM)  # and ours
    http_runs, api_runs = [], []
    for _ in range(reps):
        http_runs.append(asyncio.run(one()))
        api_runs.append(api_run(parts, CHAT_PROBLEM))
    result = {"http": summarize(http_runs), "api": summarize(api_runs)}
    result["ratio"] = result["http"]["completion_tokens_per_s"] / result["api"]["completion_tokens_per_s"]
    result["total_ratio"] = result["http"]["total_tokens_per_s"] / result["api"]["total_tokens_per_s"]
    http, api = result["http"], result["api"]
    print(f"chat, one run: http {http['completion_tokens_per_s']:.1f} tok/s, api "
          f"{api['completion_tokens_per_s']:.1f} tok/s, ratio {result['ratio']:.3f}; prompt + completion "
          f"{http['total_tokens_per_s']:.0f} vs {api['total_tokens_per_s']:.0f} tok/s, ratio "
          f"{result['total_ratio']:.3f} (steps http {[r['steps'] for r in http_runs]}, "
          f"api {[r['steps'] for r in api_runs]})", flush=True)
    return result


def bench_concurrent_chat(url: str, store, options: dict, single: dict[str, Any]) -> dict[str, Any]:
    async def three() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=900) as http:
            return await asyncio.gather(*(stream_run(http, url, p, options) for p in CONCURRENT_PROBLEMS))

    started = time.perf_counter()
    runs = asyncio.run(three())
    wall = time.perf_counter() - started
    own = [run["chunk_ids"] == {f"chatcmpl-{run['trajectory_id']}"}
           and store.get(run["trajectory_id"]).problem.text == run["problem"] for run in runs]
    tokens = sum(run["completion_tokens"] for run in runs)
    total = sum(run["total_tokens"] for run in runs)
    row = {"streams": len(runs), "wall_s": wall, "completion_tokens": tokens,
           "aggregate_tokens_per_s": tokens / wall,
           "single_stream_tokens_per_s": single["completion_tokens_per_s"],
           "speedup": tokens / wall / single["completion_tokens_per_s"],
           "aggregate_total_tokens_per_s": total / wall,
           "total_speedup": total / wall / single["total_tokens_per_s"],
           "each_got_only_its_own_chunks": all(own),
           "runs": [{k: v for k, v in r.items() if k != "chunk_ids"} for r in runs]}
    print(f"3 concurrent streams: {row['aggregate_tokens_per_s']:.1f} completion tok/s in all "
          f"({row['speedup']:.2f}x one stream), prompt + completion "
          f"{row['aggregate_total_tokens_per_s']:.0f} tok/s ({row['total_speedup']:.2f}x); "
          f"each only its own chunks: {all(own)}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path.home() / ".cache" / "rader-bench" / "serve-home")
    parser.add_argument("--retriever", default="hybrid", help="behind /retrieve: bm25, dense or hybrid")
    parser.add_argument("--agent-retriever", default="bm25", help="the chat agent's retriever")
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chat-reps", type=int, default=3)
    parser.add_argument("--topk", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch/OpenMP threads, here and in the server (0: their default)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:  # before torch loads, in this process and (inherited) the server's
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)

    from rader.agent.llm.catalog import fetch
    from rader.agent.store import TrajectoryStore

    model = fetch("smollm2-135m", CACHE)
    exported = {"RADER_HOME": str(args.home), "RADER_LLM__MODEL": str(model), "RADER_LLM__PARALLEL": "3",
                "RADER_RETRIEVER__KIND": args.retriever, "RADER_AGENT__RETRIEVER": args.agent_retriever,
                "RADER_AGENT__MAX_STEPS": str(args.max_steps), "RADER_SHOW_PROGRESS": "0"}
    for key in [k for k in os.environ if k.startswith("RADER_") and k not in ("RADER_TEST_MODELS",
                                                                             "RADER_SHARED_DATA")]:
        del os.environ[key]
    os.environ.update(exported)
    from rader.app.settings import load_settings
    from rader.app.wiring import agent_from_settings, retriever_from_settings

    settings, _ = load_settings()
    started = time.perf_counter()
    engine = retriever_from_settings(settings)  # builds the indexes on a first run
    print(f"{engine.name} retriever over {len(engine.corpus)} theorems ready in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    queries = problems(64 * 4)
    log = args.home / "serve-bench.log"
    process, url = start_server(dict(os.environ), log)
    try:
        retrieve = bench_retrieve(url, engine, queries, args.rounds, args.topk)
        concurrent = bench_concurrent_retrieve(url, queries, clients=8, per_client=25, k=args.topk)
        parts = agent_from_settings(settings)
        options = {"max_steps": args.max_steps}
        chat = bench_chat(url, parts, args.chat_reps, options)
        store = TrajectoryStore(args.home / "trajectories.db")
        three = bench_concurrent_chat(url, store, options, chat["http"])
        store.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(300)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "threads": args.threads, "load_average_end": os.getloadavg(),
        "settings": exported,
        "retrieve": retrieve, "retrieve_8_clients": concurrent,
        "chat": chat, "chat_3_concurrent": three,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
