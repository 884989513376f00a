"""rader.agent."""
