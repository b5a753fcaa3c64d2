"""Valkey (Redis protocol) client helper, shared by every service that keeps state."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as redis
from pydantic import SecretStr
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

log = logging.getLogger(__name__)


def revealed(password: SecretStr | None) -> str | None:
    """For `redis.Redis.from_url(url, password=...)`: None keeps what the URL says."""
    return password.get_secret_value() if password else None


def valkey_client(url: str, password: SecretStr | None = None, *,
                  max_connections: int | None = None, pool_timeout_s: float | None = None
                  ) -> redis.Redis:
    """The one way services build a Valkey client (redis-py). It rides out a Valkey restart:
    a command that meets a broken connection reconnects and is retried with jittered backoff
    (5 tries, 50 ms .. 0.5 s apart: ~2.5 s in all), and a pooled connection idle for 5 s is
    checked with PING before use, so the pool's stale connections do not each fail once after
    the restart. This is transport-level only; failed work is retried by JetStream.
    With `max_connections`, the pool is bounded and blocking (see below)."""
    options: dict[str, Any] = {
        "decode_responses": False, "password": revealed(password),
        "socket_connect_timeout": 1.0,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=5),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "health_check_interval": 5}
    if max_connections is None:
        return redis.Redis.from_url(url, **options)
    # A bounded pool: a burst waits up to `pool_timeout_s` for a connection instead of
    # failing with MaxConnectionsError (the gateway's shared pool).
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout_s, **options))


async def connect_valkey(url: str, timeout_s: float = 30.0, password: SecretStr | None = None
                         ) -> redis.Redis:
    """Connect and wait (with backoff) until the server answers PING. A wrong or missing
    password fails at once (AuthenticationError): waiting would not fix it."""
    client = valkey_client(url, password)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            await client.ping()
            return client
        except (redis.ConnectionError, OSError) as exc:
            if isinstance(exc, redis.AuthenticationError):  # a ConnectionError in redis-py
                await client.aclose()
                raise ConnectionError(f"Valkey at {url} refused the password "
                                      f"(VALKEY_PASSWORD)") from exc
            if time.monotonic() + delay > deadline:
                await client.aclose()
                raise ConnectionError(f"Valkey at {url} not reachable: {exc}") from exc
            log.info("waiting for Valkey at %s", url)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
