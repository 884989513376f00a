"""pyproject.toml declares what the code imports, and nothing that nothing imports."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions

from conftest import REPO

PACKAGES = ("agent", "app", "retriever", "training", "ui")
# declared, never imported: what a library loads by name, and tools
RUNTIME_ONLY = {
    "accelerate": "transformers' Trainer (rader train) requires it",
    "gguf": "transformers reads GGUF checkpoints with it (tests dequantise the test LLM)",
    "pytest": "the test runner", "ruff": "the linter (tests/test_style.py runs it)",
    "uvicorn": "rader serve runs the ASGI app with it",
}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, set[str]]:
    """main / an extra's name -> the distributions it declares."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"main": project["dependencies"], **project["optional-dependencies"]}
    return {group: {normalized(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]) for req in reqs}
            for group, reqs in groups.items()}


def imported(folders: list[str]) -> set[str]:
    """Top-level names of the third-party modules imported under ``folders``."""
    names = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
                elif isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
    ours = {"rader", "conftest", "scripted", *(p.stem for p in (REPO / "tests").glob("*.py"))}
    return names - set(sys.stdlib_module_names) - ours


@cache
def providers(module: str) -> frozenset[str]:
    """The distributions that install ``module`` (a namespace such as langgraph has several; one
    not installed, e.g. vllm, goes by its own name)."""
    return frozenset(normalized(dist) for dist in installed().get(module, [module]))


@cache
def installed() -> dict[str, list[str]]:
    return packages_distributions()


def undeclared(modules: set[str], allowed: set[str]) -> list[str]:
    return sorted(module for module in modules if not providers(module) & allowed)


def test_every_imported_package_is_declared():
    groups = declared()
    assert not undeclared(imported(list(PACKAGES)), groups["main"] | groups["vllm"] | groups["ray"])
    assert not undeclared(imported(["tests"]), set().union(*groups.values()))


def test_every_declared_package_is_imported_or_loaded_by_name():
    used = set().union(*map(providers, imported([*PACKAGES, "tests", "benchmarks"])))
    unused = set().union(*declared().values()) - used - set(RUNTIME_ONLY)
    assert not unused, f"declared but never imported: {sorted(unused)}"
