"""`switchboard nats-streams`: declare every JetStream stream (create, or update to the current
declaration) as the NATS admin user. Services may create their streams but not change them
(see `switchboard_common.permissions`), so a deploy runs this when a stream's declaration
changes (an upgrade, R1 to R3); the embedded stack runs it at every start.

Reads NATS_URL, NATS_USER (default `admin`), NATS_PASSWORD and NATS_STREAM_REPLICAS."""

from __future__ import annotations

import asyncio
import threading

import nats
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchboard_common.permissions import ADMIN
from switchboard_common.settings import nats_servers
from switchboard_common.streams import ALL_STREAMS, ensure_streams


class AdminSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str = ADMIN
    nats_password: SecretStr | None = None
    stream_replicas: int = Field(1, ge=1, le=5,
                                 validation_alias=AliasChoices("nats_stream_replicas"))


async def declare_streams(url: str, user: str | None, password: str | None,
                          replicas: int = 1) -> None:
    nc = await nats.connect(nats_servers(url), user=user, password=password,
                            allow_reconnect=False, connect_timeout=5)
    try:
        await ensure_streams(nc.jetstream(), ALL_STREAMS, replicas)
    finally:
        await nc.close()


def declare_streams_now(url: str, user: str | None, password: str | None,
                        replicas: int = 1) -> None:
    """The same from synchronous code, even when the caller runs an event loop itself (the
    stack is started from async tests): in a thread of its own."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(declare_streams(url, user, password, replicas))
        except BaseException as exc:  # re-raised in the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=run, name="declare-streams")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def run_nats_streams() -> int:
    settings = AdminSettings()
    password = settings.nats_password.get_secret_value() if settings.nats_password else None
    asyncio.run(declare_streams(settings.nats_url, settings.nats_user, password,
                                settings.stream_replicas))
    print(f"{len(ALL_STREAMS)} streams declared (R{settings.stream_replicas})")
    return 0
