"""Does the judge pick the right theorem among a retrieval's hits better than the retriever's order?

    RADER_CORPORA='["theoremqa"]' python benchmarks/judge_vs_rank.py run judge_vs_rank.json
    python benchmarks/judge_vs_rank.py score judge_vs_rank.json

``run``: for each held-out TheoremQA question (half of the theorems by a seeded hash, no
pictures, the agent benchmark's draw), the agent's retriever (settings; hybrid by default) takes
its top 3 theorems for the problem text and the agent's judge scores each (P(yes), no solution
written yet, the agent's config); each hit is recorded with its rank, score, whether it is the
labelled theorem and whether today's rule admits it. The file is rewritten after every question.
``score``: on the questions whose labelled theorem is among the 3, how often each admission rule
would pick it (the judge's best P(yes), which the agent uses today; the retriever's rank 1; rank
1 unless the judge prefers another by a margin), with an exact sign test against the judge.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from scipy.stats import binomtest

SHARED = Path(os.environ.get("RADER_SHARED_DATA", "../shared/data"))


def run(out: Path, limit: int | None, k: int) -> None:
    from tqdm import tqdm

    from rader.agent.judge import judge_hits
    from rader.agent.problems import load_problems
    from rader.app.settings import load_settings
    from rader.app.wiring import agent_from_settings
    from rader.retriever import HeldOut, Query, load_qrels

    qrels = load_qrels(SHARED / "qrels/theoremqa_dev.qrels.tsv")
    problems = load_problems(SHARED / "problems/theoremqa_dev.jsonl", limit, shuffle_seed=0,
                             where=HeldOut("theorem", 0.5).holds)
    settings, _ = load_settings()
    parts = agent_from_settings(settings, retriever=settings.agent.retriever, examples="none")
    records = []
    for problem in tqdm(problems, desc="questions"):
        hits = parts.retriever.search(Query(problem.text, "problem"), k=k)
        items = [parts.retriever.theorem(hit.theorem_id) for hit in hits]
        judgments, _, _ = judge_hits(parts.aux_llm or parts.llm, problem.text, [], items, parts.config)
        gold = set(qrels.get(problem.id, {}))
        records.append({"problem": problem.id, "hits": [
            {"theorem": hit.theorem_id, "rank": hit.rank, "p_yes": verdict.score,
             "gold": hit.theorem_id in gold, "admitted": verdict.relevant}
            for hit, verdict in zip(hits, judgments, strict=True)]})
        out.write_text(json.dumps(records, indent=1))


def by_judge(hits: list[dict]) -> dict:
    return max(hits, key=lambda hit: hit["p_yes"])


def by_rank(hits: list[dict]) -> dict:
    return hits[0]


def rank_unless(margin: float):
    def pick(hits: list[dict]) -> dict:
        best = by_judge(hits)
        return best if best["p_yes"] - hits[0]["p_yes"] > margin else hits[0]
    return pick


RULES = {"judge's best P(yes) (today)": by_judge, "rank 1": by_rank,
         **{f"rank 1 unless the judge prefers another by > {m}": rank_unless(m) for m in (0.1, 0.2, 0.3)}}


def score(path: Path) -> None:
    records = json.loads(path.read_text())
    found = [sorted(r["hits"], key=lambda hit: hit["rank"]) for r in records]
    found = [hits for hits in found if any(hit["gold"] for hit in hits)]
    admitted = [hit for r in records for hit in r["hits"] if hit["admitted"]]
    print(f"{len(records)} questions; the labelled theorem among the hits for {len(found)}; today's rule "
          f"admitted {len(admitted)} theorems, {sum(hit['gold'] for hit in admitted)} of them labelled")
    print("| rule | labelled theorem picked | first half / second half | vs the judge: better / worse (p) |")
    print("|---|---:|---:|---|")
    half = len(found) // 2
    judged = [by_judge(hits)["gold"] for hits in found]
    for name, rule in RULES.items():
        right = [rule(hits)["gold"] for hits in found]
        better = sum(r and not j for r, j in zip(right, judged, strict=True))
        worse = sum(j and not r for r, j in zip(right, judged, strict=True))
        p = binomtest(better, better + worse).pvalue if better + worse else None
        versus = f"{better} / {worse} (p {p:.3f})" if p is not None else "–"
        halves = f"{sum(right[:half])} / {sum(right[half:])}"
        print(f"| {name} | {sum(right)}/{len(found)} | {halves} | {versus} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["run", "score"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="first N questions of the draw")
    parser.add_argument("-k", type=int, default=3, help="theorems judged per question (the agent's k)")
    args = parser.parse_args()
    if args.command == "run":
        run(args.file, args.limit, args.k)
    score(args.file)


if __name__ == "__main__":
    main()
