"""The sympy worker behind `rader.agent.sandbox`: one JSON request per line on stdin.

For each request it forks a child that sets ``RLIMIT_CPU`` and ``RLIMIT_AS``, parses the
expression without ``eval`` on raw text, evaluates or solves it, and writes the result to a
pipe; the worker kills a child that outlives the wall-clock limit. Replies are JSON lines:
``{"status": "ok" | "error" | "timeout" | "memory", "output": "..."}``. A request is
``{"op": "compute", "expression": ...}`` or
``{"op": "verify", "gold": ..., "answer": ..., "answer_type": ...}``
plus ``cpu_seconds``, ``memory_mb`` and ``wall_seconds``.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import sys

import sympy
from latex2sympy2_extended import latex2sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from rader.agent.protocol import last_boxed

_SAFE_NAMES = (
    "sqrt root sin cos tan cot sec csc asin acos atan sinh cosh tanh exp log pi E I oo "
    "factorial binomial gcd lcm floor ceiling Abs Rational Integer Symbol Float Min Max "
    "simplify expand factor solve Mod isprime primefactors divisors totient nsimplify"
).split()
_NAMESPACE = {name: getattr(sympy, name) for name in _SAFE_NAMES}
_NAMESPACE.update({"ln": sympy.log, "__builtins__": {}})
_TRANSFORMATIONS = (*standard_transformations, implicit_multiplication_application, convert_xor)


def parse(text: str) -> sympy.Basic:
    """LaTeX through latex2sympy; plain text through parse_expr over a math-only namespace."""
    if "\\" in text:
        return latex2sympy(text)
    return parse_expr(text, global_dict=dict(_NAMESPACE), transformations=_TRANSFORMATIONS)


def evaluate(text: str) -> str:
    """An equation in one unknown is solved; anything else is simplified."""
    if "=" in text and not any(op in text for op in ("==", "<=", ">=", "!=")):
        left, _, right = text.partition("=")
        equation = sympy.Eq(parse(left), parse(right))
        unknowns = sorted(equation.free_symbols, key=str)
        if len(unknowns) != 1:
            return f"{sympy.simplify(equation.lhs - equation.rhs)} = 0"
        solutions = sympy.solve(equation, unknowns[0])
        return f"{unknowns[0]} = " + ", ".join(map(str, solutions)) if solutions else "no solution"
    value = parse(text)
    if isinstance(value, sympy.Basic):
        value = sympy.nsimplify(value) if value.is_Float else sympy.simplify(value)
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
                abs(g - w) <= FLOAT_RELATIVE_TOLERANCE * abs(w) + 1e-12
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


def _child(request: dict, out_fd: int) -> None:
    cpu_seconds, memory_mb = int(request["cpu_seconds"]), int(request["memory_mb"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    # the limit is on growth: the worker's imports alone map ~1 GB of address space
    limit = _address_space() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        if request.get("op") == "verify":
            output = verify_answer(request["gold"], request["answer"], request.get("answer_type"))
        else:
            output = evaluate(request["expression"])
        reply = {"status": "ok", "output": output[:2000]}
    except MemoryError:
        reply = {"status": "memory", "output": f"needed more than {memory_mb} MB"}
    except RecursionError:
        reply = {"status": "error", "output": "the expression nests too deeply"}
    except Exception as err:
        reply = {"status": "error", "output": f"{type(err).__name__}: {str(err)[:300]}"}
    os.write(out_fd, json.dumps(reply).encode())


def run_one(request: dict) -> dict:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
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
        return json.loads(data)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        limit = "wall-clock" if not ready else "CPU"
        return {"status": "timeout", "output": f"stopped by the {limit} time limit"}
    return {"status": "memory", "output": f"stopped over the {request['memory_mb']} MB limit"}


def main() -> None:
    for line in sys.stdin:
        try:
            reply = run_one(json.loads(line))
        except (ValueError, KeyError) as err:
            reply = {"status": "error", "output": f"bad request: {err}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
