"""Stored trajectories -> RaDeR training examples, split by problem, exported three ways.

The RaDeR recipe: a theorem judged relevant to a step of a trajectory whose final answer is
verified is a positive for every query of that step (the model's query, the step itself, its
keywords, the problem on the first step). Theorems retrieved for the step but judged irrelevant
are hard negatives; more are mined from a retriever's top-k, skipping anything judged relevant
anywhere for the same problem and anything the encoder scores within ``margin`` of the positive
(likely false negatives); a negative bearing a positive's name (its twin in another corpus, as
the built-in "Quadratic formula" and TheoremQA's "Quadratic Formula") is dropped too. A human
judgment (from the UI) overrides the model's, and counts on any trajectory, verified or not.
``unverified=True`` relaxes the recipe: the model's verdicts count on every finished run.
Problems with theorem labels (TheoremQA's qrels) need no verification either: a labelled
theorem a step retrieved is that step's positive, and what the judge rejected there its
negatives (the label says which theorem the problem needs, whatever the model then computed).
Each judged passage keeps the judge's P(yes) as a graded label. Theorem ids are taken as the
corpus resolves them, so the ids of entries merged into another (aliases) count as that entry.
Worked examples (solved problems) judged for a step are passages too, given their corpus: a
query whose judged examples include a useful one becomes an example of its own, with the
examples judged useless as its negatives (no mined ones: the miner searches theorems). With a
``writer`` (an LLM), RaDeR's generated queries join them (`rader.training.generate`).

Example:
    >>> examples, report = build_examples(store.iter_trajectories(), corpus)  # doctest: +SKIP
    >>> train, dev = split_by_problem(examples, dev_fraction=0.1)  # doctest: +SKIP
    >>> write_dataset("data/v1", train, dev, report)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from rader.agent.records import FINISHED_STATUSES, Step, Trajectory
from rader.retriever import Corpus, Encoder, Query, RaderError, Retriever, hash_fraction, twin_key
from rader.training.cards import write_dataset_card
from rader.training.examples import Passage, TrainingExample, negative_columns, passage_text
from rader.training.formats import write_beir, write_jsonl
from rader.training.generate import GeneratedQuery, PositiveContext, QueryWriter, generate_queries

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    trajectories: int = 0
    verified_trajectories: int = 0
    human_judgments: int = 0
    unknown_theorems: int = 0  # judged ids missing from the corpora (a different corpus was in force)
    mined_negatives: int = 0
    mined_dropped_as_likely_positive: int = 0
    twin_negatives_dropped: int = 0  # negatives named as a positive of theirs (a twin from another corpus)
    duplicates_merged: int = 0
    held_out_theorems: int = 0  # theorem ids kept out of the data (an evaluation set's)
    held_out_dropped: int = 0  # positives and negatives dropped for being held out
    labelled_runs: int = 0  # runs on problems with theorem labels (their verdicts need no verification)
    benchmark_runs: int = 0  # `rader bench agent` runs: measurements on held-out problems, never data
    generated: dict[str, int] = field(default_factory=dict)  # the LLM pass: asked, cached, dropped
    stats: dict[str, Any] = field(default_factory=dict)


class Verdict(NamedTuple):
    relevant: bool
    judge: str  # "model", "human" or "label" (the problem's labelled theorem, retrieved)
    score: float | None  # the judge's P(yes); a human's verdict or a label counts as 1.0 or 0.0


def _same(theorem_id: str) -> str:
    return theorem_id


def step_verdicts(step: Step, verified: bool | None, *, unverified: bool = False,
                  resolve: Callable[[str], str] = _same,
                  labelled: frozenset[str] = frozenset()) -> dict[str, Verdict]:
    """theorem id (as ``resolve`` maps it) -> verdict, for the judgments that count: a human's on
    any run, the model's only on runs whose answer is verified (on every finished run with
    ``unverified``); a human's wins over the model's, and between the model's, "relevant" wins.
    ``labelled``, the problem's labelled theorems (ids as ``resolve`` maps them): those the step
    retrieved are relevant on any run, and the model's "irrelevant" for the others counts too."""
    verdicts = {t: Verdict(True, "label", 1.0)
                for t in (resolve(hit.theorem_id) for hit in step.hits) if t in labelled}
    counts = verified is True or unverified
    for judgment in step.judgments:
        theorem_id = resolve(judgment.theorem_id)
        held = verdicts.get(theorem_id)
        if judgment.judge == "human":
            verdicts[theorem_id] = Verdict(judgment.relevant, "human", float(judgment.relevant))
        elif (held and held.judge != "model") or not (counts or (labelled and not judgment.relevant)):
            continue  # a human's verdict and a label are final
        elif held is None or judgment.relevant or not held.relevant:  # between the model's, "relevant" wins
            verdicts[theorem_id] = Verdict(judgment.relevant, "model", judgment.score)
    return verdicts


def _normalise(text: str) -> str:
    return " ".join(text.split()).lower()


class _Draft:
    """An example being gathered: positives and negatives by id, with where they came from."""

    def __init__(self, query: Query, problem_id: str) -> None:
        self.query, self.problem_id = query, problem_id
        self.positives: dict[str, str] = {}  # id -> judge
        self.negatives: dict[str, str] = {}
        self.scores: dict[str, list[float]] = defaultdict(list)  # id -> P(yes) of each judgment
        self.provenance: list[dict[str, Any]] = []

    def add(self, verdicts: dict[str, Verdict]) -> None:
        for theorem_id, (relevant, judge, score) in verdicts.items():
            held = self.positives.get(theorem_id) or self.negatives.get(theorem_id)
            if held == "human" and judge != "human":
                continue  # a human's verdict on this query is final
            if judge == "human":
                self.scores[theorem_id].clear()
            if score is not None:
                self.scores[theorem_id].append(score)
            if relevant:
                self.positives[theorem_id] = judge
                self.negatives.pop(theorem_id, None)
            elif judge == "human" or theorem_id not in self.positives:  # between models, "relevant" wins
                self.positives.pop(theorem_id, None)
                self.negatives[theorem_id] = judge


def gather_drafts(trajectories: Iterable[Trajectory], report: BuildReport, *, unverified: bool = False,
                  resolve: Callable[[str], str] = _same, contexts: list[PositiveContext] | None = None,
                  labels: dict[str, set[str]] | None = None) -> tuple[dict[tuple, _Draft], dict]:
    """One draft per (problem, query kind, query text); also every theorem judged relevant per
    problem, and (into ``contexts``) each judged positive with the solution before its step
    (a label is no judgment of a retrieval, so RaDeR's generated queries are not written for it).
    ``labels``: problem id -> its labelled theorem ids."""
    labels = labels or {}
    drafts: dict[tuple[str, str, str], _Draft] = {}
    relevant_for_problem: dict[str, set[str]] = defaultdict(set)
    for trajectory in trajectories:
        report.trajectories += 1
        report.verified_trajectories += trajectory.verified is True
        if trajectory.status not in FINISHED_STATUSES:
            continue  # never learn from half a run
        if trajectory.source == "bench":
            report.benchmark_runs += 1  # its problems are a benchmark's (and "gold" mode was handed
            continue  # the answer's theorem): learning from them would leak the test into training
        labelled = frozenset(resolve(t) for t in labels.get(trajectory.problem.id, ()))
        report.labelled_runs += bool(labelled)
        for step in trajectory.steps:
            report.human_judgments += sum(j.judge == "human" for j in step.judgments)
            verdicts = step_verdicts(step, trajectory.verified, unverified=unverified, resolve=resolve,
                                     labelled=labelled)
            if not verdicts:
                continue
            relevant_for_problem[trajectory.problem.id].update(t for t, v in verdicts.items() if v.relevant)
            if contexts is not None:
                contexts.extend(_positive_contexts(
                    trajectory, step, {t: v for t, v in verdicts.items() if v.judge != "label"}))
            for query in step.queries:
                key = (trajectory.problem.id, query.kind, _normalise(query.text))
                if key in drafts:
                    report.duplicates_merged += 1
                draft = drafts.setdefault(key, _Draft(query, trajectory.problem.id))
                draft.add(verdicts)
                draft.provenance.append({"trajectory_id": trajectory.id, "step_index": step.index})
    return drafts, relevant_for_problem


def _positive_contexts(trajectory: Trajectory, step: Step,
                       verdicts: dict[str, Verdict]) -> list[PositiveContext]:
    before = "\n\n".join(s.thought for s in trajectory.steps if s.index < step.index and s.thought)
    negatives = tuple(t for t, v in verdicts.items() if not v.relevant)
    return [PositiveContext(trajectory.problem.id, trajectory.problem.text, before, theorem_id, negatives,
                            {"trajectory_id": trajectory.id, "step_index": step.index})
            for theorem_id, verdict in verdicts.items() if verdict.relevant]


def _add_generated(drafts: dict[tuple, _Draft], generated: list[GeneratedQuery]) -> None:
    """Generated queries as drafts: the positive they were written for, their step's negatives."""
    for item in generated:
        key = (item.problem_id, item.query.kind, _normalise(item.query.text))
        draft = drafts.setdefault(key, _Draft(item.query, item.problem_id))
        draft.add({item.positive: Verdict(True, "model", None),
                   **{t: Verdict(False, "model", None) for t in item.negatives}})
        draft.provenance.append(item.provenance)


def likely_positives(encoder: Encoder, rows: list[tuple[Query, list[Passage], list[Passage]]],
                      margin: float, *, show_progress: bool = False) -> list[list[bool]]:
    """Per (query, positives, candidates) row: True for candidates the encoder scores within
    ``margin`` (relative) of the row's best positive. Every query and every distinct passage is
    encoded once, in batches, however many rows share it."""
    passages = {p.docid: p for _, positives, candidates in rows for p in (*positives, *candidates)}
    position = {docid: i for i, docid in enumerate(passages)}
    texts = [passage_text(p) for p in passages.values()]
    vectors = encoder.encode_documents(texts, show_progress=show_progress)
    query_vectors = encoder.encode_queries([query for query, _, _ in rows])
    flags = []
    for query_vector, (_, positives, candidates) in zip(query_vectors, rows, strict=True):
        scores = vectors[[position[p.docid] for p in (*positives, *candidates)]] @ query_vector
        best_positive = float(scores[: len(positives)].max())
        flags.append([float(s) > best_positive * (1 - margin) for s in scores[len(positives):]])
    return flags


def build_examples(trajectories: Iterable[Trajectory], corpus: Corpus, *, miner: Retriever | None = None,
                   encoder: Encoder | None = None, mine_depth: int = 10, mined_per_query: int = 3,
                   margin: float = 0.05, unverified: bool = False, held_out: Iterable[str] = (),
                   writer: QueryWriter | None = None, lexical_check: Retriever | None = None,
                   worked_examples: Corpus | None = None, labels: dict[str, set[str]] | None = None,
                   show_progress: bool = False) -> tuple[list[TrainingExample], BuildReport]:
    """Training examples from ``trajectories``; ``miner`` adds mined negatives, ``encoder`` guards them.
    ``unverified`` also takes the judge's verdicts from runs whose answer is wrong or missing
    (more data when verified runs are scarce, at the price of noisier positives). Theorems in
    ``held_out`` (an evaluation set's) never enter the data, as positive or negative: a query
    left without a positive gives no example. ``writer`` adds RaDeR's generated queries (its
    lexical ones kept when ``lexical_check``, a BM25 retriever, finds their theorem again).
    ``worked_examples``, the worked-example corpus the runs retrieved from, turns their judged
    examples into examples too (pass it to `write_dataset` as well). ``labels`` (problem id ->
    theorem ids, e.g. TheoremQA's qrels) lets runs on labelled problems count unverified: the
    labelled theorems they retrieved are positives, the ones the judge rejected negatives."""
    def resolve(theorem_id: str) -> str:  # an alias (a merged-away entry's id) -> the entry's id
        return corpus.get(theorem_id).id if theorem_id in corpus else theorem_id

    held_out = {resolve(t) for t in held_out}
    report = BuildReport(held_out_theorems=len(held_out))
    contexts: list[PositiveContext] | None = [] if writer is not None else None
    by_key, relevant_for_problem = gather_drafts(trajectories, report, unverified=unverified, resolve=resolve,
                                                 contexts=contexts, labels=labels)
    if writer is not None:
        if lexical_check is None:
            raise RaderError("generated lexical queries need a BM25 retriever to check them")
        theorem_contexts = [c for c in contexts if c.theorem_id in corpus]  # RaDeR writes for theorems
        _add_generated(by_key, generate_queries(theorem_contexts, corpus.get, writer, lexical_check,
                                                show_progress=show_progress))
        report.generated = writer.report.to_dict()
    drafts = [d for d in by_key.values() if d.positives]
    sources = [corpus] if worked_examples is None else [corpus, worked_examples]

    def source_of(passage_id: str) -> Corpus | None:  # a theorem first, else a worked example
        return next((source for source in sources if passage_id in source), None)

    rows: list[tuple[_Draft, list[Passage], list[Passage], list[Passage]]] = []
    for draft in drafts:
        judged = [*draft.positives, *draft.negatives]
        report.unknown_theorems += sum(source_of(t) is None for t in judged)
        report.held_out_dropped += sum(t in held_out for t in judged)
        for source in sources:  # a theorem's row, a worked example's row: never one mixing both
            usable = {t for t in judged if t not in held_out and source_of(t) is source}
            positives = [Passage.of(source.get(t)) for t in draft.positives if t in usable]
            if positives:
                negatives = [Passage.of(source.get(t)) for t in draft.negatives if t in usable]
                rows.append((draft, positives, negatives, []))
    theorem_rows = [row for row in rows if row[1][0].docid in corpus]  # the miner searches theorems only
    if miner is not None and mined_per_query and theorem_rows:
        taken = [{*draft.positives, *draft.negatives, *relevant_for_problem[draft.problem_id], *held_out}
                 for draft, *_ in theorem_rows]
        found = mine_candidates(miner, [draft.query for draft, *_ in theorem_rows], taken, depth=mine_depth,
                                show_progress=show_progress)
        for (*_, mined), candidates in zip(theorem_rows, found, strict=True):
            mined.extend(candidates)
    if encoder is not None and any(mined for *_, mined in rows):
        flags = likely_positives(encoder, [(d.query, pos, mined) for d, pos, _, mined in rows], margin,
                                 show_progress=show_progress)
        for (*_, mined), close in zip(rows, flags, strict=True):
            report.mined_dropped_as_likely_positive += sum(close)
            mined[:] = [c for c, is_close in zip(mined, close, strict=True) if not is_close]
    examples = []
    for draft, positives, negatives, mined in rows:
        names = {name for p in positives if (name := twin_key(p.title))}
        kept = [p for p in negatives if twin_key(p.title) not in names]
        mined_kept = [p for p in mined if twin_key(p.title) not in names]
        report.twin_negatives_dropped += len(negatives) - len(kept) + len(mined) - len(mined_kept)
        negatives, mined = kept, mined_kept[:mined_per_query]
        report.mined_negatives += len(mined)
        scores = {p.docid: round(fmean(draft.scores[p.docid]), 4) for p in (*positives, *negatives)
                  if draft.scores.get(p.docid)}
        examples.append(TrainingExample(draft.query.text, draft.query.kind, positives, negatives + mined,
                                        draft.problem_id, draft.provenance, scores))
    report.stats = dataset_stats(examples, corpus)
    return examples, report


def mine_candidates(miner: Retriever, queries: list[Query], taken: list[set[str]], *, depth: int,
                    batch_size: int = 256, show_progress: bool = False) -> list[list[Passage]]:
    """Per query, the miner's top ``depth`` minus that query's ``taken`` ids (positives, known
    negatives, anything judged relevant for its problem); queries are searched in batches."""
    found = []
    for start in tqdm(range(0, len(queries), batch_size), desc="mining negatives", unit="batch",
                      disable=not show_progress):
        rankings = miner.search_many(queries[start:start + batch_size], k=depth)
        for hits, skip in zip(rankings, taken[start:start + batch_size], strict=True):
            found.append([Passage.of(miner.theorem(h.theorem_id)) for h in hits if h.theorem_id not in skip])
    return found


def split_by_problem(examples: list[TrainingExample], *, dev_fraction: float = 0.1,
                     seed: int = 0) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """Train/dev by a seeded hash of the problem id: a problem's examples stay on one side."""
    if not 0 <= dev_fraction < 1:
        raise RaderError(f"dev fraction must be in [0, 1), got {dev_fraction}")

    dev = [e for e in examples if hash_fraction(e.problem_id, seed) < dev_fraction]
    train = [e for e in examples if hash_fraction(e.problem_id, seed) >= dev_fraction]
    return train, dev


def dataset_stats(examples: list[TrainingExample], corpus: Corpus) -> dict[str, Any]:
    """Counts of a split; positives outside the theorem ``corpus`` are worked examples."""
    n = max(1, len(examples))
    positive_ids = {p.docid for e in examples for p in e.positives if p.docid in corpus}
    return {
        "examples": len(examples),
        "examples_per_kind": dict(Counter(e.query_kind for e in examples)),
        "problems": len({e.problem_id for e in examples}),
        "positives_per_query": round(sum(len(e.positives) for e in examples) / n, 3),
        "negatives_per_query": round(sum(len(e.negatives) for e in examples) / n, 3),
        "distinct_positive_theorems": len(positive_ids),
        "corpus_coverage": round(len(positive_ids) / max(1, len(corpus)), 4),
        "worked_example_examples": sum(e.positives[0].docid not in corpus for e in examples),
    }


def _dataset_corpus(corpus: Corpus, worked_examples: Corpus | None,
                   examples: Iterable[TrainingExample]) -> Corpus:
    """The theorem corpus plus the worked examples that ``examples`` use (not all of them):
    what a dataset's BEIR ``corpus.jsonl`` holds so that its qrels resolve."""
    if worked_examples is None:
        return corpus
    used = {p.docid for e in examples for p in (*e.positives, *e.negatives) if p.docid not in corpus}
    picked = [t for t in worked_examples if t.id in used]
    return Corpus.merge([corpus, Corpus(picked, name=worked_examples.name)]) if picked else corpus


def _write_parquet(path: Path, rows: list[dict[str, Any]], columns: dict[str, str]) -> None:
    """Rows as a Parquet table with these columns (name -> dtype); an empty table keeps them."""
    from datasets import Dataset, Features, Value

    features = Features({name: Value(dtype) for name, dtype in columns.items()})
    Dataset.from_dict({c: [row[c] for row in rows] for c in columns}, features=features).to_parquet(str(path))


def row_width(train: list[TrainingExample], dev: list[TrainingExample], max_negatives: int | None) -> int:
    """Hard negatives per n-tuple row: the most any training query has (any dev query's when there
    is no training data), at most ``max_negatives``. Dev rows take the same width because
    `datasets` loads a config's splits under one schema."""
    widest = max((len(e.negatives) for e in (train or dev)), default=0)
    return min(widest, max_negatives if max_negatives is not None else widest)


def write_dataset(out: str | Path, train: list[TrainingExample], dev: list[TrainingExample],
                  report: BuildReport, *, corpus: Corpus, max_negatives: int | None = None,
                  meta: dict[str, Any] | None = None, license: str = "other",
                  worked_examples: Corpus | None = None) -> Path:
    """Write examples, Tevatron JSON Lines, sentence-transformers Parquet, BEIR files, stats, a card.

    ``{split}.parquet`` holds InfoNCE n-tuples (anchor, positive, negative_1..negative_n), n being
    `row_width`; ``{split}.graded.parquet`` the judged pairs (anchor, positive, negative, label) of
    a graded loss; ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/{split}.tsv`` are a BEIR dataset
    (`rader.training.formats`; with the ``worked_examples`` the data uses), and ``README.md`` a
    Hugging Face dataset card under ``license`` whose configs `datasets.load_dataset` reads
    (`rader.training.cards`). The folder is written beside its final name and renamed into
    place, so a crash never leaves a half dataset under ``out``.
    """
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # one bar per tiny Parquet write is noise
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a crashed build's leftovers (an old layout's files)
    partial.mkdir(parents=True)
    named_splits = {split: [(f"{split}-{i}", e) for i, e in enumerate(examples)]
                    for split, examples in (("train", train), ("dev", dev))}
    write_beir(partial, _dataset_corpus(corpus, worked_examples, [*train, *dev]), named_splits)
    n = row_width(train, dev, max_negatives)
    shapes = {}
    for split, named in named_splits.items():
        examples = [e for _, e in named]
        write_jsonl(partial / f"{split}.examples.jsonl", (e.to_dict() for e in examples))
        write_jsonl(partial / f"{split}.tevatron.jsonl", (e.to_tevatron(q) for q, e in named))
        ntuples = [row for e in examples for row in e.ntuples(n)]
        _write_parquet(partial / f"{split}.parquet", ntuples,
                       dict.fromkeys(["anchor", "positive", *negative_columns(n)], "string"))
        judged = [row for e in examples for row in e.judged_pairs()]
        _write_parquet(partial / f"{split}.graded.parquet", judged,
                       {"anchor": "string", "positive": "string", "negative": "string", "label": "float32"})
        shapes[split] = {"rows": len(ntuples), "negatives_per_row": n, "judged_pairs": len(judged),
                         "rows_repeating_negatives": sum(len(e.positives) for e in examples
                                                         if 0 < len(e.negatives) < n),
                         "rows_without_negatives": sum(len(e.positives) for e in examples if not e.negatives)}
    stats = {split: dataset_stats(examples, corpus) | shapes[split]
             for split, examples in (("train", train), ("dev", dev))}
    stats |= {"build": {k: v for k, v in asdict(report).items() if k != "stats"}, **(meta or {})}
    (partial / "stats.json").write_text(json.dumps(stats, indent=2))
    write_dataset_card(partial, name=out.name, stats=stats, license=license)
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out


def load_examples(folder: str | Path, split: str = "train") -> list[TrainingExample]:
    path = Path(folder) / f"{split}.examples.jsonl"
    if not path.is_file():
        raise RaderError(f"no {split} examples in {folder} (expected {path.name}; run `rader dataset build`)")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [TrainingExample.from_dict(json.loads(line)) for line in lines if line.strip()]
