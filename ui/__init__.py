"""rader.ui: the student's web page (Gradio) over the agent, its store and its retrievers.

Example:
    >>> from rader.app.settings import load_settings
    >>> from rader.ui import build_app, serve
    >>> settings, _ = load_settings(config_file=None)
    >>> serve(settings)  # doctest: +SKIP
"""

from rader.ui.app import build_app, serve
from rader.ui.examples import Example, load_examples
from rader.ui.render import CSS, LATEX_DELIMITERS

__all__ = ["CSS", "LATEX_DELIMITERS", "Example", "build_app", "load_examples", "serve"]
