"""A client's own CalDAV/SMTP servers through the REST API: passwords are encrypted at rest
(never in Valkey in clear, never in an answer), and destinations on loopback, private,
link-local or the platform's own addresses are refused with a typed 422 (SSRF)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis

from tests.connected.gateway.support import Gateway, GatewayFactory, api

pytestmark = pytest.mark.connected

PUBLIC = "93.184.215.14"  # a public address literal: the check needs no DNS for it
CAL_SECRET, MAIL_SECRET = "cal-pw-4c1d9e", "mail-pw-77ab03"


def connections(caldav_url: str = f"https://{PUBLIC}/dav/", smtp_host: str = PUBLIC,
                smtp_port: int = 587) -> dict[str, Any]:
    return {"caldav": {"url": caldav_url, "username": "sarah", "password": CAL_SECRET},
            "smtp": {"host": smtp_host, "port": smtp_port, "username": "sarah",
                     "password": MAIL_SECRET, "mail_from": "assistant@sarah.example"}}


async def client_of(gateway: Gateway, org: str) -> None:
    async with api(gateway, org, "boss") as boss:
        assert (await boss.post("/clients", json={"id": "sarah", "name": "Sarah"})
                ).status_code in (200, 201)


async def test_connection_passwords_are_not_in_valkey_in_clear(
        gateway: Gateway, org: str, valkey: redis.Redis) -> None:
    await client_of(gateway, org)
    async with api(gateway, org, "boss") as boss:
        saved = await boss.put("/clients/sarah/connections", json=connections())
        assert saved.status_code == 200, saved.text
        read = await boss.get("/clients/sarah/connections")
    for answer in (saved.text, read.text):
        assert CAL_SECRET not in answer and MAIL_SECRET not in answer
    assert read.json()["caldav"]["password"] == "**********"
    raw = await valkey.get(f"dir:{org}:conn:sarah")
    assert raw is not None
    assert CAL_SECRET.encode() not in raw and MAIL_SECRET.encode() not in raw
    assert raw.count(b'"fernet"') == 2


REFUSED_HOSTS = ["127.0.0.1", "localhost", "10.1.2.3", "172.16.0.9", "192.168.1.20",
                 "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::5",
                 "::ffff:127.0.0.1", "224.0.0.1"]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
async def test_non_public_destinations_are_refused(gateway: Gateway, org: str,
                                                   host: str) -> None:
    await client_of(gateway, org)
    literal = f"[{host}]" if ":" in host else host
    async with api(gateway, org, "boss") as boss:
        for body, field in ((connections(caldav_url=f"http://{literal}:5232/"), "caldav.url"),
                            (connections(smtp_host=host), "smtp.host")):
            answer = await boss.put("/clients/sarah/connections", json=body)
            assert answer.status_code == 422, (host, answer.text)
            error = answer.json()
            assert error["errors"][0]["type"] == "unsafe_destination"
            assert field in error["detail"] and "OUTBOUND_ALLOW" in error["detail"]
            assert CAL_SECRET not in answer.text and MAIL_SECRET not in answer.text
        assert (await boss.get("/clients/sarah/connections")).json()["smtp"] is None


async def test_the_platforms_own_ports_stay_refused_when_others_are_allowed(
        gateway_factory: GatewayFactory, org: str, nats_url: str, valkey_url: str) -> None:
    nats_port = int(nats_url.rsplit(":", 1)[1])
    valkey_port = int(valkey_url.rsplit(":", 1)[1].split("/")[0])
    async with gateway_factory(outbound_allow="127.0.0.1:5232,127.0.0.1:8025",
                               outbound_deny=PUBLIC) as gw:
        await client_of(gw, org)
        async with api(gw, org, "boss") as boss:
            ok = await boss.put("/clients/sarah/connections", json=connections(
                caldav_url="http://127.0.0.1:5232/", smtp_host="127.0.0.1", smtp_port=8025))
            assert ok.status_code == 200, ok.text
            for port in (nats_port, valkey_port):
                bad = await boss.put("/clients/sarah/connections", json=connections(
                    caldav_url=f"http://127.0.0.1:{port}/", smtp_host="127.0.0.1",
                    smtp_port=8025))
                assert bad.status_code == 422 and "caldav.url" in bad.json()["detail"]
            denied = await boss.put("/clients/sarah/connections", json=connections(
                caldav_url="http://127.0.0.1:5232/", smtp_host=PUBLIC, smtp_port=587))
            assert denied.status_code == 422
            assert "platform's own" in denied.json()["detail"]


async def test_a_record_no_key_opens_is_reported_without_its_token(
        gateway: Gateway, org: str, valkey: redis.Redis) -> None:
    """Encrypted under a key the gateway no longer has (dropped too early)."""
    from switchboard_common.connections import (
        ClientConnections,
        ConnectionStore,
        SmtpConnection,
    )
    from switchboard_common.secretbox import SecretBox

    await client_of(gateway, org)
    await ConnectionStore(valkey, SecretBox([SecretBox.generate_key()])).put(
        org, "sarah", ClientConnections(smtp=SmtpConnection(
            host=PUBLIC, password=MAIL_SECRET, mail_from="a@b.example")))  # type: ignore[arg-type]
    raw = (await valkey.get(f"dir:{org}:conn:sarah")) or b""
    token = raw.split(b'"fernet": "')[1].split(b'"')[0].decode()
    async with api(gateway, org, "boss") as boss:
        read = await boss.get("/clients/sarah/connections")
        assert read.status_code == 500 and "cannot be decrypted" in read.text
        assert token not in read.text and MAIL_SECRET not in read.text
        # An admin can replace it.
        assert (await boss.put("/clients/sarah/connections", json=connections())
                ).status_code == 200
