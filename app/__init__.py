"""rader.app."""
