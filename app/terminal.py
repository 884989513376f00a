"""The terminal the CLI prints to: every string is text, never markup or escape sequences.

Problems, corpus entries, model output and file names are untrusted: ``[/]`` must not crash
rich's markup parser, ``[link=...]`` must not become a link, and an escape sequence must not
clear the screen or retitle the window. `SafeConsole` renders every string it is handed
(plain prints, table cells) as text with control characters made visible; styled output is
built from `rich.text.Text` pieces whose content goes through `visible`.

Example:
    >>> visible("x\\x1b[2Jy")
    'x\\\\x1b[2Jy'
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

# C0 and C1 controls but newline and tab, DEL, and the bidirectional overrides ("Trojan source")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: object) -> str:
    """``text`` as a string whose control characters are shown as ``\\xNN``/``\\uNNNN`` escapes."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], str(text))


def plain(text: object, style: str = "") -> Text:
    """A rich `Text` of untrusted content: no markup, control characters visible."""
    return Text(visible(text), style=style)


class SafeConsole(Console):
    """A console whose strings are never markup, emoji codes or terminal controls."""

    def __init__(self, **kwargs) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, **kwargs)

    def render_str(self, text: str, **kwargs) -> Text:
        kwargs["markup"] = kwargs["emoji"] = False
        return super().render_str(visible(text), **kwargs)


console = SafeConsole()
err_console = SafeConsole(stderr=True)


def print_json(data: object) -> None:
    """``data`` as JSON on stdout: the machine-readable twin of a command's table."""
    console.print_json(json.dumps(data, ensure_ascii=False))


def exit_failed(message: str) -> NoReturn:
    """Exit 1 after the results are out: some of the work failed (not a usage error, which exits 2)."""
    err_console.print(plain("error: ", style="bold red").append(plain(message)), soft_wrap=True)
    raise typer.Exit(1)


# Libraries that draw their own bars: one not imported yet reads its variable when it is, one
# imported already is told directly (importing them here would cost every command seconds).
# tqdm's own TQDM_DISABLE is set with the logging (`rader.app.wiring.configure_logging`).
_PROGRESS_VARIABLES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")
_PROGRESS_SWITCHES = (("huggingface_hub.utils", "disable_progress_bars"),
                      ("datasets.utils.logging", "disable_progress_bar"),
                      ("transformers.utils.logging", "disable_progress_bar"))


def quiet_library_progress() -> None:
    """Switch off the progress bars of huggingface_hub, datasets and transformers (``--no-progress``)."""
    for name in _PROGRESS_VARIABLES:
        os.environ[name] = "1"
    for module, switch in _PROGRESS_SWITCHES:
        if module in sys.modules:
            getattr(sys.modules[module], switch)()


def download_progress(show: bool = True):
    """A rich progress bar (on stderr) for model downloads, and the callback that feeds it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    progress = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), console=err_console, transient=True, disable=not show)
    task = progress.add_task("fetching model", total=None)
    return progress, lambda done, total: progress.update(task, completed=done, total=total)


@contextmanager
def counting_bar(description: str, total: int, show: bool) -> Iterator[Callable[[int], None]]:
    """A bar on stderr (stdout stays for tables and JSON) counting finished items; yields the
    callback that moves it."""
    from rich.progress import Progress

    with Progress(console=err_console, disable=not show) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)
