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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from rader.agent.graph import judge_theorem
from rader.agent.records import Problem
from rader.agent.runner import run_problem
from rader.retriever import Corpus, Query, RaderError


@dataclass(frozen=True, slots=True)
class JudgeReport:
    pairs: int
    tpr: float
    tnr: float
    balanced_accuracy: float
    seconds_per_judgment: float
    unparsed: int
    best_threshold: float | None
    best_threshold_balanced_accuracy: float | None


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


def bench_judge(llm, pairs: list[tuple[str, str, bool]], corpus: Corpus,
                progress: Callable[[int], None] | None = None) -> tuple[JudgeReport, list[dict]]:
    labels, predictions, scores, rows, unparsed = [], [], [], [], 0
    started = time.perf_counter()
    for i, (question, theorem_id, label) in enumerate(pairs):
        judgment, _, event = judge_theorem(llm, question, [], corpus.get(theorem_id))
        unparsed += bool(event)
        labels.append(label)
        predictions.append(judgment.relevant)
        scores.append(judgment.score)
        rows.append({"theorem_id": theorem_id, "label": label, **judgment.to_dict()})
        if progress:
            progress(i + 1)
    seconds = (time.perf_counter() - started) / max(1, len(pairs))
    tpr, tnr, accuracy = balanced_accuracy(labels, predictions)
    best = (None, None)
    scored = [(s, label) for s, label in zip(scores, labels, strict=True) if s is not None]
    if scored:
        candidates = sorted({s for s, _ in scored})
        best = max(((t, balanced_accuracy([label for _, label in scored],
                                          [s >= t for s, _ in scored])[2]) for t in candidates),
                   key=lambda item: item[1])
    report = JudgeReport(len(pairs), round(tpr, 3), round(tnr, 3), round(accuracy, 3), round(seconds, 2),
                         unparsed, best[0], None if best[1] is None else round(best[1], 3))
    return report, rows


class LLMTimer(BaseCallbackHandler):
    """Adds up wall time spent inside chat-model calls (LangChain callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._starts: dict[Any, float] = {}

    def on_chat_model_start(self, serialized, messages, *, run_id, **kwargs) -> None:
        self._starts[run_id] = time.perf_counter()

    def on_llm_end(self, response, *, run_id, **kwargs) -> None:
        self.seconds += time.perf_counter() - self._starts.pop(run_id, time.perf_counter())

    on_llm_error = on_llm_end


def load_problems(path: str | Path, limit: int | None) -> list[Problem]:
    path = Path(path)
    if not path.is_file():
        raise RaderError(f"problems file not found: {path}")
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            problems.append(Problem.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            raise RaderError(f"{path}:{number}: not a problem object with id and text") from None
        if limit and len(problems) >= limit:
            break
    return problems


def bench_agent(graph, problems: list[Problem], *, store, model: str, retriever: str,
                progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    timer = LLMTimer()
    rows = []
    started = time.perf_counter()
    for i, problem in enumerate(problems):
        t0 = time.perf_counter()
        trajectory = run_problem(graph, problem, store=store, model=model, retriever=retriever,
                                 graph_config={"callbacks": [timer]})
        judgments = [j for s in trajectory.steps for j in s.judgments]
        rows.append({"problem_id": problem.id, "verified": trajectory.verified, "status": trajectory.status,
                     "steps": len(trajectory.steps), "tokens": trajectory.tokens,
                     "retrievals": sum(1 for s in trajectory.steps if s.hits),
                     "judged": len(judgments), "relevant": sum(j.relevant for j in judgments),
                     "seconds": time.perf_counter() - t0, "trajectory_id": trajectory.id})
        if progress:
            progress(i + 1)
    wall = time.perf_counter() - started
    n = max(1, len(rows))
    judged = sum(r["judged"] for r in rows)
    return {
        "retriever": retriever, "problems": len(rows),
        "accuracy": sum(r["verified"] is True for r in rows) / n,
        "mean_steps": sum(r["steps"] for r in rows) / n,
        "mean_retrievals": sum(r["retrievals"] for r in rows) / n,
        "judged_relevant_rate": sum(r["relevant"] for r in rows) / judged if judged else None,
        "seconds_per_problem": wall / n, "tokens_per_problem": sum(r["tokens"] for r in rows) / n,
        "outside_llm_share": max(0.0, 1 - timer.seconds / wall) if wall else None, "rows": rows,
    }


def report_dict(report: JudgeReport) -> dict[str, Any]:
    return asdict(report)
