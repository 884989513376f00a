"""The **compute** tool: sympy in a separate process with CPU-time and memory limits.

Model text is never handed to ``eval``/``sympify``: `rader.agent.safe_math` turns it into
an expression tree and builds sympy values from an allowlist (numbers, symbols, operators,
a set of sympy functions), LaTeX and plain text alike; anything else ends as a ``refused``
tool call. The work runs in a forked child of a small worker process (clean, so an
address-space limit is meaningful) under CPU, memory, file, process and descriptor limits
(`rader.agent.sympy_worker`), and is killed at a wall-clock deadline: ``9**9**9**9`` ends as
a recorded ``timeout``, not a hung agent. Replies come on a private pipe, so nothing a
computation prints can pass for one.

Example:
    >>> compute("x^2 - 5x + 6 = 0").output
    'x = 2, 3'
    >>> compute(r"\\frac{1}{2} + \\frac{1}{3}").output
    '5/6'
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from rader.agent.records import ToolCall


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
    return None


class SympySandbox:
    """A long-lived worker process (``python -m rader.agent.sympy_worker``) that forks one
    limited child per computation. Forking a small, clean worker, not the agent process
    (which holds models and threads), keeps the limits meaningful and the fork cheap."""

    def __init__(self, worker: list[str] | None = None) -> None:
        self._worker = worker or [sys.executable, "-m", "rader.agent.sympy_worker"]
        self._process: subprocess.Popen | None = None
        self._replies = None  # the read end of the worker's private reply pipe
        self._lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._stop()
            read_fd, write_fd = os.pipe()
            try:
                self._process = subprocess.Popen(
                    [*self._worker, "--reply-fd", str(write_fd)],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    text=True, bufsize=1, pass_fds=(write_fd,),
                )
            finally:
                os.close(write_fd)
            self._replies = os.fdopen(read_fd, "r", encoding="utf-8")
        return self._process

    def run(self, request: dict, limits: ComputeLimits) -> tuple[str, str]:
        request = {**request, "cpu_seconds": limits.cpu_seconds, "memory_mb": limits.memory_mb,
                   "wall_seconds": limits.wall_seconds}
        with self._lock:
            process = self._ensure()
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                # the first request waits for the worker's start-up (imports and warm-up)
                ready, _, _ = select.select([self._replies], [], [], limits.wall_seconds + 30)
                line = self._replies.readline() if ready else ""
                reply = json.loads(line) if line else None
            except (OSError, ValueError):
                reply = None
            if not isinstance(reply, dict) or not {"status", "output"} <= reply.keys():
                self._stop()  # the worker is stuck, gone or out of step: start afresh next time
                return "error", "the sympy worker stopped; it restarts on the next call"
            return reply["status"], reply["output"]

    def _stop(self) -> None:
        """End the worker: closing its stdin lets it remove its folder; a stuck one is killed."""
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None
        if self._replies is not None:
            self._replies.close()
            self._replies = None

    def close(self) -> None:
        with self._lock:
            self._stop()


_SANDBOX = SympySandbox()
atexit.register(_SANDBOX.close)


def compute(expression: str, *, limits: ComputeLimits = ComputeLimits()) -> ToolCall:
    """Evaluate or solve ``expression`` in the sandbox; every outcome is a `ToolCall`."""
    started = time.perf_counter()
    expression = expression.strip().strip("$").strip()
    refused = check_expression(expression, limits)
    if refused:
        return ToolCall("sympy", expression, f"refused: {refused}", "refused", 0.0)
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
