"""Joining a model from its chunk packages: verified, joined once, refused when wrong."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard_llm_stream.adapters.model_files import ModelFileError, model_file
from switchboard_llm_stream.domain.local_models import LocalModel

CHUNKS = [b"GGUF" + b"a" * 3000, b"b" * 2500, b"c" * 10]


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ...]]:
    """Three fake part packages shaped like the real ones (`get_part_path()`)."""
    site = tmp_path / "site"
    names = []
    for i, chunk in enumerate(CHUNKS, 1):
        name = f"fake_model_part{i}_{tmp_path.name[-6:]}"
        pkg = site / name
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        (pkg / "__init__.py").write_text(
            "import os\ndef get_part_path():\n    return os.path.join(os.path.dirname("
            f"os.path.abspath(__file__)), 'data', 'part{i:02d}.bin')\n")
        names.append(name)
    monkeypatch.syspath_prepend(str(site))
    yield tuple(names)
    for name in names:
        sys.modules.pop(name, None)


def spec(parts: tuple[str, ...], digest: str | None = None, size: int | None = None
         ) -> LocalModel:
    whole = b"".join(CHUNKS)
    return LocalModel(key="qwen2.5-coder-0.5b", name="fake", file_name="fake.gguf",
                      parts=parts, sha256=digest or hashlib.sha256(whole).hexdigest(),
                      size=len(whole) if size is None else size)


def test_joins_once_and_reuses_the_stamped_file(parts: tuple[str, ...], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    path = model_file(spec(parts), models)
    assert path.read_bytes() == b"".join(CHUNKS)
    assert (models / "fake.gguf.verified").exists()
    assert not list(models.glob("*.partial"))

    # Second start: the stamp matches, nothing is hashed or joined again.
    def no_hashing(_: Path) -> str:
        raise AssertionError("re-hashed a stamped file")

    monkeypatch.setattr("switchboard_llm_stream.adapters.model_files._hash_file", no_hashing)
    assert model_file(spec(parts), models) == path


def test_a_changed_file_is_verified_again_and_rejoined(parts: tuple[str, ...],
                                                       tmp_path: Path) -> None:
    models = tmp_path / "models"
    path = model_file(spec(parts), models)
    path.write_bytes(b"tampered")
    assert model_file(spec(parts), models).read_bytes() == b"".join(CHUNKS)


def test_a_wrong_hash_is_refused_and_nothing_is_left(parts: tuple[str, ...],
                                                     tmp_path: Path) -> None:
    models = tmp_path / "models"
    with pytest.raises(ModelFileError, match="not the pinned release"):
        model_file(spec(parts, digest="0" * 64), models)
    with pytest.raises(ModelFileError, match="not the pinned release"):
        model_file(spec(parts, size=1), models)
    assert not (models / "fake.gguf").exists() and not list(models.glob("*.partial"))


def test_a_missing_part_package_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"requirements-models\.txt"):
        model_file(spec(("no_such_model_part1",)), tmp_path / "models")
