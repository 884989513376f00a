"""What the ``unsure`` rows of a `rader bench agent --out` file did, read from their trajectories.

    RADER_HOME=... python benchmarks/unsure_attempts.py agent.json

- The gate: of the problems the first attempt was unsure of (retried) and sure of (kept), how
  many the same run's bare call got right (a gate that works retries the bare call's misses).
- The choice between two attempts: the row's rule (the surer answer stands) against always
  taking the second attempt's answer, on the same runs (where the first answer stood, the
  trajectory names the second's, which is verified here), with the exact McNemar p.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from rader.agent.bench import exact_mcnemar
from rader.agent.sandbox import verify_answer
from rader.app.settings import Settings
from rader.app.wiring import store_from_settings

FIRST_STANDS = "the first attempt's answer stands"
SECOND_WAS = "whose answer was: "


def attempts(trajectory) -> tuple[bool, bool, bool | None]:
    """(retried, the first answer stood, whether the second attempt's answer is right): the last
    differs from the run's own verdict only where the first attempt's answer stood."""
    events = [e for step in trajectory.steps for e in step.events]
    retried = any(e.startswith("unsure of the first attempt") for e in events)
    stood = next((e for e in events if e.startswith(FIRST_STANDS)), None)
    if stood is None:
        return retried, False, trajectory.verified
    problem = trajectory.problem
    second = stood.split(SECOND_WAS, 1)[1]
    return retried, True, verify_answer(second, str(problem.answer), answer_type=problem.answer_type)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path, help="a `rader bench agent --out` file (bare and unsure rows)")
    args = parser.parse_args()
    rows = json.loads(args.result.read_text())["rows"]
    bare = {r["problem_id"]: r["verified"] is True for r in rows if r["mode"] == "bare"}
    unsure = [r for r in rows if r["mode"] == "unsure" and r["problem_id"] in bare]
    store = store_from_settings(Settings(), readonly=True)
    gate: Counter = Counter()
    surer, second_always, paired_bare, first_stood = [], [], [], 0
    for row in unsure:
        retried, stood, second_right = attempts(store.get(row["trajectory_id"]))
        right = row["verified"] is True
        gate[("retried" if retried else "kept", bare[row["problem_id"]], right)] += 1
        first_stood += stood
        surer.append(right)
        second_always.append(second_right is True)
        paired_bare.append(bare[row["problem_id"]])
    print(f"{len(unsure)} problems with bare and unsure rows")
    for choice in ("retried", "kept"):
        cells = {(b, u): n for (c, b, u), n in gate.items() if c == choice}
        total = sum(cells.values())
        print(f"  {choice}: {total}; bare right on {sum(n for (b, _), n in cells.items() if b)}, "
              f"unsure right on {sum(n for (_, u), n in cells.items() if u)} "
              f"(won {cells.get((False, True), 0)}, lost {cells.get((True, False), 0)})")
    lost, won, p = exact_mcnemar(second_always, surer)
    print(f"  the surer answer: {sum(surer)} right; the second attempt's always: {sum(second_always)} right "
          f"(the first answer stood on {first_stood}; the surer rule lost {lost}, won {won}, p {p:.3f})")
    for name, outcomes in (("the surer answer", surer), ("the second attempt's always", second_always)):
        lost, won, p = exact_mcnemar(paired_bare, outcomes)
        print(f"  {name} against bare ({sum(paired_bare)} right): lost {lost}, won {won}, p {p:.3f}")


if __name__ == "__main__":
    main()
