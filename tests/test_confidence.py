"""The confidence of a streamed solution: the lowest window, and the early check on a stream."""

from __future__ import annotations

import random

import pytest

from rader.agent.confidence import falls_under, lowest_window_confidence


def test_lowest_window_confidence_is_the_least_sure_stretch():
    dip = [-0.01] * 40 + [-1.0] * 8 + [-0.01] * 40
    assert lowest_window_confidence(dip, window=8) == pytest.approx(0.3679, abs=1e-4)
    assert lowest_window_confidence([-0.5, -0.5], window=32) == pytest.approx(0.6065, abs=1e-4)  # one window
    assert lowest_window_confidence([]) is None


def under(prefix: list[float], window: int, below: float) -> bool:
    return len(prefix) >= window and lowest_window_confidence(prefix, window) < below


@pytest.mark.parametrize("seed", range(5))
def test_a_stream_falls_under_exactly_when_its_lowest_full_window_does(seed):
    """Fed the growing list a few tokens at a time, the check says True at the first chunk after
    which some full window averages under the threshold, and never before."""
    rng = random.Random(seed)
    for _ in range(60):
        logprobs = [rng.choice([-0.01, -0.05, -0.3, -1.5]) for _ in range(rng.randint(1, 120))]
        window, below = rng.randint(1, 40), rng.choice([0.5, 0.7, 0.8, 0.9])
        fallen, before, end, said = falls_under(below, window), 0, 0, False
        while end < len(logprobs) and not said:
            before, end = end, min(len(logprobs), end + rng.randint(1, 5))
            said = fallen(logprobs[:end])
        assert said == under(logprobs[:end], window, below)
        assert not under(logprobs[:before], window, below)  # not a chunk earlier
