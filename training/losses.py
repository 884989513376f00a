"""A weight on a sentence-transformers loss, for a graded loss trained beside InfoNCE.

With a dict of datasets and a dict of losses, the sentence-transformers trainer alternates
batches between the datasets and trains each batch with its dataset's loss; `ScaledLoss` sets
how much a graded loss counts against InfoNCE. It takes whatever columns the loss it wraps
takes; for `MarginMSELoss` over judged pairs: (anchor, positive, negative) and a float label,
the teacher's margin sim(anchor, positive) - sim(anchor, negative).

Example:
    >>> from sentence_transformers import SentenceTransformer  # doctest: +SKIP
    >>> from sentence_transformers.sentence_transformer.losses import MarginMSELoss  # doctest: +SKIP
    >>> model = SentenceTransformer("path/to/minilm")  # doctest: +SKIP
    >>> loss = ScaledLoss(MarginMSELoss(model), weight=20.0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn


class ScaledLoss(nn.Module):
    """``weight`` times ``loss``; the wrapped loss keeps its model (the trainer swaps it in)."""

    def __init__(self, loss: nn.Module, weight: float) -> None:
        super().__init__()
        self.loss = loss
        self.weight = weight

    @property
    def model(self):
        return self.loss.model

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        return self.weight * self.loss(sentence_features, labels)
