"""The bus and the store refuse callers without credentials, and each service's NATS user can
do only what its role allows: a real nats-server and Valkey started exactly as the embedded
default starts them (generated config and passwords under the data dir)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import nats
import pytest
import redis.asyncio as redis
from nats.aio.client import Client
from nats.js.api import ConsumerConfig
from pydantic import SecretStr
from redis.exceptions import AuthenticationError, ResponseError

from switchboard_cli.embedded import ServerProcess, start_nats, start_valkey
from switchboard_cli.embedded_secrets import EmbeddedSecrets, load_or_create, secrets_dir
from switchboard_cli.nats_streams import declare_streams
from switchboard_common.bus import make_broker, prepare_jetstream
from switchboard_common.permissions import ROLES, inbox_prefix
from switchboard_common.streams import (
    INGEST,
    MODEL,
    TURN_EVENTS,
    ConsumerSpec,
    ensure_streams,
)
from switchboard_common.valkey import connect_valkey

pytestmark = pytest.mark.connected

NOT_ALLOWED_TO_READ_TURNS = ("context", "llm_stream", "action_executor", "memory_indexer",
                             "ingest")
NOT_ALLOWED_TO_SEARCH = ("llm_stream", "memory_indexer", "ingest")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secured")


@pytest.fixture(scope="module")
def creds(data_dir: Path) -> EmbeddedSecrets:
    return load_or_create(data_dir)


@pytest.fixture(scope="module")
def secured_nats(data_dir: Path, creds: EmbeddedSecrets) -> Iterator[ServerProcess]:
    server = start_nats(data_dir, passwords=creds.nats)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secured_valkey(data_dir: Path, creds: EmbeddedSecrets) -> Iterator[ServerProcess]:
    server = start_valkey(data_dir, persist=False, password=creds.valkey)
    yield server
    server.stop()


class Session:
    """One NATS connection as a given user, recording the server's permission errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def connect(self, url: str, user: str | None, password: str | None) -> Client:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))

        self.nc = await nats.connect(
            url, user=user, password=password, error_cb=on_error, allow_reconnect=False,
            inbox_prefix=inbox_prefix(user or "anonymous"))
        return self.nc

    async def violations(self) -> list[str]:
        assert self.nc is not None
        await self.nc.flush()
        await asyncio.sleep(0.1)  # the server's -ERR arrives after the PONG at worst
        return [e for e in self.errors if "permissions violation" in e]


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    s = Session()
    yield s
    if s.nc is not None and not s.nc.is_closed:
        await s.nc.close()


async def as_user(session: Session, server: ServerProcess, creds: EmbeddedSecrets,
                  user: str) -> Client:
    return await session.connect(server.url, user, creds.nats[user])


async def test_nats_refuses_anonymous_and_wrong_passwords(secured_nats: ServerProcess,
                                                          creds: EmbeddedSecrets) -> None:
    for user, password in ((None, None), ("gateway", "not-the-password"),
                           ("gateway", creds.nats["context"]), ("nobody", "x")):
        nc = Client()
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nc.connect(secured_nats.url, user=user, password=password,
                             allow_reconnect=False, max_reconnect_attempts=0)
        await nc.close()  # a refused connect leaves its socket open otherwise


@pytest.mark.parametrize("user", NOT_ALLOWED_TO_READ_TURNS)
async def test_other_services_cannot_subscribe_to_turn_events(
        user: str, secured_nats: ServerProcess, creds: EmbeddedSecrets,
        session: Session) -> None:
    nc = await as_user(session, secured_nats, creds, user)
    await nc.subscribe("turns.events.>")
    assert any('subscription to "turns.events.>"' in v for v in await session.violations())

    # ... nor read them from the stream that keeps them for resume.
    with pytest.raises(nats.errors.TimeoutError):
        await nc.jsm().add_consumer(TURN_EVENTS.name, ConsumerConfig(
            filter_subject="turns.events.>"), timeout=0.5)


async def test_the_gateway_may_follow_turn_events(secured_nats: ServerProcess,
                                                  creds: EmbeddedSecrets,
                                                  session: Session) -> None:
    gateway = await as_user(session, secured_nats, creds, "gateway")
    producer = Session()
    llm = await as_user(producer, secured_nats, creds, "llm_stream")
    try:
        sub = await gateway.subscribe("turns.events.acme.>")
        await gateway.flush()
        await llm.publish("turns.events.acme.t1", b'{"type":"delta"}')
        await llm.flush()  # sent before the wait starts (a loaded machine missed 2 s once)
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b'{"type":"delta"}'
        assert await session.violations() == [] and await producer.violations() == []
    finally:
        await llm.close()


@pytest.mark.parametrize("user", NOT_ALLOWED_TO_SEARCH)
async def test_other_services_cannot_request_memory_search(
        user: str, secured_nats: ServerProcess, creds: EmbeddedSecrets,
        session: Session) -> None:
    responder = Session()
    indexer = await as_user(responder, secured_nats, creds, "memory_indexer")
    answered: list[str] = []

    async def answer(msg: nats.aio.msg.Msg) -> None:
        answered.append(msg.subject)
        await msg.respond(b'{"hits":[]}')

    await indexer.subscribe("memory.search.*", cb=answer)
    await indexer.flush()
    try:
        nc = await as_user(session, secured_nats, creds, user)
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request("memory.search.acme", b"{}", timeout=0.5)
        assert any('publish to "memory.search.acme"' in v for v in await session.violations())
        assert answered == []
    finally:
        await indexer.close()


@pytest.mark.parametrize("user", ["context", "gateway", "action_executor"])
async def test_allowed_services_get_memory_search_answers(
        user: str, secured_nats: ServerProcess, creds: EmbeddedSecrets,
        session: Session) -> None:
    responder = Session()
    indexer = await as_user(responder, secured_nats, creds, "memory_indexer")

    async def answer(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(b'{"hits":[]}')

    await indexer.subscribe("memory.search.*", cb=answer)
    await indexer.flush()
    try:
        nc = await as_user(session, secured_nats, creds, user)
        reply = await nc.request("memory.search.acme", b"{}", timeout=2)
        assert reply.data == b'{"hits":[]}'
        # The answer came on the asker's own inbox, which no other service may read.
        assert await responder.violations() == []
    finally:
        await indexer.close()


async def test_a_service_cannot_read_another_services_inbox(
        secured_nats: ServerProcess, creds: EmbeddedSecrets, session: Session) -> None:
    nc = await as_user(session, secured_nats, creds, "llm_stream")
    await nc.subscribe(f"{inbox_prefix('gateway')}.>")
    await nc.subscribe("_INBOX.>")
    violations = await session.violations()
    assert len(violations) == 2


@pytest.mark.parametrize("service", ["gateway", "context", "llm_stream", "action_executor",
                                     "memory_indexer"])
async def test_each_service_prepares_its_streams_with_its_own_user(
        service: str, secured_nats: ServerProcess, creds: EmbeddedSecrets) -> None:
    """What every service does at start-up, under its own permissions (a denied JetStream
    API call would time out here)."""
    consumers: tuple[ConsumerSpec, ...] = ()
    if service != "gateway":
        main = importlib.import_module(f"switchboard_{service}.main")
        consumers = main.consumers(main.Settings())
    broker = make_broker(secured_nats.url, service, user=service,
                         password=SecretStr(creds.nats[service]))
    await broker.connect()
    try:
        async with asyncio.timeout(10):
            await prepare_jetstream(broker, consumers, ROLES[service].streams())
    finally:
        await broker.stop()


async def test_valkey_refuses_clients_without_the_password(
        secured_valkey: ServerProcess, creds: EmbeddedSecrets) -> None:
    anonymous = redis.Redis.from_url(secured_valkey.url)
    wrong = redis.Redis.from_url(secured_valkey.url, password="wrong")
    right = redis.Redis.from_url(secured_valkey.url, password=creds.valkey)
    try:
        with pytest.raises((AuthenticationError, ResponseError)):
            await anonymous.get("dir:acme:conn:sarah")
        with pytest.raises((AuthenticationError, ResponseError)):
            await wrong.ping()
        assert await right.ping()
    finally:
        for client in (anonymous, wrong, right):
            await client.aclose()


def test_generated_secrets_are_private_and_reused(data_dir: Path, creds: EmbeddedSecrets,
                                                  secured_nats: ServerProcess) -> None:
    folder = secrets_dir(data_dir)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("credentials.json", "nats.conf"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert load_or_create(data_dir) == creds
    env = creds.service_env("llm_stream")
    assert env["NATS_USER"] == "llm_stream" and "SECRETS_KEYS" not in env
    assert creds.nats["gateway"] not in str(env)


async def test_services_fail_fast_on_a_wrong_valkey_password(
        secured_valkey: ServerProcess) -> None:
    started = asyncio.get_running_loop().time()
    with pytest.raises(ConnectionError, match="refused the password"):
        await connect_valkey(secured_valkey.url, 20.0, SecretStr("wrong"))
    assert asyncio.get_running_loop().time() - started < 10


async def test_an_outside_producer_publishes_events_but_nothing_else(
        secured_nats: ServerProcess, creds: EmbeddedSecrets, session: Session) -> None:
    admin = Session()
    operator = await as_user(admin, secured_nats, creds, "admin")
    try:
        await ensure_streams(operator.jetstream(), (INGEST,))
    finally:
        await operator.close()
    nc = await as_user(session, secured_nats, creds, "ingest")
    ack = await nc.jetstream().publish("events.ingest.acme.sarah", b"{}", stream=INGEST.name)
    assert ack.stream == INGEST.name
    with pytest.raises(nats.errors.TimeoutError):
        await nc.jetstream().publish("turns.requested.acme", b"{}", timeout=0.5)
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request(f"$JS.API.STREAM.UPDATE.{INGEST.name}", b"{}", timeout=0.5)
    assert len(await session.violations()) == 2


async def test_services_create_streams_but_never_change_them(
        secured_nats: ServerProcess, creds: EmbeddedSecrets, session: Session,
        caplog: pytest.LogCaptureFixture) -> None:
    """A service that could change a stream's subjects could capture other subjects (another
    service's inbox, requests it may not see) into a stream it reads."""
    await declare_streams(secured_nats.url, "admin", creds.nats["admin"])
    nc = await as_user(session, secured_nats, creds, "llm_stream")
    js = nc.jetstream(timeout=0.5)
    grab = replace(MODEL, subjects=(*MODEL.subjects, "_INBOX.context.>", "memory.search.>"))
    with pytest.raises(nats.errors.TimeoutError):
        await js.update_stream(grab.config())
    assert any("stream.update.sb_model" in v.lower() for v in await session.violations())
    # A declaration that differs from the stream is used as it is, with a warning.
    with caplog.at_level(logging.WARNING):
        await ensure_streams(js, (grab,))
    assert "switchboard nats-streams" in caplog.text
    info = await nc.jetstream().stream_info(MODEL.name)
    assert info.config.subjects == list(MODEL.subjects)
