"""The packages' layering and the cache of built agents that the page and `rader serve` share."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

import rader.ui
from rader.agent import PartsCache


def imported_modules(folder: Path) -> set[str]:
    """Every module a package's code imports (docstring examples are not code)."""
    names = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    return names


def test_the_page_imports_nothing_from_the_composition_root():
    names = imported_modules(Path(rader.ui.__file__).parent)
    assert "rader.agent.runner" in names  # the walk sees the page's real imports
    assert not [name for name in names if name.startswith("rader.app")]


def test_parts_cache_keeps_the_most_recently_used():
    cache: PartsCache[str] = PartsCache(size=2)
    builds = []

    def build(key):
        builds.append(key)
        return f"built {key}"

    for key in ["a", "b", "a", "c", "a", "b"]:  # "a" is used again before "c": "b" goes, not "a"
        assert cache.get(key, lambda key=key: build(key)) == f"built {key}"
    assert builds == ["a", "b", "c", "b"] and len(cache) == 2


def test_parts_cache_builds_a_key_once_for_concurrent_callers():
    cache: PartsCache[int] = PartsCache(size=4)
    builds = []

    def slow_build():
        builds.append(1)
        time.sleep(0.2)
        return len(builds)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow_build))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == [1] and results == [1, 1, 1, 1]


def test_each_setting_has_one_source():
    """The settings sections take their fields' defaults from the config dataclasses they build:
    a field added to one and not the other, or a default written twice, shows here."""
    import dataclasses

    from rader.agent import AgentConfig, LLMConfig
    from rader.app.settings import AgentSettings, LLMSettings, RetrieverSettings
    from rader.retriever import RetrieverOptions

    pairs = [(AgentSettings, AgentConfig, {"retriever", "examples"}, {"compute_limits"}),
             (LLMSettings, LLMConfig, set(), {"threads"}),
             (RetrieverSettings, RetrieverOptions, {"kind", "k"}, {"faiss_options"})]
    for section, config, section_only, config_only in pairs:
        declared = {f.name: f.default for f in dataclasses.fields(config)}
        assert set(section.model_fields) - section_only == set(declared) - config_only, section.__name__
        for name, field in section.model_fields.items():
            if name not in section_only:
                assert field.default == declared[name], f"{section.__name__}.{name}"
