"""How an encoder is trained: `rader train`'s options take their defaults from here, and the
training code its settings, without importing torch to read them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

InfoNCE = Literal["cached_mnrl", "mnrl"]
GradedLoss = Literal["none", "margin_mse"]


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    base: str = "minilm"  # built-in name, model folder or cached hub id
    epochs: float = 1.0
    batch_size: int = 32
    mini_batch_size: int = 16  # cached loss: forward/backward in chunks of this size
    learning_rate: float = 2e-5
    warmup_fraction: float = 0.1
    loss: InfoNCE = "cached_mnrl"
    negatives: int | None = None  # hard negatives per row (None: every column the data has)
    graded: GradedLoss = "none"  # a loss on the judge's P(yes) beside InfoNCE
    graded_weight: float = 20.0  # its scale: InfoNCE multiplies cosines by 20, so equal footing
    lora: bool = False  # adapters instead of full fine-tuning (LLM-sized encoders)
    lora_rank: int = 16
    lora_alpha: int = 32
    max_seq_length: int = 256
    # dropout on attention probabilities while training (None: the base model's own, 0.1 for
    # BERT-likes): on a CPU it makes training ~1.3x as slow at the same scores (RESULTS, tenth pass)
    attention_dropout: float | None = 0.0
    seed: int = 0
    save_steps: int = 50
    max_steps: int = -1  # > 0 caps the optimizer steps (smoke runs)
