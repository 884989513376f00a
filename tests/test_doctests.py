"""The examples in docstrings run: a public entry point's example that drifted fails here."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rader.agent
import rader.agent.llm
import rader.app
import rader.retriever
import rader.training
import rader.ui

# the vLLM chat model imports vLLM (its own venv, tests/test_vllm.py); the worker's main serves stdin
NOT_HERE = {"rader.agent.llm.vllm_chat", "rader.agent.sympy_worker"}
MODULES = sorted(
    module.name
    for package in (rader.agent, rader.agent.llm, rader.app, rader.retriever, rader.training, rader.ui)
    for module in pkgutil.iter_modules(package.__path__, package.__name__ + ".")
    if module.name not in NOT_HERE
)


@pytest.mark.parametrize("name", [*MODULES, *(p.__name__ for p in (rader.agent, rader.retriever))])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RADER_HOME", str(tmp_path / "home"))
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
