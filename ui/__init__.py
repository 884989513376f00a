"""rader.ui."""
