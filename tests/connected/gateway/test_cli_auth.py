"""The self-hosted sign-in path: `switchboard up`'s bootstrap (first admin, CLI key file,
one-time link), then the CLI's admin commands and credential lookup against a real gateway."""

from __future__ import annotations

import asyncio
import io
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from switchboard_cli.admin import run_admin
from switchboard_cli.apikey import find_api_key, missing_key_message
from switchboard_cli.bootstrap import bootstrap
from switchboard_cli.chat import run_chat
from switchboard_cli.ingest import run_ingest
from tests.connected.gateway.support import Gateway

pytestmark = pytest.mark.connected


async def test_bootstrap_links_keys_and_invites(gateway: Gateway, org: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    first = await asyncio.to_thread(bootstrap, gateway.settings.valkey_url, tmp_path,
                                    gateway.http, org + "new")
    assert first.created and first.link.startswith(gateway.http + "/#signin=")
    assert stat.S_IMODE(first.key_file.stat().st_mode) == 0o600
    again = await asyncio.to_thread(bootstrap, gateway.settings.valkey_url, tmp_path,
                                    gateway.http, org + "new")
    assert not again.created and again.link != first.link  # a fresh link, the same admin
    key = first.key_file.read_text().strip()

    token = first.link.split("#signin=")[1]
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        session = (await http.post("/v1/auth/signin", json={"token": token})).json()
        assert (session["org"], session["user"], session["role"]) == (org + "new", "admin",
                                                                       "admin")

    out = io.StringIO()
    assert await asyncio.to_thread(run_admin, "invite", gateway.http, key, out,
                                   user="ana", admin=False, name="Ana") == 0
    assert "#signin=" in out.getvalue() and "'ana' as member" in out.getvalue()
    out = io.StringIO()
    assert await asyncio.to_thread(run_admin, "keys-create", gateway.http, key, out,
                                   scopes=["ingest"], name="crm", user="ana") == 0
    created_id = out.getvalue().split()[2]
    out = io.StringIO()
    assert await asyncio.to_thread(run_admin, "keys-list", gateway.http, key, out) == 0
    assert created_id in out.getvalue() and "sb_" in out.getvalue()
    assert await asyncio.to_thread(run_admin, "keys-revoke", gateway.http, key, io.StringIO(),
                                   key_id=created_id) == 0
    out = io.StringIO()
    assert await asyncio.to_thread(run_admin, "signin-link", gateway.http, key, out) == 0
    assert "for 'admin'" in out.getvalue()

    # `switchboard chat` with that key: signed in as the admin, no flags.
    out = io.StringIO()

    async def quit_at_once() -> AsyncIterator[str]:
        yield "/quit"

    url = gateway.http.replace("http", "ws") + "/ws"
    assert await run_chat(url, "c", api_key=key, lines=quit_at_once(), out=out) == 0
    assert f"as {org}new/admin" in out.getvalue()

    # `switchboard ingest` with it (the key has the ingest scope); a chat-only key is refused.
    async with httpx.AsyncClient(base_url=gateway.http, headers={"Authorization": f"Bearer {key}"}
                                 ) as http:
        assert (await http.post("/v1/clients", json={"id": "sarah", "name": "S"})
                ).status_code == 201
        chat_only = (await http.post("/v1/keys", json={"scopes": ["chat"]})).json()["secret"]
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "e1", "source": "note", "text": "Sarah likes tea"}\n')
    out = io.StringIO()
    assert await asyncio.to_thread(run_ingest, gateway.http, "sarah", events, api_key=key,
                                   out=out, wait=False) == 0
    assert "1 events queued" in out.getvalue() or "1 event" in out.getvalue(), out.getvalue()
    out = io.StringIO()
    assert await asyncio.to_thread(run_ingest, gateway.http, "sarah", events,
                                   api_key=chat_only, out=out, wait=False) == 1
    assert "'ingest' scope" in out.getvalue()

    # The CLI finds the key `up` wrote in the data dir.
    monkeypatch.delenv("SWITCHBOARD_API_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing"))
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    assert find_api_key(None) == key
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "empty"))
    assert find_api_key(None) is None and "--api-key" in missing_key_message()


async def test_chat_with_a_refused_key_says_so(gateway: Gateway) -> None:
    out = io.StringIO()

    async def lines() -> AsyncIterator[str]:
        yield "hi"

    url = gateway.http.replace("http", "ws") + "/ws"
    assert await run_chat(url, "c", api_key="sb_wrong", lines=lines(), out=out) == 1
    assert "refused the credential (401): unknown or revoked API key" in out.getvalue()
    assert "sb_wrong" not in out.getvalue()
