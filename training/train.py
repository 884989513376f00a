"""Fine-tune a dense encoder on RaDeR examples with the sentence-transformers trainer.

Contrastive training (InfoNCE: MultipleNegativesRankingLoss with in-batch and hard
negatives; its cached variant gives large effective batches in little memory on a CPU).
LoRA adapters via ``peft`` for LLM-sized encoders, merged into the saved weights. The run
checkpoints beside the output folder and resumes from the latest checkpoint; the
finished model is renamed into place with a manifest (``rader_training.json``) recording
data, base, hyperparameters, metrics before/after on the dev split, and time.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from rader.retriever import RaderError, load_qrels, read_corpus
from rader.retriever.encoders import resolve_encoder_path

MANIFEST = "rader_training.json"


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    base: str = "minilm"  # built-in name, model folder or cached hub id
    epochs: float = 1.0
    batch_size: int = 32
    mini_batch_size: int = 16  # cached loss: forward/backward in chunks of this size
    learning_rate: float = 2e-5
    warmup_fraction: float = 0.1
    loss: Literal["cached_mnrl", "mnrl"] = "cached_mnrl"
    lora: bool = False  # adapters instead of full fine-tuning (LLM-sized encoders)
    lora_rank: int = 16
    lora_alpha: int = 32
    max_seq_length: int = 256
    seed: int = 0
    save_steps: int = 50
    max_steps: int = -1  # > 0 caps the optimizer steps (smoke runs)


def _file_digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_triplets(data: Path, split: str):
    """The (anchor, positive[, negative]) dataset of a split; rows without a hard negative
    keep in-batch negatives only (the negative column goes when most rows lack one)."""
    from datasets import Dataset

    path = data / f"{split}.parquet"
    if not path.is_file():
        raise RaderError(f"no {path.name} in {data}: run `rader dataset build --out {data}` first")
    dataset = Dataset.from_parquet(str(path))
    with_negative = dataset.filter(lambda row: bool(row["negative"]))
    if len(with_negative) >= len(dataset) / 2:
        return with_negative
    return dataset.remove_columns("negative")


def dev_evaluator(data: Path, batch_size: int):
    """nDCG@10 etc. on the dev split's own queries and qrels, over the dataset's corpus."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    queries_path, qrels_path = data / "dev.queries.jsonl", data / "dev.qrels.tsv"
    if not queries_path.is_file() or not queries_path.stat().st_size:
        return None
    queries = {row["_id"]: row["text"] for row in map(json.loads, queries_path.read_text().splitlines())}
    corpus, _ = read_corpus(data / "corpus.jsonl")
    documents = {t.id: t.passage for t in corpus}
    return InformationRetrievalEvaluator(queries, documents, load_qrels(qrels_path), name="dev",
                                         batch_size=batch_size, write_csv=False, ndcg_at_k=[10],
                                         mrr_at_k=[10], precision_recall_at_k=[10, 100],
                                         accuracy_at_k=[1, 10], map_at_k=[100])


def _metrics(evaluator, model) -> dict[str, float]:
    if evaluator is None:
        return {}
    scores = evaluator(model)
    return {key.removeprefix("dev_cosine_"): round(float(v), 4) for key, v in scores.items()
            if key.startswith("dev_cosine_")}


def _latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that was written whole: a kill during a save leaves a folder
    without its trainer state (written last), which must not be resumed from."""
    complete = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()
                and any(p.glob("**/*.safetensors"))]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def train_encoder(data: str | Path, out: str | Path, config: TrainConfig = TrainConfig(), *,
                  resume: bool = True, show_progress: bool = True) -> dict[str, Any]:
    """Train, evaluate before/after on the dev split, save to ``out``; returns the manifest."""
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    data, out = Path(data), Path(out)
    train = load_triplets(data, "train")
    if len(train) == 0:
        raise RaderError(f"{data} has no training rows: harvest more verified trajectories")
    base_path = resolve_encoder_path(config.base)
    torch.manual_seed(config.seed)
    model = SentenceTransformer(str(base_path), device="cpu" if not torch.cuda.is_available() else None)
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
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
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
        "data_sha256": _file_digest(data / "train.parquet"), "train_rows": len(train),
        "columns": train.column_names, "config": asdict(config), "steps": trainer.state.global_step,
        "resumed_from": str(checkpoint) if checkpoint else None, "seconds": round(seconds, 1),
        "metrics": {"before": before, "after": after},
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the finished model supersedes them
    return manifest
