"""What the ``unsure`` rows of a `rader bench agent --out` file did, read from their trajectories.

    RADER_HOME=... python benchmarks/unsure_attempts.py agent.json [--mode unsure-both]

- The gate: of the problems the first attempt was unsure of (retried) and sure of (kept), how
  many the same run's bare call got right (a gate that works retries the bare call's misses).
- Attempts: how many runs made 1, 2, 3... attempts, and how many of each were right.
- The choice between attempts, by the rule the file's rows ran under (its ``agent.choose``):
  the surest answer against always taking the last attempt's answer, on the same runs (where an
  earlier answer stood, the trajectory names the last one's, which is verified here), with the
  exact McNemar p; or, with ``choose="vote"``, the vote against the second attempt's answer
  alone (what two attempts written in full would end on), each against the bare call, on the
  runs that voted.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from rader.agent.bench import exact_mcnemar
from rader.agent.graph import EARLIER_STANDS, VOTED, read_vote
from rader.agent.sandbox import verify_answer
from rader.app.settings import Settings
from rader.app.wiring import store_from_settings

LAST_WAS = "whose answer was: "


def is_right(answer: str, problem) -> bool | None:
    """Whether ``answer`` is the problem's gold answer, by the rule the run itself was checked by."""
    return verify_answer(answer, str(problem.answer), answer_type=problem.answer_type)


def attempts(trajectory) -> tuple[int, bool, bool | None]:
    """(attempts made, an earlier answer stood, whether the last attempt's answer is right): the
    last differs from the run's own verdict only where an earlier attempt's answer stood."""
    events = [e for step in trajectory.steps for e in step.events]
    made = 1 + sum(e.startswith("unsure of ") for e in events)
    stood = next((e for e in events if e.startswith(EARLIER_STANDS)), None)
    if stood is None:
        return made, False, trajectory.verified
    problem = trajectory.problem
    last = stood.split(LAST_WAS, 1)[1]
    return made, True, is_right(last, problem)


def second_attempt_right(trajectory) -> bool | None:
    """Whether a voting run's second attempt had the right answer (None: the run did not vote, or
    its event predates the wording that names each attempt's answer)."""
    vote = next((e for step in trajectory.steps for e in step.events if e.startswith(VOTED)), None)
    record = read_vote(vote) if vote else {}
    if not record:
        return None
    second = record.get(2)
    return bool(second) and is_right(second, trajectory.problem) is True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path, help="a `rader bench agent --out` file (bare and unsure rows)")
    parser.add_argument("--mode", default="unsure",
                        help="the unsure row to read: unsure, unsure-both or unsure-none")
    args = parser.parse_args()
    result = json.loads(args.result.read_text())
    rows, vote = result["rows"], result.get("agent", {}).get("choose") == "vote"
    bare = {r["problem_id"]: r["verified"] is True for r in rows if r["mode"] == "bare"}
    unsure = [r for r in rows if r["mode"] == args.mode and r["problem_id"] in bare]
    store = store_from_settings(Settings(), readonly=True)
    gate: Counter = Counter()
    made: Counter = Counter()
    surer, last_always, paired_bare, earlier_stood = [], [], [], 0
    voted: list[tuple[bool, bool, bool]] = []  # (bare, the vote, the second attempt alone) right
    for row in unsure:
        trajectory = store.get(row["trajectory_id"])
        count, stood, last_right = attempts(trajectory)
        second = second_attempt_right(trajectory)
        if second is not None:
            voted.append((bare[row["problem_id"]], row["verified"] is True, second))
        right = row["verified"] is True
        gate[("retried" if count > 1 else "kept", bare[row["problem_id"]], right)] += 1
        made[(count, right)] += 1
        earlier_stood += stood
        surer.append(right)
        last_always.append(last_right is True)
        paired_bare.append(bare[row["problem_id"]])
    print(f"{len(unsure)} problems with bare and unsure rows")
    for choice in ("retried", "kept"):
        cells = {(b, u): n for (c, b, u), n in gate.items() if c == choice}
        total = sum(cells.values())
        print(f"  {choice}: {total}; bare right on {sum(n for (b, _), n in cells.items() if b)}, "
              f"unsure right on {sum(n for (_, u), n in cells.items() if u)} "
              f"(won {cells.get((False, True), 0)}, lost {cells.get((True, False), 0)})")
    for count in sorted({c for c, _ in made}):
        right = made[(count, True)]
        print(f"  {count} attempt(s): {right + made[(count, False)]} runs, {right} right")
    if vote:
        print_vote(voted)
        return
    lost, won, p = exact_mcnemar(last_always, surer)
    print(f"  the surest answer: {sum(surer)} right; the last attempt's always: {sum(last_always)} right "
          f"(an earlier answer stood on {earlier_stood}; the surest rule lost {lost}, won {won}, p {p:.3f})")
    for name, outcomes in (("the surest answer", surer), ("the last attempt's always", last_always)):
        lost, won, p = exact_mcnemar(paired_bare, outcomes)
        print(f"  {name} against bare ({sum(paired_bare)} right): lost {lost}, won {won}, p {p:.3f}")


def print_vote(voted: list[tuple[bool, bool, bool]]) -> None:
    """The vote and the second attempt alone, each against the bare call, on the runs that voted
    (a vote event in an earlier wording names no attempts: such runs are not read)."""
    if not voted:
        print("  no vote event it can read")
        return
    was_bare = [b for b, _, _ in voted]
    print(f"  {len(voted)} runs voted; bare right on {sum(was_bare)}")
    for name, outcomes in (("the vote", [v for _, v, _ in voted]),
                           ("the second attempt alone", [s for _, _, s in voted])):
        lost, won, p = exact_mcnemar(was_bare, outcomes)
        print(f"  {name}: {sum(outcomes)} right; against bare lost {lost}, won {won}, p {p:.3f}")


if __name__ == "__main__":
    main()
