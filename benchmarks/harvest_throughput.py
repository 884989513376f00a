"""Harvest throughput: runs/hour sequential vs C at a time, same problems, model and settings.

Each pass harvests the same problems into its own fresh store (so nothing is skipped), with
llama.cpp serving ``C`` slots for the concurrent pass. Order alternates over rounds.

    python benchmarks/harvest_throughput.py [--model smollm2-135m] [--problems N] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rader.agent.problems import load_problems
from rader.agent.store import TrajectoryStore
from rader.app.settings import default_home, load_settings
from rader.app.wiring import graphs_by_sample
from rader.training.harvest import HarvestSpec, harvest

MATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "problems" / "math_train.jsonl"


def one_pass(problems, *, model: str, concurrency: int, retriever: str, max_steps: int) -> float:
    settings, _ = load_settings({
        "home": str(default_home()), "show_progress": False,
        "llm": {"model": model, "parallel": concurrency, "context": 4096},
        "agent": {"max_steps": max_steps},
    })
    with tempfile.TemporaryDirectory() as folder:
        store = TrajectoryStore(Path(folder) / "t.db")
        spec = HarvestSpec(model=model, retriever=retriever)
        summary = harvest(problems, graphs_by_sample(settings, retriever), store=store, spec=spec,
                          concurrency=concurrency)
    return summary.runs_per_hour


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--retriever", default="bm25")
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    problems = load_problems(MATH, args.problems, shuffle_seed=1, levels={1, 2})
    rates: dict[int, list[float]] = {1: [], args.concurrency: []}
    for round_ in range(args.rounds):
        order = [1, args.concurrency] if round_ % 2 == 0 else [args.concurrency, 1]
        for concurrency in order:
            rate = one_pass(problems, model=args.model, concurrency=concurrency, retriever=args.retriever,
                            max_steps=args.max_steps)
            rates[concurrency].append(rate)
            print(f"round {round_ + 1}: concurrency {concurrency}: {rate:.1f} runs/hour", flush=True)
    best = {c: max(r) for c, r in rates.items()}
    print(f"model {args.model}, {len(problems)} problems, retriever {args.retriever}, "
          f"max {args.max_steps} steps: sequential {best[1]:.1f} runs/hour, concurrency "
          f"{args.concurrency} {best[args.concurrency]:.1f} runs/hour, ratio "
          f"{best[args.concurrency] / best[1]:.2f}")


if __name__ == "__main__":
    main()
