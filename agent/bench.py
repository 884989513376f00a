"""`rader bench judge` and `rader bench agent`: measure the judge and the whole agent.

- judge: each TheoremQA dev question with its gold theorem (should be judged relevant) and
  with BM25's best-ranked wrong theorem (should not): TPR, TNR, balanced accuracy, seconds
  per judgment, and the best balanced accuracy a threshold on the verdict score reaches.
- agent: MATH-style problems with gold answers, each solved by the bare model (one plain
  call) and by the agent in several modes (no retrieval, theorems, worked examples, both,
  the gold theorem given): accuracy by math-verify with an exact McNemar test against the
  bare model, answered vs out of budget, steps, retrievals, judged-relevant rate, seconds,
  tokens and prompt tokens re-processed per problem, and the share of wall time outside the LLM.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rader.agent.batch import Job, run_jobs
from rader.agent.calls import LLMFailure
from rader.agent.judge import judge_hits
from rader.agent.records import Problem
from rader.agent.state import AgentConfig
from rader.retriever import Corpus, Hit, Query, RaderError


@dataclass(frozen=True, slots=True)
class JudgeReport:
    pairs: int  # judgments (two per question)
    threshold: float
    top_threshold: float
    tpr: float
    tnr: float
    balanced_accuracy: float
    seconds_per_judgment: float
    pair_win_rate: float  # how often the gold theorem scores above the wrong one
    calibrated: dict[str, float | None]  # thresholds fit on the first half, scored on the second
    failed: int = 0  # questions left out because a model call failed
    error: str | None = None  # the last failure's message


DEAD_MODEL_FAILURES = 3  # the judge benchmark gives up when its first this many questions all failed


def balanced_accuracy(labels: list[bool], predictions: list[bool]) -> tuple[float, float, float]:
    positives = [p for label, p in zip(labels, predictions, strict=True) if label]
    negatives = [not p for label, p in zip(labels, predictions, strict=True) if not label]
    tpr = sum(positives) / len(positives) if positives else 0.0
    tnr = sum(negatives) / len(negatives) if negatives else 0.0
    return tpr, tnr, (tpr + tnr) / 2


def judge_pairs(problems: list[Problem], gold: dict[str, str], corpus: Corpus,
                bm25) -> list[tuple[str, str, bool]]:
    """(question, theorem id, is relevant): the gold theorem and BM25's best wrong one."""
    pairs = []
    for problem in problems:
        gold_id = gold.get(problem.id)
        if gold_id is None or gold_id not in corpus:
            continue
        wrong = next(h.theorem_id for h in bm25.search(Query(problem.text), k=10)
                     if h.theorem_id != gold_id)
        pairs += [(problem.text, gold_id, True), (problem.text, wrong, False)]
    return pairs


def _decide(scores: list[tuple[float, float]], high: float, top: float) -> list[bool]:
    """Verdicts for (gold score, wrong score) pairs under the judge's joint rule."""
    out = []
    for gold, wrong in scores:
        best_is_gold = gold >= wrong
        out += [gold >= high or (best_is_gold and gold >= top),
                wrong >= high or (not best_is_gold and wrong >= top)]
    return out


def _accuracy(scores: list[tuple[float, float]], high: float, top: float) -> float:
    labels = [True, False] * len(scores)
    return balanced_accuracy(labels, _decide(scores, high, top))[2]


def bench_judge(llm, pairs: list[tuple[str, str, bool]], corpus: Corpus, config: AgentConfig,
                progress: Callable[[int], None] | None = None) -> tuple[JudgeReport, list[dict]]:
    """Judge each question's (gold, wrong) theorems together, as the graph judges a step's hits.

    A question whose model call fails is left out and counted (``failed``, with the last
    ``error``); `LLMFailure` is raised only when the first questions all fail (a dead model)."""
    rows, scores, failed, error = [], [], 0, None
    started = time.perf_counter()
    for i in range(0, len(pairs), 2):
        (question, gold_id, _), (_, wrong_id, _) = pairs[i], pairs[i + 1]
        try:
            judgments, _, _ = judge_hits(llm, question, [], [corpus.get(gold_id), corpus.get(wrong_id)],
                                         config)
            scores.append((judgments[0].score, judgments[1].score))
            rows += [{"label": label, **j.to_dict()}
                     for label, j in zip((True, False), judgments, strict=True)]
        except LLMFailure as err:
            failed, error = failed + 1, str(err)
            if failed == DEAD_MODEL_FAILURES and not scores:
                raise
        if progress:
            progress(i + 2)
    seconds = (time.perf_counter() - started) / max(1, len(rows))
    labels = [r["label"] for r in rows]
    tpr, tnr, accuracy = balanced_accuracy(labels, [r["relevant"] for r in rows])
    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    half = len(scores) // 2
    calibrated: dict[str, float | None] = dict.fromkeys(
        ("threshold", "top_threshold", "heldout_balanced_accuracy"))
    if half:
        high, top = max(((h, t) for h in grid for t in grid if t <= h),
                        key=lambda ht: _accuracy(scores[:half], *ht))
        calibrated = {"threshold": high, "top_threshold": top,
                      "heldout_balanced_accuracy": round(_accuracy(scores[half:], high, top), 3)}
    win = sum(g > w for g, w in scores) / max(1, len(scores))
    report = JudgeReport(len(rows), config.judge_threshold, config.judge_top_threshold, round(tpr, 3),
                         round(tnr, 3), round(accuracy, 3), round(seconds, 2), round(win, 3), calibrated,
                         failed, error)
    return report, rows


AGENT_MODES = ("bare", "none", "theorems", "unsure", "unsure-both", "unsure-none", "examples", "both", "gold")


@dataclass(frozen=True, slots=True)
class BenchMode:
    """One row of the agent benchmark: a graph and the retriever name its runs record."""

    name: str  # one of AGENT_MODES
    graph: Any
    retriever: str


class GoldTheorems:
    """A retriever that knows each benchmark problem's labelled theorem: the ceiling a perfect
    retriever would reach (``gold`` mode; the judge is off, the theorem is given)."""

    name = "gold"

    def __init__(self, corpus: Corpus, gold_by_problem_text: dict[str, str]) -> None:
        self.corpus, self.gold = corpus, gold_by_problem_text

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        gold = self.gold.get(query.text) if query.kind == "problem" else None
        return [Hit(gold, 1.0, 1, "gold")] if gold in self.corpus else []

    def theorem(self, theorem_id: str):
        return self.corpus.get(theorem_id)


def exact_mcnemar(baseline: list[bool], other: list[bool]) -> tuple[int, int, float]:
    """(baseline right and other wrong, baseline wrong and other right, two-sided exact p) over
    paired outcomes: the binomial test on the discordant pairs."""
    lost = sum(b and not o for b, o in zip(baseline, other, strict=True))
    won = sum(o and not b for b, o in zip(baseline, other, strict=True))
    n = lost + won
    tail = sum(math.comb(n, i) for i in range(min(lost, won) + 1)) / 2 ** n if n else 1.0
    return lost, won, min(1.0, 2 * tail)


def run_row(result) -> dict[str, Any]:
    """One benchmark run as a flat row."""
    trajectory = result.trajectory
    judgments = [j for s in trajectory.steps for j in s.judgments]
    return {"mode": (result.job.config or {}).get("bench_mode"), "problem_id": trajectory.problem.id,
            "verified": trajectory.verified, "status": trajectory.status,
            "answered": trajectory.final_answer is not None, "steps": len(trajectory.steps),
            "forced": (trajectory.stop_reason or "").startswith("answer forced"),
            "tokens": trajectory.tokens, "prompt_tokens": trajectory.prompt_tokens,
            "reprocessed_tokens": trajectory.prompt_tokens - trajectory.cached_tokens,
            "retrievals": sum(1 for s in trajectory.steps if s.queries),
            "judged": len(judgments), "relevant": sum(j.relevant for j in judgments),
            "seconds": result.seconds, "llm_seconds": result.llm_seconds, "trajectory_id": trajectory.id}


def paired_outcomes(baseline: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]]
                    ) -> tuple[list[str], int, int, float]:
    """Two modes' runs by problem id: the problems both finished, and ``other``'s lost / won
    against ``baseline`` with the exact McNemar p."""
    shared = sorted(baseline.keys() & other.keys())
    lost, won, p = exact_mcnemar([baseline[i]["verified"] is True for i in shared],
                                 [other[i]["verified"] is True for i in shared])
    return shared, lost, won, p


def summarize_modes(rows: list[dict[str, Any]], modes: list[str]) -> list[dict[str, Any]]:
    """Per mode: accuracy, answered / out of budget, steps, time, tokens, outside-LLM share, and
    an exact McNemar test against ``bare`` on the problems both have finished."""
    by_mode = {mode: {r["problem_id"]: r for r in rows if r["mode"] == mode} for mode in modes}
    summaries = []
    for mode in modes:
        runs = list(by_mode[mode].values())
        n = max(1, len(runs))
        judged = sum(r["judged"] for r in runs)
        seconds = sum(r["seconds"] for r in runs)
        llm_seconds = sum(r["llm_seconds"] for r in runs)
        summary = {
            "mode": mode, "problems": len(runs), "correct": sum(r["verified"] is True for r in runs),
            "accuracy": sum(r["verified"] is True for r in runs) / n,
            "answered": sum(r["answered"] for r in runs) / n,
            "out_of_budget": sum(r["status"] == "budget_exhausted" for r in runs) / n,
            "forced_answers": sum(r.get("forced", False) for r in runs),
            "errors": sum(r["status"] == "error" for r in runs),
            "mean_steps": sum(r["steps"] for r in runs) / n,
            "mean_retrievals": sum(r["retrievals"] for r in runs) / n,
            "judged_relevant_rate": sum(r["relevant"] for r in runs) / judged if judged else None,
            "seconds_per_problem": seconds / n, "tokens_per_problem": sum(r["tokens"] for r in runs) / n,
            "reprocessed_tokens_per_problem": sum(r["reprocessed_tokens"] for r in runs) / n,
            # per run: its wall time minus its time inside chat-model calls
            "outside_llm_share": max(0.0, 1 - llm_seconds / seconds) if seconds else None,
            "vs_bare": None,
        }
        if "bare" in by_mode and mode != "bare":
            shared, lost, won, p = paired_outcomes(by_mode["bare"], by_mode[mode])
            bare_seconds = sum(by_mode["bare"][i]["seconds"] for i in shared)
            mode_seconds = sum(by_mode[mode][i]["seconds"] for i in shared)
            summary["vs_bare"] = {"problems": len(shared), "lost": lost, "won": won, "p": round(p, 4),
                                  "time_ratio": mode_seconds / bare_seconds if bare_seconds else None}
        summaries.append(summary)
    return summaries


def planned(modes: list[BenchMode], problems: list[Problem]) -> set[tuple[str, str]]:
    """The (problem id, mode) pairs a benchmark runs."""
    return {(problem.id, mode.name) for problem in problems for mode in modes}


def bench_agent(modes: list[BenchMode], problems: list[Problem], *, store, model: str, concurrency: int = 1,
                progress: Callable[[int], None] | None = None,
                on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
                done: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run every mode on every problem, problem by problem (so a run cut short leaves paired
    results for all modes), and sum up how each did beside the bare model.

    ``done`` holds the rows of an earlier, interrupted benchmark: those of these problems and
    modes are kept and not run again."""
    rows = [r for r in done or [] if (r["problem_id"], r["mode"]) in planned(modes, problems)]
    finished = {(r["problem_id"], r["mode"]) for r in rows}
    jobs = [Job(mode.graph, problem, config={"bench_mode": mode.name}, retriever=mode.retriever,
                source="bench")
            for problem in problems for mode in modes if (problem.id, mode.name) not in finished]
    for result in run_jobs(jobs, concurrency=concurrency, store=store, model=model, retriever=""):
        if result.trajectory is None:
            raise RaderError(f"problem {result.job.problem.id} did not run: {result.error}")
        rows.append(run_row(result))
        if progress:
            progress(len(rows))
        if on_rows:
            on_rows(rows)
    return {"modes": summarize_modes(rows, [mode.name for mode in modes]), "rows": rows}


def report_dict(report: JudgeReport) -> dict[str, Any]:
    return asdict(report)
