"""The first admin of a Kubernetes or compose deployment: `python -m
switchboard_gateway.bootstrap` in the gateway's container."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from switchboard_common.credentials import SigninLinks
from switchboard_common.directory import Directory, User
from switchboard_gateway.bootstrap import BootstrapError, first_admin, main
from switchboard_gateway.settings import Settings

pytestmark = pytest.mark.connected


@pytest.fixture
def new_org() -> str:
    """An org nobody seeded (the gateway tests' `org` comes with people)."""
    return f"boot{uuid.uuid4().hex[:10]}"


async def test_creates_the_admin_once_and_prints_a_link_each_time(
        valkey_url: str, valkey: redis.Redis, new_org: str) -> None:
    org = new_org
    settings = Settings(valkey_url=valkey_url, public_url="https://sb.example.com/")
    first = await first_admin(settings, org, "alice")
    again = await first_admin(settings, org, "alice")
    assert first.startswith("https://sb.example.com/#signin=") and first != again
    users = await Directory(valkey).list_users(org)
    assert [(u.id, u.role) for u in users] == [("alice", "admin")]
    grant = await SigninLinks(valkey).consume(first.split("#signin=")[1])
    assert grant is not None and (grant.org, grant.user) == (org, "alice")


async def test_refuses_to_promote_a_member_or_to_link_nowhere(
        valkey_url: str, valkey: redis.Redis, new_org: str) -> None:
    org = new_org
    await Directory(valkey).add_user(org, User(id="bob", role="member"))
    with pytest.raises(BootstrapError, match="not an admin"):
        await first_admin(Settings(valkey_url=valkey_url, public_url="https://x"), org, "bob")
    with pytest.raises(BootstrapError, match="GATEWAY_PUBLIC_URL"):
        await first_admin(Settings(valkey_url=valkey_url), org, "carol")
    assert await Directory(valkey).get_user(org, "carol") is None


def test_the_command_reads_the_gateway_settings(
        valkey_url: str, new_org: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VALKEY_URL", valkey_url)
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "http://127.0.0.1:8080")
    assert main(["--org", new_org, "--admin", "alice"]) == 0
    assert capsys.readouterr().out.startswith("http://127.0.0.1:8080/#signin=")
