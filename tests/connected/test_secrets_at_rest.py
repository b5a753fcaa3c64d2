"""Client connection passwords at rest: encrypted with the first key of SECRETS_KEYS, readable
with any, re-encrypted by `switchboard rotate-secrets`; no key outside development refuses
start-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as redis
from pydantic import SecretStr

from switchboard_cli.__main__ import main as cli
from switchboard_cli.embedded import start_valkey
from switchboard_cli.embedded_secrets import load_or_create
from switchboard_common.connections import (
    CalDavConnection,
    ClientConnections,
    ConnectionStore,
    SmtpConnection,
)
from switchboard_common.secretbox import SecretBox, SecretKeyError, UndecryptableSecret

pytestmark = pytest.mark.connected

OLD, NEW = SecretBox.generate_key(), SecretBox.generate_key()


def sample() -> ClientConnections:
    return ClientConnections(
        caldav=CalDavConnection(url="https://93.184.215.14/dav/", username="s",
                                password=SecretStr("cal-secret-1")),
        smtp=SmtpConnection(host="93.184.215.14", username="s",
                            password=SecretStr("mail-secret-2"), mail_from="a@b.example"))


async def test_rotation_moves_every_secret_to_the_newest_key(
        valkey_url: str, org: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A database of its own: rotation re-encrypts every record it finds, and the suite's
    # shared database holds other tests' records under other keys.
    valkey_url = valkey_url.rsplit("/", 1)[0] + "/9"
    valkey = redis.Redis.from_url(valkey_url)
    await valkey.flushdb()
    try:
        await _rotate_and_check(valkey, valkey_url, org, monkeypatch, capsys)
    finally:
        await valkey.aclose()


async def _rotate_and_check(valkey: redis.Redis, valkey_url: str, org: str,
                            monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    await ConnectionStore(valkey, SecretBox([OLD])).put(org, "sarah", sample())
    # Written before encryption existed: a password in clear.
    legacy = {"smtp": {"host": "93.184.215.14", "port": 587, "username": "j",
                       "password": "legacy-clear-3", "starttls": True,
                       "mail_from": "a@b.example"}, "caldav": None}
    await valkey.set(f"dir:{org}:conn:john", json.dumps(legacy))
    before = await valkey.get(f"dir:{org}:conn:sarah")

    # Both keys deployed, newest first; then the records are re-encrypted.
    monkeypatch.setenv("VALKEY_URL", valkey_url)
    monkeypatch.setenv("SECRETS_KEYS", f"{NEW},{OLD}")
    monkeypatch.delenv("VALKEY_PASSWORD", raising=False)
    # In a thread of its own: the command runs its own event loop, like from a shell.
    import asyncio

    assert await asyncio.to_thread(cli, ["rotate-secrets"]) == 0
    assert "re-encrypted" in capsys.readouterr().out

    after = await valkey.get(f"dir:{org}:conn:sarah")
    assert after != before
    for client in ("sarah", "john"):
        raw = await valkey.get(f"dir:{org}:conn:{client}")
        assert b"secret" not in raw and b"legacy-clear" not in raw
    only_new = ConnectionStore(valkey, SecretBox([NEW]))
    sarah = await only_new.get(org, "sarah")
    john = await only_new.get(org, "john")
    assert sarah is not None and sarah.caldav is not None and sarah.caldav.password is not None
    assert sarah.caldav.password.get_secret_value() == "cal-secret-1"
    assert john is not None and john.smtp is not None and john.smtp.password is not None
    assert john.smtp.password.get_secret_value() == "legacy-clear-3"
    with pytest.raises(UndecryptableSecret) as refused:
        await ConnectionStore(valkey, SecretBox([OLD])).get(org, "sarah")
    assert "cal-secret" not in str(refused.value)


def test_a_key_is_required_outside_development_and_must_be_a_key() -> None:
    with pytest.raises(SecretKeyError, match="SECRETS_KEYS must be set"):
        SecretBox.from_setting(None, "production")
    with pytest.raises(SecretKeyError, match="not a Fernet key") as bad:
        SecretBox.from_setting(SecretStr("hunter2-not-a-key"), "production")
    assert "hunter2" not in str(bad.value)
    assert SecretBox.from_setting(SecretStr(f" {NEW} , {OLD} "), "production").decrypt(
        SecretBox([OLD]).encrypt("x")) == "x"


def test_services_that_keep_secrets_refuse_to_start_without_a_key() -> None:
    from switchboard_action_executor.main import build_app
    from switchboard_action_executor.settings import Settings as ExecutorSettings
    from switchboard_gateway.main import create_app
    from switchboard_gateway.settings import Settings as GatewaySettings

    production: dict[str, str] = {"environment": "production", "nats_user": "u",
                                  "nats_password": "p", "valkey_password": "v"}
    with pytest.raises(SecretKeyError):
        build_app(ExecutorSettings(**production))  # type: ignore[arg-type]
    gateway_settings = GatewaySettings(**production,  # type: ignore[arg-type]
                                       session_secret="s" * 40, dev_credential=False)
    with pytest.raises(SecretKeyError):
        create_app(gateway_settings)


async def test_embedded_rotation_adds_a_key_and_reencrypts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The embedded default's procedure (docs/security.md, "Rotating keys")."""
    import asyncio

    secrets = load_or_create(tmp_path)
    server = start_valkey(tmp_path, persist=False, password=secrets.valkey)
    client = redis.Redis.from_url(server.url, password=secrets.valkey)
    try:
        await ConnectionStore(client, SecretBox(secrets.secrets_keys)).put("o", "c", sample())
        assert await asyncio.to_thread(cli, ["rotate-secrets", "--new-key", "--data-dir",
                                             str(tmp_path)]) == 0
        newest = load_or_create(tmp_path).secrets_keys
        assert newest[1:] == secrets.secrets_keys and len(newest) == 2
        assert await asyncio.to_thread(cli, ["rotate-secrets", "--data-dir", str(tmp_path),
                                             "--valkey-url", server.url]) == 0
        assert "re-encrypted 1 " in capsys.readouterr().out
        again = await ConnectionStore(client, SecretBox(newest[:1])).get("o", "c")
        assert again is not None and again.smtp is not None and again.smtp.password is not None
        assert again.smtp.password.get_secret_value() == "mail-secret-2"
    finally:
        await client.aclose()
        server.stop()
