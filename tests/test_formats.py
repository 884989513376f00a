"""Ecosystem formats: a dataset folder loads with `datasets.load_dataset` (its card's configs) and
as a BEIR dataset; a corpus may be BRIGHT's (``id``, ``content``). The trained encoder's model
card is checked beside the training run in test_training.py."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from test_training import CORPUS, stored  # noqa: F401  (a module fixture, shared)

from rader.retriever import RaderError, load_qrels, load_queries, read_corpus
from rader.training.dataset import build_examples, row_width, split_by_problem, write_dataset
from rader.training.examples import negative_columns
from rader.training.formats import beir_split


@pytest.fixture(scope="module")
def built(stored, tmp_path_factory):  # noqa: F811
    """The fixture store's examples, split by problem, written as a dataset folder."""
    examples, report = build_examples(stored.iter_trajectories(), CORPUS)
    train, dev = split_by_problem(examples, dev_fraction=0.3, seed=1)
    folder = write_dataset(tmp_path_factory.mktemp("ds") / "v1", train, dev, report, corpus=CORPUS,
                           license="mit")
    return folder, train, dev


def front_matter(card: str) -> dict:
    """The YAML block at the top of a Hugging Face card."""
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def test_dataset_folder_loads_with_datasets_load_dataset(built, tmp_path):
    from datasets import load_dataset

    folder, train, dev = built
    cache = str(tmp_path / "hf-cache")
    pairs = load_dataset(str(folder), cache_dir=cache)  # the card's default config
    width = max(len(e.negatives) for e in train)
    assert set(pairs) == {"train", "dev"}
    for split, examples in (("train", train), ("dev", dev)):
        assert pairs[split].column_names == ["anchor", "positive", *negative_columns(width)]  # one schema
        assert pairs[split].num_rows == sum(len(e.positives) for e in examples)
        assert set(pairs[split]["anchor"]) == {e.query for e in examples}
    graded = load_dataset(str(folder), "graded", cache_dir=cache)
    assert graded["train"].column_names == ["anchor", "positive", "negative", "label"]
    assert graded["train"].num_rows == sum(len(e.judged_pairs()) for e in train) > 0
    # the JSON Lines files load as the card says
    tevatron = load_dataset("json", data_files={"dev": str(folder / "dev.tevatron.jsonl")}, cache_dir=cache)
    assert [row["query"] for row in tevatron["dev"]] == [e.query for e in dev]
    assert tevatron["dev"][0]["positive_passages"][0].keys() == {"docid", "title", "text"}


def test_dataset_card_says_what_the_data_is_and_where_it_came_from(built):
    folder, train, dev = built
    card = (folder / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "mit" and "text-retrieval" in meta["task_categories"]
    configs = {c["config_name"]: {f["split"]: f["path"] for f in c["data_files"]} for c in meta["configs"]}
    assert configs["default"] == {"train": "train.parquet", "dev": "dev.parquet"}
    assert configs["graded"] == {"train": "train.graded.parquet", "dev": "dev.graded.parquet"}
    stats = json.loads((folder / "stats.json").read_text())
    assert f"from {stats['build']['trajectories']} stored rader agent trajectories" in card
    assert f"({stats['build']['verified_trajectories']} verified)" in card
    assert f"| examples | {len(train)} | {len(dev)} |" in card
    assert "`anchor`, `positive`, `negative_1`" in card  # the columns, read from the files


def test_a_split_without_rows_stays_out_of_the_card(stored, tmp_path):  # noqa: F811
    """`datasets` refuses a split with no rows: a build with no dev split lists train alone."""
    from datasets import load_dataset

    examples, report = build_examples(stored.iter_trajectories(), CORPUS)
    folder = write_dataset(tmp_path / "all-train", examples, [], report, corpus=CORPUS)
    configs = {c["config_name"]: c for c in front_matter((folder / "README.md").read_text())["configs"]}
    assert [f["split"] for f in configs["default"]["data_files"]] == ["train"]
    assert "graded" in configs and front_matter((folder / "README.md").read_text())["license"] == "other"
    assert set(load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))) == {"train"}


def beir_generic_data_loader(folder, split: str):
    """What BEIR's ``GenericDataLoader(folder).load(split)`` reads, by its own rules (beir is not a
    dependency): ``corpus.jsonl`` rows by ``_id`` with ``title`` and ``text``, ``queries.jsonl`` by
    ``_id`` with ``text``, ``qrels/<split>.tsv`` read with csv past its header, integer scores,
    and only the queries that the qrels judge."""
    corpus, queries, qrels = {}, {}, {}
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        corpus[row.get("_id")] = {"text": row.get("text"), "title": row.get("title")}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        queries[row.get("_id")] = row.get("text")
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
        assert next(reader) == ["query-id", "corpus-id", "score"]
        for query_id, corpus_id, score in reader:
            qrels.setdefault(query_id, {})[corpus_id] = int(score)
    return corpus, {q: queries[q] for q in qrels}, qrels


def test_dataset_folder_is_a_beir_dataset(built):
    folder, train, dev = built
    corpus, queries, qrels = beir_generic_data_loader(folder, "dev")
    assert list(corpus) == CORPUS.ids
    assert all(corpus[t.id] == {"title": t.title, "text": t.text} for t in CORPUS)
    assert queries == {f"dev-{i}": e.query for i, e in enumerate(dev)}
    assert qrels == {f"dev-{i}": dict.fromkeys((p.docid for p in e.positives), 1) for i, e in enumerate(dev)}
    _, train_queries, _ = beir_generic_data_loader(folder, "train")
    assert train_queries == {f"train-{i}": e.query for i, e in enumerate(train)}
    # rader's own loaders read the same files back whole: the corpus with its metadata (and no
    # stray `_id` in it), the queries with their kinds, the qrels as BEIR's
    ours, report = read_corpus(folder / "corpus.jsonl")
    assert ours.ids == CORPUS.ids and not report.rejected
    assert [t.metadata for t in ours] == [t.metadata for t in CORPUS]
    assert [(t.title, t.text, t.source, t.tags, t.subject) for t in ours] == [
        (t.title, t.text, t.source, t.tags, t.subject) for t in CORPUS]
    kinds = {q.id: q.kind for q in load_queries(folder / "queries.jsonl")}
    assert kinds == {f"{s}-{i}": e.query_kind for s, es in (("train", train), ("dev", dev))
                     for i, e in enumerate(es)}
    assert load_qrels(folder / "qrels" / "dev.tsv") == qrels


def test_corpus_loader_reads_brights_documents(tmp_path):
    """BRIGHT's documents are ``id`` and ``content``: the content is the text, the title stays
    empty (BRIGHT scores the content alone), so the passage an index sees is BRIGHT's own."""
    rows = [{"id": "TheoremQA_jianyu_xu/pigeonhole_4.json", "content": "If n+1 pigeons sit in n holes, "
             "some hole holds two."},
            {"id": 18695, "content": "A prime p divides ab only if it divides a or b."},
            {"id": "both", "text": "the text wins", "content": "kept as metadata"}]
    path = tmp_path / "bright.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    corpus, report = read_corpus(path)
    assert corpus.ids == ["TheoremQA_jianyu_xu/pigeonhole_4.json", "18695", "both"] and not report.rejected
    pigeons = corpus.get("TheoremQA_jianyu_xu/pigeonhole_4.json")
    assert (pigeons.title, pigeons.text) == ("", rows[0]["content"]) and pigeons.passage == rows[0]["content"]
    assert "content" not in pigeons.metadata
    assert corpus.get("both").text == "the text wins" and corpus.get("both").metadata == {
        "content": "kept as metadata"}
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"id": "x", "content": " "}) + "\n")
    with pytest.raises(RaderError, match="missing text: `text` \\(or BRIGHT's `content`\\)"):
        read_corpus(empty)


def test_split_files_are_beirs_or_those_of_a_folder_built_before(built, tmp_path):
    """`rader train` scores the dev split from BEIR's files, and still from an older folder's."""
    folder, *_ = built
    assert beir_split(folder, "dev") == (folder / "queries.jsonl", folder / "qrels" / "dev.tsv")
    old = tmp_path / "old"
    old.mkdir()
    for name in ("dev.queries.jsonl", "dev.qrels.tsv"):
        (old / name).write_text("")
    assert beir_split(old, "dev") == (old / "dev.queries.jsonl", old / "dev.qrels.tsv")
    with pytest.raises(RaderError, match="rader dataset build"):
        beir_split(tmp_path, "dev")


def test_dev_rows_take_the_training_rows_width(built):
    """One schema per config: dev n-tuples have as many negative columns as training ones."""
    _, train, dev = built
    widest = max(len(e.negatives) for e in train)
    assert row_width(train, dev, None) == widest and row_width(train, dev, 1) == 1
    assert row_width(train, dev, 0) == 0  # at most none: in-batch negatives only
    assert row_width([], dev, None) == max(len(e.negatives) for e in dev)
