"""Fine-tune a dense encoder on RaDeR examples with the sentence-transformers trainer.

Contrastive training (InfoNCE: MultipleNegativesRankingLoss over (query, positive, all its
hard negatives) n-tuples plus in-batch negatives; its cached variant gives large effective
batches in little memory on a CPU; dropout on attention weights is off by default, which on a
CPU trains ~1.3x as fast at the same scores). ``graded="margin_mse"`` adds a graded loss beside
it: the judge's P(yes) margins between a query's positive and each judged negative, distilled
with MarginMSE on batches of their own (the trainer alternates the two datasets). LoRA adapters
via ``peft`` for LLM-sized encoders, merged into the saved weights. The run
checkpoints beside the output folder and resumes from the latest checkpoint; the
finished model is renamed into place with a manifest (``rader_training.json``) recording
data, base, hyperparameters, metrics before/after on the dev split, and time, and with
sentence-transformers' model card (``README.md``: base model, licence, training data, the
dev scores after training), which the manifest points to.

Example:
    >>> manifest = train_encoder("data/v1", "models/rader-minilm-v1",
    ...                          TrainConfig(base="minilm", epochs=1))  # doctest: +SKIP
    >>> manifest["metrics"]["after"]["ndcg@10"] > manifest["metrics"]["before"]["ndcg@10"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rader.retriever import RaderError, encoder_location, load_qrels, load_queries, read_corpus
from rader.retriever.encoders import resolve_encoder_path
from rader.training.cards import CARD, model_card_data
from rader.training.config import TrainConfig
from rader.training.formats import CORPUS, beir_split
from rader.training.losses import ScaledLoss

MANIFEST = "rader_training.json"


def _file_digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _parquet(data: Path, name: str):
    from datasets import Dataset

    path = data / name
    if not path.is_file():
        raise RaderError(f"no {path.name} in {data}: run `rader dataset build --out {data}` first")
    return Dataset.from_parquet(str(path))


def load_ntuples(data: Path, split: str, negatives: int | None = None):
    """The InfoNCE rows of a split, (anchor, positive, negative_1..negative_n), with the first
    ``negatives`` hard negatives of each row (all by default, 0 for pairs). Rows without a hard
    negative keep in-batch negatives only: they go when most rows have one, else the negatives go."""
    dataset = _parquet(data, f"{split}.parquet")
    if "negative" in dataset.column_names:  # built before n-tuples: one negative a row
        dataset = dataset.rename_column("negative", "negative_1")
    columns = [c for c in dataset.column_names if c.startswith("negative_")]
    if negatives is not None and negatives > len(columns):
        raise RaderError(f"{data} has {len(columns)} hard negatives a row, not {negatives}: "
                         "lower --negatives, or rebuild the dataset")
    keep = columns[:negatives] if negatives is not None else columns
    dataset = dataset.remove_columns(columns[len(keep):])
    if not keep:
        return dataset
    with_negative = dataset.filter(lambda row: bool(row["negative_1"]))
    if len(with_negative) >= len(dataset) / 2:
        return with_negative
    return dataset.remove_columns(keep)


def load_judged_pairs(data: Path, split: str):
    """The graded rows of a split: (anchor, positive, negative, label = P(yes) margin)."""
    dataset = _parquet(data, f"{split}.graded.parquet")
    if len(dataset) == 0:
        raise RaderError(f"{data} has no judged pairs with the judge's scores for a graded loss: "
                         "train without --graded, or rebuild the dataset from scored judgments")
    return dataset


def dev_evaluator(data: Path, batch_size: int):
    """nDCG@10 etc. on the dev split's own queries and qrels, over the dataset's corpus."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    try:
        files = beir_split(data, "dev")
    except RaderError:  # a dataset without dev queries trains without before/after scores
        return None
    if len(files.qrels.read_text().splitlines()) < 2:  # its header alone: the dev split is empty
        return None
    qrels = load_qrels(files.qrels)
    queries = {q.id: q.text for q in load_queries(files.queries) if q.id in qrels}  # it holds every split's
    corpus, _ = read_corpus(data / CORPUS)
    documents = {t.id: t.passage for t in corpus}
    return InformationRetrievalEvaluator(queries, documents, qrels, name="dev",
                                         batch_size=batch_size, write_csv=False, ndcg_at_k=[10],
                                         mrr_at_k=[10], precision_recall_at_k=[10, 100],
                                         accuracy_at_k=[1, 10], map_at_k=[100])


def _metrics(evaluator, model) -> dict[str, float]:
    if evaluator is None:
        return {}
    scores = evaluator(model)
    return {key.removeprefix("dev_cosine_"): round(float(v), 4) for key, v in scores.items()
            if key.startswith("dev_cosine_")}


def _columns(train) -> list[str] | dict[str, list[str]]:
    if isinstance(train, dict):
        return {name: part.column_names for name, part in train.items()}
    return train.column_names


def _latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that was written whole: a kill during a save leaves a folder
    without its trainer state (written last), which must not be resumed from."""
    complete = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()
                and any(p.glob("**/*.safetensors"))]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def train_encoder(data: str | Path, out: str | Path, config: TrainConfig | None = None, *,
                  home: str | Path | None = None, resume: bool = True,
                  show_progress: bool = True) -> dict[str, Any]:
    """Train, evaluate before/after on the dev split, save to ``out``; returns the manifest.
    With the data directory ``home``, the base may also be a registered or catalog encoder."""
    config = config or TrainConfig()
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    if not show_progress:  # the datasets and transformers bars too (loading, filtering, weights)
        from datasets.utils.logging import disable_progress_bar
        from transformers.utils import logging as hf_logging

        disable_progress_bar()
        hf_logging.disable_progress_bar()
    data, out = Path(data), Path(out)
    train = load_ntuples(data, "train", config.negatives)
    if len(train) == 0:
        raise RaderError(f"{data} has no training rows: harvest more verified trajectories")
    base_path = resolve_encoder_path(encoder_location(config.base, home) if home else config.base)
    torch.manual_seed(config.seed)
    parts = ["InfoNCE n-tuples", "graded pairs"] if config.graded == "margin_mse" else ["InfoNCE n-tuples"]
    dropout = ({} if config.attention_dropout is None else  # BERT / MPNet and LLM configs' names
               {"attention_probs_dropout_prob": config.attention_dropout,
                "attention_dropout": config.attention_dropout})
    model = SentenceTransformer(str(base_path), device="cpu" if not torch.cuda.is_available() else None,
                                model_card_data=model_card_data(config.base, base_path, data, parts),
                                config_kwargs=dropout)
    model.max_seq_length = config.max_seq_length
    if config.lora:  # peft directly: transformers' own adapter hooks want a newer peft than PyPI has
        from peft import LoraConfig, TaskType, get_peft_model

        adapted = get_peft_model(model[0].auto_model, LoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION, r=config.lora_rank, lora_alpha=config.lora_alpha,
            lora_dropout=0.1))
        model[0].auto_model = adapted
    evaluator = dev_evaluator(data, config.batch_size)
    before = _metrics(evaluator, model)
    loss = (losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size)
            if config.loss == "cached_mnrl" else losses.MultipleNegativesRankingLoss(model))
    rows = len(train)
    if config.graded == "margin_mse":  # a dataset of its own, with its own loss: the trainer alternates
        judged = load_judged_pairs(data, "train")
        rows += len(judged)
        train = {"infonce": train, "graded": judged}
        loss = {"infonce": loss, "graded": ScaledLoss(losses.MarginMSELoss(model), config.graded_weight)}
    steps_per_epoch = math.ceil(rows / config.batch_size)
    total_steps = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
    checkpoints = out.with_name(out.name + ".checkpoints")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
        warmup_steps=math.ceil(total_steps * config.warmup_fraction), seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # a duplicate in the batch is a false in-batch negative
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, logging_steps=10,
        report_to="none", disable_tqdm=not show_progress, dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss)
    started = time.perf_counter()
    checkpoint = _latest_checkpoint(checkpoints) if resume else None
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - started
    if config.lora:  # fold the adapters in: the saved model loads anywhere, without peft
        model[0].auto_model = adapted.merge_and_unload()  # the trainer may have unwrapped it
    after = _metrics(evaluator, model)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save(str(partial))
    manifest = {
        "base": config.base, "base_path": str(base_path), "data": str(data.resolve()),
        "data_sha256": _file_digest(*(data / f"train.{part}parquet" for part in (
            ("", "graded.") if isinstance(train, dict) else ("",)))), "train_rows": rows,
        "columns": _columns(train), "config": asdict(config), "steps": trainer.state.global_step,
        "resumed_from": str(checkpoint) if checkpoint else None, "seconds": round(seconds, 1),
        "metrics": {"before": before, "after": after},
        "model_card": CARD if (partial / CARD).is_file() else None,  # sentence-transformers' card
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the finished model supersedes them
    return manifest
