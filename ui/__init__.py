"""rader.ui: the student's web page (Gradio) over the agent, its store and its retrievers.

The page imports nothing from `rader.app`: `rader ui` hands it a `PageBackend` built from
the settings (`rader.app.cli_ui.page_backend`).

Example:
    >>> from rader.app.cli_ui import page_backend
    >>> from rader.app.settings import load_settings
    >>> from rader.ui import serve
    >>> serve(page_backend(load_settings(config_file=None)[0]))  # doctest: +SKIP
"""

from rader.ui.backend import PageBackend, PageDefaults, PageServer, RunChoices
from rader.ui.examples import Example, load_examples
from rader.ui.html import CSS, LATEX_DELIMITERS
from rader.ui.page import build_app, serve

__all__ = ["CSS", "LATEX_DELIMITERS", "Example", "PageBackend", "PageDefaults", "PageServer", "RunChoices",
           "build_app", "load_examples", "serve"]
