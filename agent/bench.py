"""`rader bench judge` and `rader bench agent`: measure the judge and the whole agent.

- judge: each TheoremQA dev question with its gold theorem (should be judged relevant) and
  with BM25's best-ranked wrong theorem (should not): TPR, TNR, balanced accuracy, seconds
  per judgment, and the best balanced accuracy a threshold on the verdict score reaches.
- agent: MATH-style problems with gold answers, with retrieval and without: accuracy by
  math-verify, mean steps, retrievals, judged-relevant rate, seconds and tokens per
  problem, and the share of wall time spent outside the LLM.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rader.agent.batch import Job, run_jobs
from rader.agent.graph import judge_hits
from rader.agent.records import Problem
from rader.agent.state import AgentConfig
from rader.retriever import Corpus, Query, RaderError


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
    """Judge each question's (gold, wrong) theorems together, as the graph judges a step's hits."""
    rows, scores = [], []
    started = time.perf_counter()
    for i in range(0, len(pairs), 2):
        (question, gold_id, _), (_, wrong_id, _) = pairs[i], pairs[i + 1]
        judgments, _, _ = judge_hits(llm, question, [], [corpus.get(gold_id), corpus.get(wrong_id)], config)
        scores.append((judgments[0].score, judgments[1].score))
        rows += [{"label": label, **j.to_dict()} for label, j in zip((True, False), judgments, strict=True)]
        if progress:
            progress(i + 2)
    seconds = (time.perf_counter() - started) / max(1, len(pairs))
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
                         round(tnr, 3), round(accuracy, 3), round(seconds, 2), round(win, 3), calibrated)
    return report, rows


def load_problems(path: str | Path, limit: int | None, *, shuffle_seed: int | None = None,
                  levels: set[int] | None = None,
                  where: Callable[[dict], bool] | None = None) -> list[Problem]:
    """Problems from a JSON Lines file (of ``levels`` only and rows ``where`` accepts, when
    given); the first ``limit``, or ``limit`` drawn with a seed. Rows that name a ``picture``
    (TheoremQA's figures, which the data does not include) are left out: the agent reads text."""
    path = Path(path)
    if not path.is_file():
        raise RaderError(f"problems file not found: {path}")
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problem = Problem.from_dict(row)
        except (ValueError, KeyError, TypeError):
            raise RaderError(f"{path}:{number}: not a problem object with id and text") from None
        if row.get("picture") or (levels and row.get("level") not in levels) or (where and not where(row)):
            continue
        problems.append(problem)
        if limit and len(problems) >= limit and shuffle_seed is None:
            break
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(problems)
    return problems[:limit] if limit else problems


def bench_agent(graph, problems: list[Problem], *, store, model: str, retriever: str, concurrency: int = 1,
                progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run ``graph`` on ``problems`` (``concurrency`` at a time) and sum up how it did."""
    rows = []
    started = time.perf_counter()
    jobs = [Job(graph, problem) for problem in problems]
    for result in run_jobs(jobs, concurrency=concurrency, store=store, model=model, retriever=retriever):
        trajectory = result.trajectory
        if trajectory is None:
            raise RaderError(f"problem {result.job.problem.id} did not run: {result.error}")
        judgments = [j for s in trajectory.steps for j in s.judgments]
        rows.append({"problem_id": trajectory.problem.id, "verified": trajectory.verified,
                     "status": trajectory.status, "steps": len(trajectory.steps), "tokens": trajectory.tokens,
                     "retrievals": sum(1 for s in trajectory.steps if s.hits),
                     "judged": len(judgments), "relevant": sum(j.relevant for j in judgments),
                     "seconds": result.seconds, "llm_seconds": result.llm_seconds,
                     "trajectory_id": trajectory.id})
        if progress:
            progress(len(rows))
    wall = time.perf_counter() - started
    n = max(1, len(rows))
    judged = sum(r["judged"] for r in rows)
    run_seconds = sum(r["seconds"] for r in rows)
    return {
        "retriever": retriever, "problems": len(rows), "concurrency": concurrency,
        "accuracy": sum(r["verified"] is True for r in rows) / n,
        "mean_steps": sum(r["steps"] for r in rows) / n,
        "mean_retrievals": sum(r["retrievals"] for r in rows) / n,
        "judged_relevant_rate": sum(r["relevant"] for r in rows) / judged if judged else None,
        "seconds_per_problem": wall / n, "tokens_per_problem": sum(r["tokens"] for r in rows) / n,
        # per run: its wall time minus its time inside chat-model calls (valid under concurrency)
        "outside_llm_share": max(0.0, 1 - sum(r["llm_seconds"] for r in rows) / run_seconds)
        if run_seconds else None,
        "rows": rows,
    }


def report_dict(report: JudgeReport) -> dict[str, Any]:
    return asdict(report)
