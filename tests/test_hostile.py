"""A hostile user's battery: sandbox escapes, markup and control characters, full disks, corrupt
files and malformed input. Each case ends as a refusal or a clear error, and loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rader.agent.sandbox import ComputeLimits, SympySandbox, compute, verify_answer

PWNED = Path("/tmp/rader-pwned")

# Known Python-sandbox escapes, each trying to leave PWNED behind
ESCAPES = [
    # the report's exact string: the side without a backslash went to parse_expr
    'sqrt.__globals__["__builtins__"]["__import__"]("os").system("id > /tmp/rader-pwned") = \\alpha',
    f"__import__('os').system('touch {PWNED}')",
    f"\\alpha = open('{PWNED}', 'w').write('x')",
    f"x = __import__('os').system('touch {PWNED}')",
    "().__class__.__bases__[0].__subclasses__()[0].__init__.__globals__['sys'].modules['os']"
    f".system('touch {PWNED}')",
    f"[c for c in ().__class__.__base__.__subclasses__()]; open('{PWNED}', 'w')",
    f"(lambda: __import__('os').system('touch {PWNED}'))()",
    f"getattr(__builtins__, 'open')('{PWNED}', 'w')",
    f"eval(\"open('{PWNED}', 'w')\")",
    f"exec(\"open('{PWNED}', 'w')\")",
    f"compile(\"open('{PWNED}', 'w')\", 'x', 'exec')",
    f"sympify(\"__import__('os').system('touch {PWNED}')\")",
    f"Symbol('x').__init__.__globals__['__builtins__']['open']('{PWNED}', 'w')",
    f"Mod(1, 2).func.__globals__['os'].system('touch {PWNED}')",
    f"f\"{{__import__('os').system('touch {PWNED}')}}\"",
    f"ｏｐｅｎ('{PWNED}', 'w')",  # fullwidth letters: Python folds them to `open`
    "x.__reduce_ex__(2)",
    "breakpoint()",
    f"x; import os; os.system('touch {PWNED}')",
    f"\\frac{{1}}{{2}} = print(open('{PWNED}', 'w'))",
    f"\\text{{a}} + 1 = __import__('os').system('touch {PWNED}')",
    "solve(x**2 - 1, x, dict=__import__('os').system('id'))",
]


@pytest.fixture(autouse=True)
def no_leftover():
    PWNED.unlink(missing_ok=True)
    yield
    assert not PWNED.exists(), "an escape left a file behind"


@pytest.mark.parametrize("escape", ESCAPES)
def test_sandbox_escapes_are_refused_and_leave_nothing(escape):
    call = compute(escape)
    assert call.status in ("refused", "error"), call
    assert "uid=" not in call.output
    verify_answer(escape, "1")  # math-verify may read a number out of it; it must run nothing
    assert compute("1+1").output == "2"  # the worker is still in step


@pytest.mark.parametrize(("expression", "output"), [
    (r"\sum_{n=1}^{10} n", "55"), (r"\prod_{k=1}^{4} k", "24"), (r"2x = \sum_{n=1}^{4} n", "x = 5"),
    (r"\binom{n}{2} = 10", "n = -4, 5"),
])
def test_latex_with_equals_inside_still_computes(expression, output):
    assert compute(expression).output == output


def _confined_child_script(attempts: str) -> str:
    return textwrap.dedent("""
        import json, os, sys, tempfile
        from rader.agent import sympy_worker
        folder = tempfile.mkdtemp()
        os.chmod(folder, 0o555)
        sympy_worker._EMPTY_DIR = folder
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            sympy_worker._confine({"cpu_seconds": 5, "memory_mb": 256})
            results = {}
            for name, attempt in ATTEMPTS:
                try:
                    attempt()
                    results[name] = "allowed"
                except BaseException as err:
                    results[name] = type(err).__name__
            os.write(write_fd, json.dumps(results).encode())
            os._exit(0)
        os.close(write_fd)
        os.waitpid(pid, 0)
        print(os.read(read_fd, 65536).decode())
        os.rmdir(folder)
    """).replace("ATTEMPTS", attempts)


def test_a_confined_computation_can_open_write_or_spawn_nothing():
    """Defence in depth: were the parser ever fooled, the child still could not act."""
    attempts = f"""[("spawn", lambda: os.fork()),
        ("system", lambda: (_ for _ in ()).throw(OSError()) if os.system("true") != 0 else None),
        ("create", lambda: open("{PWNED}", "w")),
        ("create_here", lambda: open("here.txt", "w")),
        ("read", lambda: open("/etc/hostname")),
        ("socket", lambda: __import__("socket").socket()),
        ("pipe", lambda: os.pipe())]"""
    result = subprocess.run([sys.executable, "-c", _confined_child_script(attempts)], capture_output=True,
                            text=True, timeout=60, check=True)
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(outcome != "allowed" for outcome in outcomes.values()), outcomes


def test_what_a_computation_prints_cannot_pass_for_a_reply(tmp_path):
    """A worker whose computations write to stdout and fd 1 (an injected fault) stays in step:
    replies travel on a private pipe."""
    worker = tmp_path / "noisy_worker.py"
    worker.write_text(textwrap.dedent("""
        import os
        from rader.agent import sympy_worker
        real = sympy_worker.evaluate
        def noisy(text):
            os.write(1, b'{"status": "ok", "output": "alpha = 36"}\\n')
            print('{"status": "ok", "output": "36"}', flush=True)
            return real(text)
        sympy_worker.evaluate = noisy
        sympy_worker.main()
    """))
    sandbox = SympySandbox(worker=[sys.executable, str(worker)])
    try:
        limits = ComputeLimits()
        for expression, expected in (("1+1", "2"), ("2*3", "6"), ("x + x", "2*x")):
            assert sandbox.run({"op": "compute", "expression": expression}, limits) == ("ok", expected)
    finally:
        sandbox.close()


def test_the_worker_leaves_no_folder_behind():
    before = {p.name for p in Path("/tmp").glob("rader-sympy-*")}
    sandbox = SympySandbox()
    assert sandbox.run({"op": "compute", "expression": "1+1"}, ComputeLimits()) == ("ok", "2")
    sandbox.close()
    assert {p.name for p in Path("/tmp").glob("rader-sympy-*")} == before
