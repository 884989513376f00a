"""The **compute** tool: sympy in a separate process with CPU-time and memory limits.

Model text is never handed to ``eval``/``sympify``. LaTeX goes through
`latex2sympy2_extended`; plain text through sympy's ``parse_expr`` with an empty
``__builtins__`` and a whitelist of math names, after a lexical check that rejects
attribute access, dunders and keywords. The work runs in a forked child of a small worker
process (clean, so an address-space limit is meaningful), under ``RLIMIT_CPU`` and
``RLIMIT_AS``, and is killed at a wall-clock deadline: ``9**9**9**9`` ends as a recorded
``timeout``, not a hung agent.

Example:
    >>> compute("x^2 - 5x + 6 = 0").output
    'x = 2, 3'
    >>> compute(r"\\frac{1}{2} + \\frac{1}{3}").output
    '5/6'
"""

from __future__ import annotations

import atexit
import json
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from rader.agent.records import ToolCall

_FORBIDDEN = re.compile(r"__|\.\s*[A-Za-z_]|\b(lambda|import|exec|eval|open|globals|locals)\b|[;`'\"\[\]{}]")
_LATEX_BRACES = re.compile(r"\\[A-Za-z]+")
@dataclass(frozen=True, slots=True)
class ComputeLimits:
    wall_seconds: float = 5.0
    cpu_seconds: int = 3
    memory_mb: int = 768
    max_chars: int = 500
    max_depth: int = 60


def check_expression(text: str, limits: ComputeLimits) -> str | None:
    """Why ``text`` is refused before any parsing, or None when it may be parsed."""
    if not text.strip():
        return "empty expression"
    if len(text) > limits.max_chars:
        return f"expression longer than {limits.max_chars} characters"
    depth = deepest = 0
    for char in text:
        depth += {"(": 1, "{": 1, ")": -1, "}": -1}.get(char, 0)
        deepest = max(deepest, depth)
    if deepest > limits.max_depth:
        return f"nesting deeper than {limits.max_depth}"
    if "\\" not in text and _FORBIDDEN.search(text):
        return "expression uses characters or names that are not mathematics"
    return None


class SympySandbox:
    """A long-lived worker process (``python -m rader.agent.sympy_worker``) that forks one
    limited child per computation. Forking a small, clean worker, not the agent process
    (which holds models and threads), keeps the limits meaningful and the fork cheap."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "rader.agent.sympy_worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            )
        return self._process

    def run(self, request: dict, limits: ComputeLimits) -> tuple[str, str]:
        request = {**request, "cpu_seconds": limits.cpu_seconds, "memory_mb": limits.memory_mb,
                   "wall_seconds": limits.wall_seconds}
        with self._lock:
            process = self._ensure()
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                ready, _, _ = select.select([process.stdout], [], [], limits.wall_seconds + 10)
                line = process.stdout.readline() if ready else ""
            except (BrokenPipeError, OSError):
                line = ""
            if not line:  # the worker itself is stuck or gone: start afresh next time
                process.kill()
                self._process = None
                return "error", "the sympy worker stopped; it restarts on the next call"
            reply = json.loads(line)
            return reply["status"], reply["output"]

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=5)
            self._process = None


_SANDBOX = SympySandbox()
atexit.register(_SANDBOX.close)


def compute(expression: str, *, limits: ComputeLimits = ComputeLimits()) -> ToolCall:
    """Evaluate or solve ``expression`` in the sandbox; every outcome is a `ToolCall`."""
    started = time.perf_counter()
    expression = expression.strip().strip("$").strip()
    refused = check_expression(expression, limits)
    if refused:
        return ToolCall("sympy", expression, refused, "error", 0.0)
    status, output = _SANDBOX.run({"op": "compute", "expression": expression}, limits)
    return ToolCall("sympy", expression, output, status, round(time.perf_counter() - started, 3))


def verify_answer(answer: str, gold: str, *, answer_type: str | None = None,
                  limits: ComputeLimits = ComputeLimits()) -> bool | None:
    """Whether ``answer`` equals the ``gold`` answer by math-verify; None if it cannot tell.
    ``answer_type`` (TheoremQA's ``bool``, ``float``...) loosens the comparison to that type's
    rule: yes/no words for ``bool``, 4 % relative error for ``float``.

    Example:
        >>> verify_answer(r"\\frac{1}{2}", "0.5")
        True
        >>> verify_answer("3.14", "3.1415", answer_type="float")
        True
    """
    if not answer.strip() or not gold.strip() or max(len(answer), len(gold)) > limits.max_chars:
        return None
    status, output = _SANDBOX.run({"op": "verify", "gold": gold, "answer": answer,
                                   "answer_type": answer_type}, limits)
    return output == "true" if status == "ok" else None
