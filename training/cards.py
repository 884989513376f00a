"""Cards that make rader's folders load and read in the tools their users already have.

A dataset folder gets a Hugging Face dataset card (``README.md``): its YAML front matter lists
the folder's Parquet files as ``datasets`` configs, so ``datasets.load_dataset(folder)`` gives
the InfoNCE n-tuples and ``load_dataset(folder, "graded")`` the judged pairs; the body says
where the data came from, what each file holds, and how the JSON Lines ones load. A trained encoder
gets sentence-transformers' own model card, filled with what rader knows: the base model and
its licence, the training data, and the dev scores (the evaluator writes them in).

Example:
    >>> write_dataset_card(folder, name="v1", stats=stats, license="mit")  # doctest: +SKIP
    >>> datasets.load_dataset(str(folder))["dev"].column_names  # doctest: +SKIP
    ['anchor', 'positive', 'negative_1']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from rader.training.formats import CORPUS, QRELS, QUERIES

CARD = "README.md"

# config -> (split -> file, what a row is); ``default`` is what load_dataset(folder) gives. Only
# Parquet: `datasets` reads every config of a folder with the one builder its first config needs.
DATASET_CONFIGS: dict[str, tuple[dict[str, str], str]] = {
    "default": ({"train": "train.parquet", "dev": "dev.parquet"},
                "InfoNCE n-tuples, one per (query, positive): `anchor` the query, `positive` a theorem "
                "judged relevant (title and statement), `negative_1..n` the query's hard negatives "
                "(judged irrelevant, then mined; repeated when a query has fewer; empty when it has none)"),
    "graded": ({"train": "train.graded.parquet", "dev": "dev.graded.parquet"},
               "judged pairs for a graded loss (MarginMSE): `label` is the judge's P(yes) for the "
               "positive minus its P(yes) for the negative"),
}

# The built-in encoders: their Hugging Face id (for the card's base_model) and licence.
BASE_MODELS = {"minilm": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
               "mpnet": ("sentence-transformers/all-mpnet-base-v2", "apache-2.0")}


class BaseEncoder(NamedTuple):
    """What a model card says of the encoder a model was fine-tuned from."""

    hub_id: str | None  # None for a local folder that names no hub model
    license: str | None


def _rows(path: Path) -> int:
    """Rows in a Parquet file (0 when it is missing)."""
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows if path.is_file() else 0


def _columns(path: Path) -> list[str]:
    """The column names of a Parquet file."""
    import pyarrow.parquet as pq

    return pq.read_schema(path).names


def dataset_configs(folder: Path) -> dict[str, dict[str, str]]:
    """config -> split -> file, for the files of ``folder`` that have rows: `datasets` refuses a
    split with none, and a config with no split is left out."""
    found = {}
    for name, (files, _) in DATASET_CONFIGS.items():
        splits = {split: file for split, file in files.items() if _rows(folder / file)}
        if splits:
            found[name] = splits
    return found


def _size_category(rows: int) -> str:
    """The Hub's size bucket for a dataset of ``rows`` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"


def _config_table(folder: Path, configs: dict[str, dict[str, str]]) -> str:
    lines = ["| config | splits (rows) | columns | rows are |", "|---|---|---|---|"]
    for name, splits in configs.items():
        sizes = ", ".join(f"{split} ({_rows(folder / file):,})" for split, file in splits.items())
        columns = ", ".join(f"`{c}`" for c in _columns(folder / next(iter(splits.values()))))
        lines.append(f"| `{name}` | {sizes} | {columns} | {DATASET_CONFIGS[name][1]} |")
    return "\n".join(lines)


def _stats_table(stats: dict[str, Any]) -> str:
    """Per split: examples, problems, positives and negatives per query, examples per query kind."""
    splits = [s for s in ("train", "dev") if s in stats]
    keys = ["examples", "problems", "rows", "positives_per_query", "negatives_per_query",
            "distinct_positive_theorems", "corpus_coverage"]
    kinds = sorted({k for s in splits for k in stats[s].get("examples_per_kind", {})})
    lines = ["| | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    lines += [f"| {key.replace('_', ' ')} | " + " | ".join(str(stats[s].get(key, "")) for s in splits) + " |"
              for key in keys]
    lines += [f"| examples of kind `{kind}` | " + " | ".join(
        str(stats[s].get("examples_per_kind", {}).get(kind, 0)) for s in splits) + " |" for kind in kinds]
    return "\n".join(lines)


def _mined(retriever: str | None) -> str:
    if not retriever or retriever == "none":
        return " (none were mined)"
    return (f", and more are mined from the {retriever} retriever's top-k, leaving out likely false "
            "negatives (passages the encoder scores near the positive)")


def _provenance(stats: dict[str, Any]) -> str:
    """Where the examples came from, in the words of RaDeR's recipe."""
    build = stats.get("build", {})
    judged_on = ("every finished run (the judge's verdicts on unverified runs too, `--unverified`)"
                 if stats.get("unverified") else "runs whose final answer matched the gold answer (verified)")
    text = (f"Built by `rader dataset build` from {build.get('trajectories', 0):,} stored rader agent "
            f"trajectories ({build.get('verified_trajectories', 0):,} verified). Following RaDeR, a theorem "
            f"the agent's LLM judged relevant to a reasoning step, on {judged_on}, is a positive for every "
            "query of that step (the model's search query, the step itself, its keywords, the problem); "
            f"theorems retrieved but judged irrelevant are hard negatives{_mined(stats.get('mine'))}. "
            f"Human judgments from the rader UI ({build.get('human_judgments', 0):,}) override the model's. "
            "Train and dev are split by problem: no problem has queries on both sides.")
    if stats.get("held_out_queries"):
        text += (f" The theorems of an evaluation set ({stats['held_out_queries']}) were kept out "
                 f"({build.get('held_out_theorems', 0):,} theorems).")
    return text


def _body(folder: Path, name: str, stats: dict[str, Any], configs: dict[str, dict[str, str]],
          license: str) -> str:
    corpora = ", ".join(f"`{c}`" for c in stats.get("corpora") or ()) or "it was built with"
    return f"""
# {name}: math theorem retrieval data from rader trajectories

{_provenance(stats)}

## Loading

```python
from datasets import load_dataset

pairs = load_dataset("path/to/{name}")            # InfoNCE n-tuples, splits train and dev
graded = load_dataset("path/to/{name}", "graded")  # judged pairs with the judge's P(yes) margins
```

The folder is also a BEIR dataset: `GenericDataLoader("path/to/{name}").load(split="dev")` reads
`{CORPUS}` (`_id`, `title`, `text`, and rader's `source`, `tags`, `subject`, `metadata`),
`{QUERIES}` (`_id`, `text`, `kind`: every split's queries) and `{QRELS}/dev.tsv` (each query's
positives, relevance 1). So does rader:

```bash
rader eval --corpus {name}/{CORPUS} --queries {name}/{QUERIES} --qrels {name}/{QRELS}/dev.tsv
```

`train.tevatron.jsonl` / `dev.tevatron.jsonl` are Tevatron rows (the query with
its positive and negative passages, `docid`, `title`, `text`, and the judge's P(yes) for each, null
when unjudged): `load_dataset("json", data_files={{"train": "path/to/{name}/train.tevatron.jsonl"}})`.
`train.examples.jsonl` / `dev.examples.jsonl` hold rader's own examples (with provenance:
trajectory and step), `stats.json` the build report.

## Configs and columns

{_config_table(folder, configs)}

## Statistics

{_stats_table(stats)}

## Licence

Declared as `{license}`. Theorem texts come from the corpora {corpora} and keep their licences;
rader's built-in corpus is MIT. Queries of kind `problem` are the problem statements harvested,
under their problem set's licence; the other queries were written by the agent's LLM.
"""


def write_dataset_card(folder: Path, *, name: str, stats: dict[str, Any], license: str = "other") -> Path:
    """``README.md`` in a dataset ``folder`` (whose files are written): front matter with the
    ``datasets`` configs, licence and task categories; a body with provenance, columns and stats."""
    from huggingface_hub import DatasetCard, DatasetCardData

    configs = dataset_configs(folder)
    rows = sum(_rows(folder / file) for file in configs.get("default", {}).values())
    data = DatasetCardData(
        license=license, language=["en"], pretty_name=f"rader {name}",
        task_categories=["text-retrieval", "sentence-similarity"], task_ids=["document-retrieval"],
        size_categories=[_size_category(rows)], tags=["rader", "math", "theorem-retrieval", "beir"],
        configs=[{"config_name": config, "data_files": [{"split": split, "path": file}
                                                        for split, file in splits.items()]}
                 for config, splits in configs.items()])
    path = folder / CARD
    DatasetCard(f"---\n{data.to_yaml()}\n---\n{_body(folder, name, stats, configs, license)}").save(path)
    return path


def base_encoder(base: str, base_path: Path) -> BaseEncoder:
    """The hub id and licence of the encoder ``base`` (a built-in name, a hub id, or a folder whose
    own card names them, as one rader trained does)."""
    if base in BASE_MODELS:
        return BaseEncoder(*BASE_MODELS[base])
    card = base_path / CARD
    data: dict[str, Any] = {}
    if card.is_file():
        from huggingface_hub import ModelCard

        data = ModelCard.load(card).data.to_dict()
    is_hub_id = base.count("/") == 1 and not Path(base).expanduser().exists()
    hub_id = base if is_hub_id else None
    return BaseEncoder(hub_id, data.get("license"))


def model_card_data(base: str, base_path: Path, data: Path, datasets: list[str]):
    """sentence-transformers' card data for an encoder fine-tuned from ``base`` on the dataset
    folder ``data`` (one entry per training dataset the trainer gets, in its order)."""
    from sentence_transformers import SentenceTransformerModelCardData

    origin = base_encoder(base, base_path)
    stats_path = data / "stats.json"
    train = json.loads(stats_path.read_text()).get("train", {}) if stats_path.is_file() else {}
    examples = f"{train.get('examples', '?')} examples from {train.get('problems', '?')} problems"
    card = SentenceTransformerModelCardData(
        language="en", license=origin.license, model_name=f"rader encoder fine-tuned from {base}",
        train_datasets=[{"name": f"{data.name} (rader: {part}, {examples})"} for part in datasets],
        task_name="retrieving math theorems for reasoning steps (RaDeR)", local_files_only=True,
        tags=["sentence-transformers", "sentence-similarity", "feature-extraction", "rader", "math"])
    card.base_model = origin.hub_id  # the library asks the Hub to set it, and rader works offline
    return card
