"""The web app's generated types (web/src/gen) match the gateway's schemas: the JSON schemas
always, the TypeScript too where the web app's packages are installed (`./dev` does that).
Regenerate with `./dev web:types`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import get_args

import pytest

from switchboard_common.turns import StreamEvent, TurnError
from switchboard_gateway import webtypes
from switchboard_gateway.domain.protocol import ServerFrame

FIX = "stale: regenerate with `./dev web:types` and commit web/src/gen"


def test_schemas_are_current(repo_root: Path, tmp_path: Path) -> None:
    committed = repo_root / "web" / "src" / "gen"
    for path in webtypes.write(tmp_path):
        assert path.read_text() == (committed / path.name).read_text(), f"{path.name} {FIX}"


def test_typescript_is_current(repo_root: Path, tmp_path: Path) -> None:
    web = repo_root / "web"
    node = shutil.which("node")
    if node is None or not (web / "node_modules" / "json-schema-to-typescript").is_dir():
        pytest.skip("web/node_modules missing: `./dev web` installs it")
    webtypes.write(tmp_path)
    subprocess.run([node, "scripts/gen-types.mjs", str(tmp_path), str(tmp_path)], cwd=web,
                   check=True, timeout=120)
    for name in ("frames.ts", "api.ts"):
        assert (tmp_path / name).read_text() == (web / "src" / "gen" / name).read_text(), (
            f"{name} {FIX}")


def test_every_server_frame_is_typed() -> None:
    """A new stream event must join `protocol.ServerFrame`, or the page never learns of it.
    (`TurnError` is written as the gateway's `ErrorFrame`, its superset.)"""
    union = get_args(get_args(StreamEvent)[0])
    server = set(get_args(ServerFrame))
    missing = [e.__name__ for e in union if e not in server and e is not TurnError]
    assert not missing, f"add {missing} to switchboard_gateway.domain.protocol.ServerFrame"
    names = set(webtypes.frames()["$defs"])
    assert {"Delta", "TurnDone", "ErrorFrame", "ActionPending", "TurnObserved", "Cancel",
            "Watch"} <= names
