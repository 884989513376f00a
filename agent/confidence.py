"""How sure the model was of a solution it wrote, from its own token log-probabilities.

The answer's own tokens say nothing (a wrong ``\\boxed{}`` is copied from the text above it
at probability ~1); where a small model goes wrong it hesitates somewhere in the middle. The
measure is the lowest mean log-probability over any ``window`` consecutive tokens (the
"lowest group confidence" of DeepConf, Fu et al. 2025), given as the geometric-mean token
probability of that window, in (0, 1]. On 70 held-out MATH problems with Qwen2.5-Coder-1.5B
(RESULTS "Retrieval when unsure"), answers under 0.8 were right 4 times in 30, those over it
20 times in 29.

Example:
    >>> round(lowest_window_confidence([-0.01] * 40 + [-1.0] * 8 + [-0.01] * 40, window=8), 3)
    0.368
    >>> lowest_window_confidence([]) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def lowest_window_confidence(logprobs: Sequence[float], window: int = 32) -> float | None:
    """exp(the lowest mean of ``window`` consecutive log-probabilities); a text shorter than
    ``window`` is one window. None without log-probabilities (the runtime reports none)."""
    if not logprobs:
        return None
    width = min(window, len(logprobs))
    total = lowest = sum(logprobs[:width])
    for i in range(width, len(logprobs)):
        total += logprobs[i] - logprobs[i - width]
        lowest = min(lowest, total)
    return math.exp(lowest / width)
