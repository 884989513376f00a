"""Markdown table of a `rader bench agent --out FILE` result, written while it runs or after.

    python benchmarks/agent_table.py agent100.json [--levels-of ../shared/data/problems/math_train.jsonl]

Each mode's row: accuracy, lost/won against the bare model with the exact McNemar p (on the
problems both finished), answered and forced answers, out of budget, steps, seconds and tokens
per problem, prompt tokens re-processed, time outside the LLM, and time against the bare model.
With ``--levels-of``, accuracy by MATH level follows.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from rader.agent.bench import summarize_modes


def modes_of(result: dict) -> list[str]:
    """Every mode with rows, summarised ones first: a --resume with other --modes keeps the earlier
    modes' rows."""
    return list(dict.fromkeys([m["mode"] for m in result["modes"]] + [r["mode"] for r in result["rows"]]))


def table(result: dict) -> str:
    rows = [
        "| mode | problems | accuracy | vs bare: lost / won (p) | answered (forced) | out of budget "
        "| steps | s / problem | × bare time | tokens / problem | re-processed prompt tokens / problem "
        "| outside LLM |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    modes = modes_of(result)
    for m in summarize_modes(result["rows"], modes):
        versus = m["vs_bare"] or {}
        rows.append(
            f"| {m['mode']} | {m['problems']} | {m['correct']}/{m['problems']} = {m['accuracy']:.3f} | "
            + (f"{versus['lost']} / {versus['won']} (p {versus['p']:.3f})" if versus else "–")
            + f" | {m['answered']:.2f} ({m.get('forced_answers', 0)}) | {m['out_of_budget']:.2f} | "
            f"{m['mean_steps']:.1f} | {m['seconds_per_problem']:.1f} | "
            + (f"{versus['time_ratio']:.2f}" if versus.get("time_ratio") else "1")
            + f" | {m['tokens_per_problem']:,.0f} | {m['reprocessed_tokens_per_problem']:,.0f} | "
            f"{(m['outside_llm_share'] or 0) * 100:.2f} % |")
    return "\n".join(rows)


def by_level(result: dict, problems: Path) -> str:
    levels = {}
    with problems.open(encoding="utf-8") as source:
        for line in source:
            row = json.loads(line)
            levels[row["id"]] = row.get("level")
    counts: dict[tuple[str, object], list[int]] = defaultdict(lambda: [0, 0])
    for row in result["rows"]:
        cell = counts[(row["mode"], levels.get(row["problem_id"]))]
        cell[0] += row["verified"] is True
        cell[1] += 1
    modes = modes_of(result)
    found = sorted({level for _, level in counts if level is not None})
    lines = ["| mode | " + " | ".join(f"level {level}" for level in found) + " |",
             "|---|" + "---:|" * len(found)]
    for mode in modes:
        lines.append(f"| {mode} | " + " | ".join(
            "{}/{}".format(*counts[(mode, level)]) for level in found) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path)
    parser.add_argument("--levels-of", type=Path, help="the problems file, for accuracy by level")
    args = parser.parse_args()
    result = json.loads(args.result.read_text())
    print(table(result))
    if args.levels_of:
        print()
        print(by_level(result, args.levels_of))


if __name__ == "__main__":
    main()
