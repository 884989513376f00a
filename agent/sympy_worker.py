"""The sympy worker behind `rader.agent.sandbox`: one JSON request per line on stdin.

For each request it forks a confined child (`_confine`: CPU and memory limits, no file
writes, no new processes or descriptors, an empty read-only folder) that parses the
expression with `rader.agent.safe_math` (never ``eval``), evaluates or solves it, and writes
the result to a pipe of its own; the worker kills a child that outlives the wall-clock
limit. Replies are JSON lines on a private pipe named by ``--reply-fd`` (stdout and stderr
lead to /dev/null): ``{"status": "ok" | "error" | "refused" | "timeout" | "memory",
"output": "..."}``. A request is
``{"op": "compute", "expression": ...}`` or
``{"op": "verify", "gold": ..., "answer": ..., "answer_type": ...}``
plus ``cpu_seconds``, ``memory_mb`` and ``wall_seconds``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import select
import signal
import sys

import sympy

from rader.agent.protocol import last_boxed
from rader.agent.safe_math import RefusedExpression, parse_math


def split_equation(text: str) -> tuple[str, str] | None:
    """The two sides of an equation whose ``=`` stands outside every bracket (``x^2 = 4``), or
    None: ``\\sum_{n=1}^{10} n`` is no equation, and ``==``, ``<=``, ``>=``, ``!=`` are comparisons."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if char == "=" and depth == 0:
            before, after = text[i - 1:i], text[i + 1:i + 2]
            if before in ("=", "<", ">", "!") or after == "=":
                return None
            return text[:i], text[i + 1:]
    return None


def _value(text: str):
    value = parse_math(text)
    return value.doit() if isinstance(value, sympy.Basic) else value


_SHAPING_CALL = re.compile(r"\s*(factor|expand)\s*\(.*\)\s*$", re.S)


def evaluate(text: str) -> str:
    """An equation in one unknown is solved; anything else is simplified. The text is parsed by
    `rader.agent.safe_math` (an allowlisted expression tree, never ``eval``)."""
    sides = split_equation(text)
    if sides is not None:
        equation = sympy.Eq(*(_value(side) for side in sides))
        if not isinstance(equation, sympy.Eq):  # a numeric equation sympy already decided
            return str(equation)
        unknowns = sorted(equation.free_symbols, key=str)
        if len(unknowns) != 1:
            return f"{sympy.simplify(equation.lhs - equation.rhs)} = 0"
        solutions = sympy.solve(equation, unknowns[0])
        return f"{unknowns[0]} = " + ", ".join(map(str, solutions)) if solutions else "no solution"
    value = parse_math(text)
    if isinstance(value, sympy.Basic):
        if value.is_Float:
            value = sympy.nsimplify(value)
        elif not _SHAPING_CALL.match(text):  # simplify would undo an asked-for factor() or expand()
            value = sympy.simplify(value.doit())
    return str(value)


FLOAT_RELATIVE_TOLERANCE = 0.04  # TheoremQA's own rule for answers of type float
_TRUE_WORDS, _FALSE_WORDS = {"true", "yes", "t"}, {"false", "no", "f"}


def _unboxed(text: str) -> str:
    return (last_boxed(text) or text).strip().strip("$").strip()


def _numbers(text: str, parsed: list) -> list[float] | None:
    """The number(s) an answer states: plain float syntax first (math-verify misreads
    ``1.2e-5``), else math-verify's sympy value."""
    items = [part.strip() for part in _unboxed(text).strip("[]()").split(",")]
    try:
        return [float(item) for item in items]
    except ValueError:
        pass
    value = parsed[0] if parsed else None
    if isinstance(value, sympy.Basic) and value.is_number:
        return [float(value)]
    return None


def verify_answer(gold: str, answer: str, answer_type: str | None = None) -> str:
    """math-verify's equivalence of two answers: "true" or "false". A ``bool`` gold compares
    as yes/no words; a ``float`` gold (or list of floats) also accepts a number within 4 %
    relative error. Math-verify's own signal-based timeouts are off: this child's CPU limit
    bounds the work instead."""
    from math_verify import parse as mv_parse
    from math_verify import verify

    def parsed(text: str):
        boxed = text if "\\boxed" in text else f"\\boxed{{{text}}}"
        return mv_parse(boxed, parsing_timeout=None)

    if answer_type == "bool":
        words = [_unboxed(text).lower().strip(". ") for text in (gold, answer)]
        truth = [w in _TRUE_WORDS if w in _TRUE_WORDS | _FALSE_WORDS else None for w in words]
        return "true" if truth[0] is not None and truth[0] == truth[1] else "false"
    gold_parsed, answer_parsed = parsed(gold), parsed(answer)
    if verify(gold_parsed, answer_parsed, timeout_seconds=None):
        return "true"
    if answer_type in ("float", "list of float"):
        wanted, got = _numbers(gold, gold_parsed), _numbers(answer, answer_parsed)
        if wanted and got and len(wanted) == len(got) and all(
                # relative only, as TheoremQA scores: an absolute slack would accept 0 for a
                # gold of 4.7e-34 (a de Broglie wavelength in metres)
                abs(g - w) <= FLOAT_RELATIVE_TOLERANCE * abs(w)
                for w, g in zip(wanted, got, strict=True)):
            return "true"
    return "false"


def _address_space() -> int:
    """Bytes of virtual memory this process maps now (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


NOBODY = 65534  # the unprivileged user and group a root worker's children run as


def _confine(request: dict) -> None:
    """Limits a computation runs under (defence in depth: `safe_math` never runs the text).

    CPU seconds and address-space growth; no bytes written to any file (``RLIMIT_FSIZE``);
    no new processes (``RLIMIT_NPROC``, after dropping root to ``nobody``, for whom it holds);
    no new file descriptors at all (``RLIMIT_NOFILE`` at the lowest free one), so nothing can
    be opened, created, connected or piped; an empty, read-only working folder.
    """
    cpu_seconds, memory_mb = int(request["cpu_seconds"]), int(request["memory_mb"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    # the limit is on growth: the worker's imports alone map ~1 GB of address space
    limit = _address_space() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails with EFBIG instead of killing
    os.chdir(_EMPTY_DIR)
    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    lowest_free = os.dup(0)  # the lowest free descriptor number: allow none at or above it
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, lowest_free))


def _child(request: dict, out_fd: int) -> None:
    memory_mb = int(request["memory_mb"])
    try:
        _confine(request)
        if request.get("op") == "verify":
            output = verify_answer(request["gold"], request["answer"], request.get("answer_type"))
        else:
            output = evaluate(request["expression"])
        reply = {"status": "ok", "output": output[:2000]}
    except RefusedExpression as err:
        reply = {"status": "refused", "output": f"refused: {err}"}
    except MemoryError:
        reply = {"status": "memory", "output": f"needed more than {memory_mb} MB"}
    except RecursionError:
        reply = {"status": "error", "output": "the expression nests too deeply"}
    except Exception as err:
        reply = {"status": "error", "output": f"{type(err).__name__}: {str(err)[:300]}"}
    os.write(out_fd, json.dumps(reply).encode())


def run_one(request: dict, reply_fd: int) -> dict:
    """Fork a confined child for one request; its answer comes back on a pipe of its own."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only its own pipe's write end stays open beside 0-2 (all /dev/null)
        try:
            os.close(read_fd)
            os.close(reply_fd)
            os.dup2(1, 0)  # the worker's requests are not the child's to read
            _child(request, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], float(request["wall_seconds"]))
    data = b""
    if ready:
        while chunk := os.read(read_fd, 65536):
            data += chunk
    os.close(read_fd)
    if not data:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if data:
        try:
            reply = json.loads(data)
        except ValueError:
            reply = None
        well_formed = isinstance(reply, dict) and isinstance(reply.get("output"), str)
        if well_formed and reply.get("status") in _STATUSES:
            return reply
        return {"status": "error", "output": "the computation wrote an unreadable reply"}
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        limit = "wall-clock" if not ready else "CPU"
        return {"status": "timeout", "output": f"stopped by the {limit} time limit"}
    return {"status": "memory", "output": f"stopped over the {request['memory_mb']} MB limit"}


_STATUSES = ("ok", "error", "refused", "timeout", "memory")
_WARM_UP = ("x^2 - 5x + 6 = 0", r"\frac{1}{2} + \sqrt{16}", r"\sum_{n=1}^{10} n^2", r"\prod_{k=1}^{4} k",
            "factor(x^3 - 1)",
            "simplify(sin(x)^2 + cos(x)^2)", r"\int_0^1 x^2 dx", r"\lim_{x \to 0} \frac{\sin x}{x}",
            "totient(10) + gcd(12, 18)", "isprime(97)", "divisors(12)", "solve(x^3 - 6x^2 + 11x - 6, x)")


_PRELOAD = ("concrete", "integrals", "series", "solvers", "simplify", "polys", "functions", "sets",
            "matrices", "ntheory", "logic", "calculus", "core", "assumptions", "printing")
_SKIP = (".tests", ".benchmarks", "llvmjitcode", "compatibility", "trace", "preview")


def _warm_up() -> None:
    """Import what computations use before any child runs: a child may open no file, so a
    module sympy imports lazily (``\\prod`` imports ``sympy.concrete.products``) would fail
    there. ~2 s, once per worker."""
    import importlib
    import pkgutil
    import warnings

    warnings.simplefilter("ignore")
    for name in _PRELOAD:
        package = importlib.import_module(f"sympy.{name}")
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not any(part in module.name for part in _SKIP):
                with contextlib.suppress(Exception):
                    importlib.import_module(module.name)
    for expression in _WARM_UP:
        with contextlib.suppress(Exception):  # a sympy release that reads one differently
            evaluate(expression)
    with contextlib.suppress(Exception):
        verify_answer("\\frac{1}{2}", "0.5", None)
        verify_answer("3.14", "3.1415", "float")


_EMPTY_DIR = "/"


def main() -> None:
    """Serve requests from stdin; replies go to the descriptor named on the command line
    (a private pipe), never to stdout, so nothing a computation prints can pass for a reply."""
    global _EMPTY_DIR
    import tempfile

    reply_fd = int(sys.argv[sys.argv.index("--reply-fd") + 1])
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # stdout and stderr lead nowhere
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.dont_write_bytecode = True
    with tempfile.TemporaryDirectory(prefix="rader-sympy-") as folder:
        os.chmod(folder, 0o555)
        _EMPTY_DIR = folder
        _warm_up()
        replies = os.fdopen(reply_fd, "w", buffering=1)
        for line in sys.stdin:
            try:
                reply = run_one(json.loads(line), reply_fd)
            except (ValueError, KeyError, TypeError) as err:
                reply = {"status": "error", "output": f"bad request: {err}"}
            replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
