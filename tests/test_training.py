"""Training data and training: RaDeR examples from stored trajectories, a real fine-tune of the
bundled MiniLM (full and LoRA), resume after a real kill, registration and selection by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import copy_model
from huggingface_hub import ModelCard
from test_cli import rader

from rader.agent import Judgment, Problem, Step, Trajectory, TrajectoryStore
from rader.retriever import (
    Corpus,
    HeldOut,
    Hit,
    Query,
    Theorem,
    builtin_corpus,
    load_encoder,
    load_qrels,
    open_retriever,
)
from rader.training.dataset import (
    build_examples,
    likely_positives,
    load_examples,
    split_by_problem,
    write_dataset,
)
from rader.training.examples import Passage, TrainingExample, negative_columns, passage_text
from rader.training.train import MANIFEST, TrainConfig, train_encoder

CORPUS = builtin_corpus()
IDS = CORPUS.ids


def trajectory(problem_id: str, steps: list[Step], *, verified: bool | None,
               status: str = "done") -> Trajectory:
    run = Trajectory.start(Problem(problem_id, f"problem {problem_id}", answer="1"), model="m",
                           retriever="hybrid")
    run.steps, run.verified, run.status = steps, verified, status
    return run


def p_yes(relevant: bool, rank: int) -> float:
    """The fixture judge's P(yes): high for relevant, low for not, a little lower further down."""
    return round((0.85 if relevant else 0.35) - 0.05 * (rank - 1), 2)


def step(index: int, queries: list[tuple[str, str]], verdicts: dict[str, bool]) -> Step:
    return Step(index, f"thought {index}", queries=[Query(text, kind) for text, kind in queries],
                hits=[Hit(t, 1.0, r, "hybrid") for r, t in enumerate(verdicts, start=1)],
                judgments=[Judgment(t, relevant, "why", score=p_yes(relevant, r))
                           for r, (t, relevant) in enumerate(verdicts.items(), start=1)])


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A store holding the cases the builder must tell apart."""
    a, b, c, d, e, f = IDS[:6]
    store = TrajectoryStore(tmp_path_factory.mktemp("store") / "t.db")
    first = trajectory("p1", [
        step(1, [("problem p1", "problem"), ("Sum of Roots", "llm_query"), ("roots sum", "lexical")],
             {a: True, b: False}),
        step(2, [("the second step of p1", "cot_step")], {c: True}),
    ], verified=True)
    again = trajectory("p1", [step(1, [("  sum of   roots ", "llm_query")], {b: True})], verified=True)
    wrong = trajectory("p2", [step(1, [("wrong run query", "llm_query")], {d: True, e: False})],
                       verified=False)
    cut = trajectory("p3", [step(1, [("cut run query", "llm_query")], {f: True})], verified=True,
                     status="interrupted")
    many = [trajectory(f"q{i}", [step(1, [(f"query {i}", "llm_query"), (f"step {i}", "cot_step")],
                                      {IDS[10 + i]: True, IDS[40 + i]: False,
                                       **({IDS[70 + i]: False} if i % 2 else {})})], verified=True)
            for i in range(12)]
    for run in (first, again, wrong, cut, *many):
        store.save(run)
    store.add_human_judgment(first.id, 2, Judgment(c, False, "did not help", judge="human"))
    store.add_human_judgment(wrong.id, 1, Judgment(e, True, "this one helped", judge="human"))
    return store


def by_query(examples):
    return {(" ".join(e.query.split()).lower(), e.query_kind): e for e in examples}  # as the builder merges


def test_examples_follow_the_raderr_rules(stored):
    a, b, e = IDS[0], IDS[1], IDS[4]
    examples, report = build_examples(stored.iter_trajectories(), CORPUS)
    found = by_query(examples)
    # verified run: relevant -> positive for every query kind of the step, irrelevant -> negative;
    # the same query in a second sample merges, and "relevant" wins between model verdicts
    assert {kind for text, kind in found if text in ("problem p1", "sum of roots", "roots sum")} == {
        "problem", "llm_query", "lexical"}
    merged = found[("sum of roots", "llm_query")]
    assert {p.docid for p in merged.positives} == {a, b} and not merged.negatives
    # graded labels: the judge's P(yes), averaged over the judgments merged (b: 0.30 then 0.85)
    assert merged.scores == {a: 0.85, b: 0.575}
    assert report.duplicates_merged == 1
    assert [n.docid for n in found[("problem p1", "problem")].negatives] == [b]
    # the human said c did not help step 2: no positive left, so no example
    assert ("the second step of p1", "cot_step") not in found
    # an unverified run counts only its human judgment
    wrong = found[("wrong run query", "llm_query")]
    assert [p.docid for p in wrong.positives] == [e] and not wrong.negatives
    assert wrong.scores == {e: 1.0}  # a human's verdict is a certain label
    # an interrupted run never becomes data
    assert ("cut run query", "llm_query") not in found
    assert report.human_judgments == 2 and report.trajectories == 16
    assert all(e.provenance and e.provenance[0]["step_index"] >= 1 for e in examples)
    # relaxed: the judge's verdicts count on the wrong run too, but the human's still wins
    # and the interrupted run still never counts
    relaxed = by_query(build_examples(stored.iter_trajectories(), CORPUS, unverified=True)[0])
    wrong = relaxed[("wrong run query", "llm_query")]
    assert {p.docid for p in wrong.positives} == {IDS[3], e} and not wrong.negatives
    assert ("cut run query", "llm_query") not in relaxed


def test_mined_negatives_skip_positives_and_likely_positives(stored, tmp_path, encoder):
    bm25 = open_retriever("bm25", CORPUS, home=tmp_path, show_progress=False)
    examples, report = build_examples(stored.iter_trajectories(), CORPUS, miner=bm25, encoder=encoder,
                                      mined_per_query=2, margin=0.05)
    judged = {(e.query, e.query_kind): {n.docid for n in e.negatives}
              for e in build_examples(stored.iter_trajectories(), CORPUS)[0]}
    relevant_p1 = set(IDS[:2])  # judged relevant to some step of p1: never a mined negative for p1
    for example in examples:
        ids = [p.docid for p in example.negatives]
        assert len(ids) == len(set(ids))
        assert not set(ids) & {p.docid for p in example.positives}
        mined = set(ids) - judged[(example.query, example.query_kind)]
        assert len(mined) <= 2
        if example.problem_id == "p1":
            assert not mined & relevant_p1
    assert any(example.problem_id == "p1" for example in examples)  # the check above ran
    assert report.mined_negatives > 0
    # margin 1: anything the encoder scores above zero counts as a likely positive and is dropped
    _, strict = build_examples(stored.iter_trajectories(), CORPUS, miner=bm25, encoder=encoder,
                               mined_per_query=2, margin=1.0)
    assert strict.mined_dropped_as_likely_positive > report.mined_dropped_as_likely_positive
    assert strict.mined_negatives < report.mined_negatives


def test_a_positives_twin_from_another_corpus_is_no_negative():
    """Harvests search the built-in corpus and TheoremQA's together: the judge may call TheoremQA's
    "Quadratic Formula" relevant and the built-in "Quadratic formula" not, and the twin must not
    train as a negative of the theorem it is."""
    twin = Theorem("tqa_thm/quadratic_formula", "Quadratic Formula",
                   "The Quadratic Formula gives the roots of ax^2 + bx + c = 0.")
    corpus = Corpus([*CORPUS.theorems, twin], name="builtin+theoremqa")
    other = IDS[5]
    run = trajectory("p9", [step(1, [("roots of x^2 - 5x + 6", "llm_query")],
                                 {twin.id: True, "rader/algebra/quadratic_formula": False, other: False})],
                     verified=True)
    (example,), report = build_examples([run], corpus)
    assert [p.docid for p in example.positives] == [twin.id]
    assert [n.docid for n in example.negatives] == [other]
    assert set(example.scores) == {twin.id, other}  # no graded pair against the twin either
    assert report.twin_negatives_dropped == 1


def test_guard_encodes_once_yet_scores_each_query_against_its_own_positive(encoder):
    passages = [Passage.of(CORPUS.get(t)) for t in IDS[:5]]
    rows = [(Query("sum of an arithmetic series", "llm_query"), [passages[0]], passages[1:4]),
            (Query("roots of a quadratic polynomial", "cot_step"), [passages[4]], passages[:3])]
    batched = likely_positives(encoder, rows, margin=0.5)
    for (query, positives, candidates), flags in zip(rows, batched, strict=True):
        scores = encoder.encode_documents([passage_text(p) for p in positives + candidates],
                                          show_progress=False) @ encoder.encode_queries([query])[0]
        assert flags == [bool(s > scores[0] * 0.5) for s in scores[1:]]
    assert [len(f) for f in batched] == [3, 3]


def test_split_is_by_problem_and_exports_are_readable(stored, tmp_path):
    examples, report = build_examples(stored.iter_trajectories(), CORPUS)
    train, dev = split_by_problem(examples, dev_fraction=0.3, seed=1)
    assert train and dev and len(train) + len(dev) == len(examples)
    assert not {e.problem_id for e in train} & {e.problem_id for e in dev}
    assert split_by_problem(examples, dev_fraction=0.3, seed=1) == (train, dev)
    folder = write_dataset(tmp_path / "data", train, dev, report, corpus=CORPUS)
    assert not (tmp_path / "data.partial").exists()
    assert [e.query for e in load_examples(folder, "dev")] == [e.query for e in dev]
    tevatron = [json.loads(line) for line in (folder / "train.tevatron.jsonl").read_text().splitlines()]
    assert tevatron[0]["positive_passages"][0].keys() == {"docid", "title", "text"}
    assert tevatron[0]["negative_scores"] == [train[0].scores.get(p.docid) for p in train[0].negatives]
    ntuples = pd.read_parquet(folder / "train.parquet")
    n = max(len(e.negatives) for e in train)
    assert n >= 2 and list(ntuples.columns) == ["anchor", "positive", *negative_columns(n)]
    assert len(ntuples) == sum(len(e.positives) for e in train)
    rows = iter(ntuples.to_dict("records"))
    for example in train:  # every hard negative of a query reaches every row of its positives
        for _ in example.positives:
            row = next(rows)
            assert {row[c] for c in negative_columns(n)} == {passage_text(p) for p in example.negatives} or (
                not example.negatives and {row[c] for c in negative_columns(n)} == {""})
    graded = pd.read_parquet(folder / "train.graded.parquet")
    assert len(graded) == sum(len(e.judged_pairs()) for e in train) > 0
    assert graded["label"].between(-1, 1).all() and (graded["label"] > 0).any()
    qrels = load_qrels(folder / "qrels" / "dev.tsv")
    assert set(qrels) == {f"dev-{i}" for i in range(len(dev))}
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["train"]["examples"] == len(train) and "examples_per_kind" in stats["dev"]
    assert stats["train"]["negatives_per_row"] == n and stats["train"]["judged_pairs"] == len(graded)


def test_ntuples_spread_and_repeat_a_querys_own_negatives():
    passages = [Passage.of(CORPUS.get(t)) for t in IDS[:5]]
    example = TrainingExample("q", "llm_query", passages[:2], passages[2:5], "p",
                              scores={IDS[0]: 0.9, IDS[2]: 0.4, IDS[3]: 0.6})
    texts = [passage_text(p) for p in passages]
    first, second = example.ntuples(2)
    assert (first["positive"], first["negative_1"], first["negative_2"]) == (texts[0], texts[2], texts[3])
    assert (second["positive"], second["negative_1"], second["negative_2"]) == (texts[1], texts[3], texts[4])
    padded = example.ntuples(4)[0]
    assert [padded[c] for c in negative_columns(4)] == [texts[2], texts[3], texts[4], texts[2]]
    # judged pairs: only passages the judge scored, label = P(yes) margin
    assert [(r["positive"], r["negative"], round(r["label"], 3)) for r in example.judged_pairs()] == [
        (texts[0], texts[2], 0.5), (texts[0], texts[3], 0.3)]
    assert TrainingExample.from_dict(example.to_dict()) == example


def test_a_merged_away_id_counts_as_the_entry_that_absorbed_it(tmp_path):
    """Judgments of twins (an alias and its entry) become one passage under the current id."""
    alias, current = "rader/geometry/point_line_distance", "rader/algebra/point_line_distance"
    assert CORPUS.get(alias).id == current
    store = TrajectoryStore(tmp_path / "t.db")
    store.save(trajectory("tw", [step(1, [("distance from a point to a line", "llm_query")],
                                      {alias: True, current: False, IDS[50]: False})], verified=True))
    [example] = build_examples(store.iter_trajectories(), CORPUS, held_out={IDS[50]})[0]
    assert [p.docid for p in example.positives] == [current] and not example.negatives  # relevant wins
    held, _ = build_examples(store.iter_trajectories(), CORPUS, held_out={alias})
    assert held == []  # holding out a former id holds out its entry


def copy_store(stored: TrajectoryStore, home) -> None:
    """The fixture's runs in the store of ``home``, where the CLI looks."""
    target = TrajectoryStore(home / "trajectories.db")
    for run in stored.iter_trajectories():
        target.save(run)
    target.close()


def test_dataset_build_command_reads_the_store(stored, home, indexed_home, capsys):
    copy_store(stored, home)  # beside the built-in corpus' indexes, which the default mining opens
    code, out, err = rader(capsys, "--no-progress", "dataset", "build", "--out", str(home / "data"),
                           "--mine", "bm25", "--dev-fraction", "0.3")
    assert code == 0, err
    stats = json.loads((home / "data" / "stats.json").read_text())
    assert stats["mine"] == "bm25" and stats["train"]["examples"] > 0
    assert stats["build"]["mined_negatives"] > 0 and "train split" in out and "dev split" in out
    assert "license: mit" in (home / "data" / "README.md").read_text()  # the built-in corpus alone: rader's
    code, out, err = rader(capsys, "--no-progress", "dataset", "build", "--out", str(home / "again"),
                           "--dev-fraction", "0.3", "--json")
    assert code == 0, err
    printed = json.loads(out)  # the JSON twin of the tables: the folder's stats.json, and where it is
    assert printed["folder"] == str(home / "again") and printed["train"]["examples"] > 0


def test_held_out_theorems_never_enter_the_data(stored):
    a, unrelated = IDS[0], IDS[40]  # p1's positive; a negative of run q0
    examples, report = build_examples(stored.iter_trajectories(), CORPUS, held_out={a, unrelated})
    assert not {a, unrelated} & {p.docid for e in examples for p in (*e.positives, *e.negatives)}
    found = by_query(examples)
    assert ("problem p1", "problem") not in found  # its only positive was held out
    assert {p.docid for p in found[("sum of roots", "llm_query")].positives} == {IDS[1]}
    assert report.held_out_theorems == 2 and report.held_out_dropped >= 4


def test_benchmark_runs_never_become_training_data():
    """`rader bench agent` stores its runs like any other; their problems are a test set."""
    harvested = trajectory("h1", [step(1, [("sum of roots", "llm_query")], {IDS[1]: True, IDS[2]: False})],
                           verified=True)
    benchmarked = trajectory("b1", [step(1, [("roots again", "llm_query")], {IDS[3]: True, IDS[4]: False})],
                             verified=True)
    benchmarked.source, benchmarked.config["bench_mode"] = "bench", "gold"
    from_version_1 = {**benchmarked.to_dict(), "id": "old", "schema_version": 1, "source": None}
    old = Trajectory.from_dict(from_version_1)  # a bench run stored by an older rader
    examples, report = build_examples([harvested, benchmarked, old], CORPUS)
    assert [e.problem_id for e in examples] == ["h1"]
    assert (report.trajectories, report.benchmark_runs) == (3, 2)


def test_labelled_problems_count_without_verification(home, capsys, tmp_path):
    """A wrong run on a labelled problem: the labelled theorem it retrieved is the positive (the
    judge's "irrelevant" there loses to the label), other theorems the judge rejected are
    negatives, one it liked is dropped, and no generated query is asked for a label. Unlabelled
    wrong runs still give nothing; a step that never retrieved the label gives nothing."""
    gold, liked, rejected = IDS[:3]
    labelled = trajectory("tq1", [
        step(1, [("problem tq1", "problem"), ("a guess", "llm_query")],
             {gold: False, liked: True, rejected: False}),
        step(2, [("a later step", "cot_step")], {liked: True, rejected: False}),
    ], verified=False)
    unlabelled = trajectory("m1", [step(1, [("other query", "llm_query")], {liked: True, rejected: False})],
                            verified=False)
    runs = [labelled, unlabelled]
    assert build_examples(runs, CORPUS)[0] == []  # RaDeR's rule: wrong runs give nothing
    examples, report = build_examples(runs, CORPUS, labels={"tq1": {gold}, "unused": {IDS[5]}})
    found = by_query(examples)
    assert set(found) == {("problem tq1", "problem"), ("a guess", "llm_query")}
    for example in found.values():
        assert [p.docid for p in example.positives] == [gold]
        assert [n.docid for n in example.negatives] == [rejected] and example.scores[gold] == 1.0
    assert report.labelled_runs == 1
    store = TrajectoryStore(home / "trajectories.db")
    for run in runs:
        store.save(run)
    store.close()
    qrels = tmp_path / "labels.tsv"
    qrels.write_text(f"query-id\tcorpus-id\tscore\ntq1\t{gold}\t1\n")
    code, _, err = rader(capsys, "--no-progress", "dataset", "build", "--out", str(home / "labelled"),
                         "--mine", "none", "--dev-fraction", "0", "--labels", str(qrels))
    assert code == 0, err
    stats = json.loads((home / "labelled" / "stats.json").read_text())
    assert stats["train"]["examples"] == 2 and stats["build"]["labelled_runs"] == 1
    assert stats["labels"] == str(qrels)


def test_dataset_build_leaves_out_an_eval_sets_held_out_theorems(stored, home, capsys, tmp_path):
    """The theorems of the held-out half of an eval set stay out of the data, mined ones too."""
    queries, qrels = tmp_path / "eval.jsonl", tmp_path / "eval.qrels.tsv"
    rows = [{"_id": f"e{i}", "text": f"question {i}", "theorem": f"theorem {i}"} for i in range(12)]
    queries.write_text("".join(json.dumps(row) + "\n" for row in rows))
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"e{i}\t{IDS[10 + i]}\t1\n" for i in range(12)))
    held = {IDS[10 + i] for i, row in enumerate(rows) if HeldOut("theorem").holds(row)}
    assert 0 < len(held) < 12
    copy_store(stored, home)
    code, _, err = rader(capsys, "--no-progress", "dataset", "build", "--out", str(home / "held"),
                         "--mine", "bm25", "--mined-per-query", "10", "--held-out-queries", str(queries),
                         "--held-out-qrels", str(qrels), "--held-out-by", "theorem")
    assert code == 0, err
    examples = load_examples(home / "held") + load_examples(home / "held", "dev")
    used = {p.docid for e in examples for p in (*e.positives, *e.negatives)}
    assert not used & held and set(IDS[10:22]) - held <= used
    stats = json.loads((home / "held" / "stats.json").read_text())
    assert stats["build"]["held_out_theorems"] == len(held) and stats["held_out"].startswith("theorem 0.5")


def test_judged_worked_examples_become_examples_of_their_own(home, capsys, monkeypatch):
    """A step that judged theorems and worked examples gives one example for each kind of passage:
    the examples judged useless are the negatives of the useful one, theorems never mix in."""
    from rader.retriever import builtin_examples

    solved = builtin_examples()
    useful, useless = solved.theorems[0].id, solved.theorems[1].id
    store = TrajectoryStore(home / "trajectories.db")
    store.save(trajectory("w1", [step(1, [("problem w1", "problem")],
                                      {IDS[0]: True, IDS[1]: False, useful: True, useless: False})],
                          verified=True))
    bm25 = open_retriever("bm25", CORPUS, home=home, show_progress=False)
    examples, report = build_examples(store.iter_trajectories(), CORPUS, miner=bm25, mined_per_query=2,
                                      worked_examples=solved)
    theorem_row, example_row = sorted(examples, key=lambda e: e.positives[0].docid in CORPUS, reverse=True)
    assert [p.docid for p in theorem_row.positives] == [IDS[0]]
    assert theorem_row.negatives[0].docid == IDS[1] and all(n.docid in CORPUS for n in theorem_row.negatives)
    assert len(theorem_row.negatives) == 3  # the judged one and two mined theorems
    assert [p.docid for p in example_row.positives] == [useful]  # no mined theorem among its negatives
    assert [n.docid for n in example_row.negatives] == [useless]
    assert example_row.positives[0].text == solved.get(useful).text  # the problem, as the index sees it
    assert report.unknown_theorems == 0 and report.stats["worked_example_examples"] == 1
    assert report.stats["distinct_positive_theorems"] == 1
    without, report = build_examples(store.iter_trajectories(), CORPUS)  # no example corpus: unknown ids
    assert len(without) == 1 and report.unknown_theorems == 2
    store.close()
    code, _, err = rader(capsys, "--no-progress", "dataset", "build", "--out", str(home / "data"),
                         "--mine", "none", "--dev-fraction", "0")
    assert code == 0, err
    stats = json.loads((home / "data" / "stats.json").read_text())
    assert stats["train"]["worked_example_examples"] == 1 and stats["example_corpora"] == ["math-train"]
    ids = [json.loads(line)["_id"] for line in (home / "data" / "corpus.jsonl").read_text().splitlines()]
    assert len(ids) == len(CORPUS) + 2 and {useful, useless} <= set(ids)  # the used ones, not all 7,500
    assert useful in (home / "data" / "qrels" / "train.tsv").read_text()
    assert "license: mit" in (home / "data" / "README.md").read_text()
    code, _, err = rader(capsys, "--no-progress", "dataset", "build", "--out", str(home / "plain"),
                         "--mine", "none", "--dev-fraction", "0", "--no-worked-examples")
    assert code == 0, err
    stats = json.loads((home / "plain" / "stats.json").read_text())
    assert stats["train"]["worked_example_examples"] == 0 and stats["build"]["unknown_theorems"] == 2
    monkeypatch.setenv("RADER_EXAMPLE_CORPORA", "[]")  # none configured: built as without them
    code, _, err = rader(capsys, "--no-progress", "dataset", "build", "--out", str(home / "none"),
                         "--mine", "none", "--dev-fraction", "0")
    assert code == 0, err
    stats = json.loads((home / "none" / "stats.json").read_text())
    assert stats["example_corpora"] is None and stats["build"]["unknown_theorems"] == 2


@pytest.fixture(scope="module")
def dataset(stored, tmp_path_factory):
    """The examples over the first 60 built-in theorems (all they cite): evaluation stays quick."""
    examples, report = build_examples(stored.iter_trajectories(), CORPUS)
    train, dev = split_by_problem(examples, dev_fraction=0.3, seed=1)
    corpus = Corpus([CORPUS.get(i) for i in IDS[:60]], name="first-60")
    return write_dataset(tmp_path_factory.mktemp("ds") / "data", train, dev, report, corpus=corpus)


SMALL = dict(batch_size=4, mini_batch_size=2, learning_rate=5e-5, epochs=50)


def test_train_saves_a_loadable_encoder_with_its_manifest(dataset, tmp_path, encoder):
    out = tmp_path / "model"
    manifest = train_encoder(dataset, out, TrainConfig(max_steps=3, save_steps=1, **SMALL),
                             show_progress=False)
    assert manifest["steps"] == 3 and manifest["train_rows"] > 0
    assert {"ndcg@10", "mrr@10"} <= set(manifest["metrics"]["before"]) <= set(manifest["metrics"]["after"])
    assert json.loads((out / MANIFEST).read_text())["config"]["batch_size"] == 4
    # attention dropout off by default (training ~1.3x as fast on a CPU); the saved config says so
    assert json.loads((out / "config.json").read_text())["attention_probs_dropout_prob"] == 0.0
    # sentence-transformers' model card, pointed to by the manifest: base model, its licence,
    # the training data and the dev scores after training
    assert manifest["model_card"] == "README.md"
    card = ModelCard.load(out / manifest["model_card"])
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.license == "apache-2.0" and "rader" in card.data.tags
    stats = json.loads((dataset / "stats.json").read_text())["train"]
    assert f"{dataset.name} (rader: InfoNCE n-tuples, {stats['examples']} examples" in card.text
    [result] = [r for r in card.data.eval_results if r.metric_type == "cosine_ndcg@10"]
    assert round(result.metric_value, 4) == manifest["metrics"]["after"]["ndcg@10"]
    assert not (tmp_path / "model.checkpoints").exists() and not (tmp_path / "model.partial").exists()
    trained = load_encoder(str(out))
    query = [Query("sum of the roots of a quadratic", "llm_query")]
    assert trained.encode_queries(query).shape == encoder.encode_queries(query).shape
    assert abs(trained.encode_queries(query) - encoder.encode_queries(query)).max() > 1e-6  # it moved


def test_graded_loss_trains_beside_infonce_on_ntuples(dataset, tmp_path, encoder):
    out = tmp_path / "graded"
    config = TrainConfig(max_steps=3, negatives=2, graded="margin_mse", attention_dropout=None, **SMALL)
    manifest = train_encoder(dataset, out, config, show_progress=False)
    columns = manifest["columns"]
    assert columns["infonce"] == ["anchor", "positive", "negative_1", "negative_2"]
    assert columns["graded"] == ["anchor", "positive", "negative", "label"]
    ntuples = pd.read_parquet(dataset / "train.parquet")
    with_negatives = int((ntuples["negative_1"] != "").sum())  # rows without one keep in-batch negatives
    assert 0 < with_negatives < len(ntuples)
    assert manifest["train_rows"] == with_negatives + len(pd.read_parquet(dataset / "train.graded.parquet"))
    query = [Query("sum of the roots of a quadratic", "llm_query")]
    assert abs(load_encoder(str(out)).encode_queries(query) - encoder.encode_queries(query)).max() > 1e-6
    # attention_dropout=None keeps the base model's own (BERT's 0.1)
    assert json.loads((out / "config.json").read_text())["attention_probs_dropout_prob"] == 0.1


def test_margin_mse_moves_the_students_margin_toward_the_judges(encoder, tmp_path):
    """One optimizer step of the weighted graded loss on one judged pair: the encoder's margin
    between the positive and the negative moves toward the judge's P(yes) margin."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MarginMSELoss

    from rader.training.losses import ScaledLoss

    model = SentenceTransformer(str(copy_model(encoder, tmp_path / "m")), device="cpu")
    query = "how many positive divisors does 72 have"
    positive, negative = (passage_text(Passage.of(CORPUS.get(f"rader/number_theory/{name}")))
                          for name in ("number_of_divisors", "sum_of_divisors"))

    def margin() -> float:
        q, p, n = model.encode([query, positive, negative], normalize_embeddings=True)
        return float(q @ p - q @ n)

    before, label = margin(), 0.6  # the judge: P(yes) 0.9 for the first passage, 0.3 for the second
    assert before < label - 0.2  # the encoder separates them far less to begin with
    loss = ScaledLoss(MarginMSELoss(model), weight=20.0)
    features = [model.tokenize([text]) for text in (query, positive, negative)]
    unscaled = MarginMSELoss(model)(features, torch.tensor([label]))
    value = loss(features, torch.tensor([label]))
    assert torch.isclose(value, 20.0 * unscaled)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    value.backward()
    optimizer.step()
    model.eval()
    assert before < margin() <= label


def test_lora_training_merges_its_adapters_into_a_plain_model(dataset, tmp_path, encoder):
    out = tmp_path / "lora"
    manifest = train_encoder(dataset, out, TrainConfig(max_steps=2, lora=True, lora_rank=4, **SMALL),
                             show_progress=False)
    assert manifest["config"]["lora"] and not (out / "adapter_config.json").exists()
    query = [Query("modular inverse")]
    trained = load_encoder(str(out)).encode_queries(query)
    assert trained.shape == (1, 384) and abs(trained - encoder.encode_queries(query)).max() > 1e-7


KILLED_TRAIN = """
import sys
from rader.training.train import TrainConfig, train_encoder
train_encoder(sys.argv[1], sys.argv[2], TrainConfig(max_steps=5, save_steps=1, batch_size=4,
              mini_batch_size=2, learning_rate=5e-5, epochs=50), show_progress=False)
"""


@pytest.mark.slow
def test_training_killed_mid_run_resumes_from_its_checkpoint(dataset, tmp_path):
    out = tmp_path / "model"
    process = subprocess.Popen([sys.executable, "-c", KILLED_TRAIN, str(dataset), str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "model.checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not (checkpoints / "checkpoint-2" / "trainer_state.json").is_file():
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (checkpoints / "checkpoint-2").is_dir(), "training never reached its second checkpoint"
    (checkpoints / "checkpoint-99").mkdir()  # as a kill during a save leaves it: must be passed over
    assert not out.exists()  # a killed run leaves no model that looks finished
    manifest = train_encoder(dataset, out, TrainConfig(max_steps=5, save_steps=1, **SMALL),
                             show_progress=False)
    resumed = int(manifest["resumed_from"].rsplit("-", 1)[1])
    assert 2 <= resumed < 5 and manifest["steps"] == 5


def test_registered_encoder_is_selected_by_name(dataset, tmp_path, home, capsys, monkeypatch):
    out = tmp_path / "model"
    train_encoder(dataset, out, TrainConfig(max_steps=1, **SMALL), show_progress=False)
    code, _, err = rader(capsys, "models", "register", str(out), "--name", "raderv1")
    assert code == 0, err
    code, listing, _ = rader(capsys, "models", "list")
    assert "raderv1" in listing and "registered encoders" in listing
    code, _, err = rader(capsys, "models", "register", str(out), "--name", "raderv1")
    assert code == 2 and "already registered" in err
    report = tmp_path / "eval.json"
    code, _, err = rader(capsys, "--no-progress", "eval", "--corpus", str(dataset / "corpus.jsonl"),
                         "--queries", str(dataset / "queries.jsonl"),
                         "--qrels", str(dataset / "qrels" / "dev.tsv"), "--retrievers", "bm25,dense@raderv1",
                         "--out", str(report))
    assert code == 0, err
    rows = json.loads(report.read_text())["rows"]
    assert {r["retriever"] for r in rows} == {"bm25", "dense@raderv1"}
    assert {r["kind"] for r in rows} >= {"all", "llm_query"}
    manifests = [json.loads(p.read_text()) for p in (home / "indexes").rglob("manifest.json")]
    assert any("raderv1" in str(m.get("encoder")) for m in manifests), manifests
    monkeypatch.setenv("RADER_RETRIEVER__ENCODER", "raderv1")  # the setting selects it everywhere
    code, shown, _ = rader(capsys, "config", "show")
    assert code == 0 and "raderv1" in shown
