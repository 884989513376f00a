"""rader.training."""
