"""Markdown table of a `rader bench agent --out FILE` result, written while it runs or after.

    python benchmarks/agent_table.py agent100.json [--levels-of ../shared/data/problems/math_train.jsonl]
    python benchmarks/agent_table.py tqa50.json --with tqa50_rank.json "rank 0.2" --versus theorems

Each mode's row: accuracy, lost/won against the bare model with the exact McNemar p (on the
problems both finished), answered and forced answers, out of budget, steps, seconds and tokens
per problem, prompt tokens re-processed, time outside the LLM, and time against the bare model.
With ``--levels-of``, accuracy by MATH level follows. ``--with FILE NAME`` adds the agent rows of
another run on the same problems (a setting changed, its own bare rows dropped), their modes named
``MODE NAME``; ``--versus MODE`` then compares every row with that mode, paired, as with bare.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from rader.agent.bench import paired_outcomes, summarize_modes


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


def with_run(result: dict, other: dict, name: str) -> dict:
    """``result`` with ``other``'s agent rows added under ``MODE NAME`` (its bare rows are the same
    model's same call on the same problems, so they are left out)."""
    added = [{**row, "mode": f"{row['mode']} {name}"} for row in other["rows"] if row["mode"] != "bare"]
    return {**result, "rows": result["rows"] + added}


def versus(result: dict, baseline: str) -> str:
    """Every mode against ``baseline`` on the problems both finished: lost / won, exact McNemar p."""
    by_mode = defaultdict(dict)
    for row in result["rows"]:
        by_mode[row["mode"]][row["problem_id"]] = row
    lines = [f"| mode | problems shared with {baseline} | lost / won (p) |", "|---|---:|---|"]
    for mode in modes_of(result):
        if mode == baseline:
            continue
        shared, lost, won, p = paired_outcomes(by_mode[baseline], by_mode[mode])
        lines.append(f"| {mode} | {len(shared)} | {lost} / {won} (p {p:.3f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path)
    parser.add_argument("--levels-of", type=Path, help="the problems file, for accuracy by level")
    parser.add_argument("--with", dest="others", nargs=2, action="append", default=[],
                        metavar=("FILE", "NAME"), help="add another run's agent rows as modes 'MODE NAME'")
    parser.add_argument("--versus", metavar="MODE", help="also compare every mode with this one")
    args = parser.parse_args()
    result = json.loads(args.result.read_text())
    for path, name in args.others:
        result = with_run(result, json.loads(Path(path).read_text()), name)
    print(table(result))
    if args.versus:
        print()
        print(versus(result, args.versus))
    if args.levels_of:
        print()
        print(by_level(result, args.levels_of))


if __name__ == "__main__":
    main()
