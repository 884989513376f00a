"""Is the bare model's confidence a signal of a wrong answer? The measurement behind
``retrieve_when="unsure"`` (RESULTS "Retrieval when unsure").

``run`` makes the bare call (the agent's first attempt: the same prompt and budget) on a draw
of problems with token log-probabilities, resumably, one JSON line per problem (log-probs
rounded to 3 decimals). ``score`` prints, for each confidence measure, how well it separates
right from wrong answers (AUROC), and, given the rows of a `rader bench agent --out` file with
a retrieval mode on the same problems, the accuracy of "the bare answer when sure, else that
mode's" at each threshold: what the unsure rule would have scored.

    python benchmarks/confidence_probe.py run ../shared/data/problems/math_train.jsonl \\
        --limit 70 --shuffle-seed 0 --held-out-by id --held-out-fraction 0.1 --out probe.jsonl.gz
    python benchmarks/confidence_probe.py score probe.jsonl.gz \\
        --with benchmarks/agent-vs-bare-70-2026-11-29.json --mode theorems
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import time
from pathlib import Path

from rader.agent.confidence import lowest_window_confidence


def run(args: argparse.Namespace) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    from rader.agent import prompts
    from rader.agent.calls import token_logprobs
    from rader.agent.llm import chat_models
    from rader.agent.problems import load_problems
    from rader.agent.protocol import clean, last_boxed
    from rader.agent.sandbox import verify_answer
    from rader.agent.state import AgentConfig
    from rader.app.cli_options import held_out_from
    from rader.app.settings import Settings
    from rader.retriever import held_out_rows

    held_out = held_out_from(args.held_out_by, args.held_out_fraction)
    problems = load_problems(args.problems, args.limit, shuffle_seed=args.shuffle_seed,
                             where=held_out_rows(held_out))
    done = {row["id"] for row in read_rows(args.out)} if args.out.exists() else set()
    settings, config = Settings(), AgentConfig()
    llm, _ = chat_models(settings.llm.config(), home=settings.home)
    for problem in problems:
        if problem.id in done:
            continue
        started = time.perf_counter()
        message = llm.invoke([SystemMessage(prompts.SOLVE_SYSTEM), HumanMessage(problem.text)],
                             max_tokens=config.solution_tokens, logprobs=True)
        tokens = token_logprobs(message)
        answer = last_boxed(clean(message.content))
        verified = verify_answer(answer, str(problem.answer), answer_type=problem.answer_type,
                                 limits=config.compute_limits) if answer else None
        row = {"id": problem.id, "answer": answer, "verified": verified,
               "finish": message.response_metadata.get("finish_reason"),
               "seconds": round(time.perf_counter() - started, 1),
               "logprobs": [round(t["logprob"], 3) for t in tokens]}
        with gzip.open(args.out, "at", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
        print(problem.id, verified, row["seconds"], flush=True)


def read_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as rows:
        return [json.loads(line) for line in rows]


def auroc(right: list[float], wrong: list[float]) -> float:
    """P(a right answer's score > a wrong one's), ties counted half."""
    pairs = [(r > w) + 0.5 * (r == w) for r in right for w in wrong]
    return sum(pairs) / len(pairs) if pairs else float("nan")


MEASURES = {
    "lowest window 32": lambda lp: lowest_window_confidence(lp, 32),
    "lowest window 128": lambda lp: lowest_window_confidence(lp, 128),
    "mean token": lambda lp: math.exp(sum(lp) / len(lp)),
    "shortness": lambda lp: -len(lp),
}


def score(args: argparse.Namespace) -> None:
    rows = [r for r in read_rows(args.probe) if r["logprobs"]]
    answered = [r for r in rows if r["answer"] is not None]
    print(f"{len(rows)} problems, {len(answered)} answered, {sum(r['verified'] is True for r in rows)} right")
    for name, measure in MEASURES.items():
        right = [measure(r["logprobs"]) for r in answered if r["verified"]]
        wrong = [measure(r["logprobs"]) for r in answered if not r["verified"]]
        print(f"  AUROC of {name}: {auroc(right, wrong):.3f}")
    if not args.with_:
        return
    other = {r["problem_id"]: r for r in json.loads(args.with_.read_text())["rows"] if r["mode"] == args.mode}
    shared = [r for r in rows if r["id"] in other]
    confidence = {r["id"]: lowest_window_confidence(r["logprobs"], args.window) for r in shared}
    print(f"bare when sure (lowest window {args.window}), else {args.mode}, on {len(shared)} problems "
          f"(bare {sum(r['verified'] is True for r in shared)}, "
          f"{args.mode} {sum(other[r['id']]['verified'] is True for r in shared)}):")
    for threshold in args.thresholds:
        unsure = {r["id"] for r in shared if r["answer"] is None or confidence[r["id"]] < threshold}
        chosen = [other[r["id"]]["verified"] if r["id"] in unsure else r["verified"] for r in shared]
        right = sum(verified is True for verified in chosen)
        print(f"  under {threshold:.2f}: {right} right, {len(unsure)} retrieved")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    probe = commands.add_parser("run", help="bare calls with log-probabilities")
    probe.add_argument("problems", type=Path)
    probe.add_argument("--limit", type=int, default=70)
    probe.add_argument("--shuffle-seed", type=int, default=0)
    probe.add_argument("--held-out-by", default=None)
    probe.add_argument("--held-out-fraction", type=float, default=0.5)
    probe.add_argument("--out", type=Path, required=True, help="a .jsonl.gz file (appended to)")
    scored = commands.add_parser("score", help="AUROC per measure; the unsure rule against a bench file")
    scored.add_argument("probe", type=Path)
    scored.add_argument("--with", dest="with_", type=Path, help="a `rader bench agent --out` file")
    scored.add_argument("--mode", default="theorems")
    scored.add_argument("--window", type=int, default=32)
    scored.add_argument("--thresholds", type=float, nargs="+", default=[0.6, 0.7, 0.75, 0.8, 0.85, 0.9])
    args = parser.parse_args()
    run(args) if args.command == "run" else score(args)


if __name__ == "__main__":
    main()
