"""Valkey (Redis protocol) client helper, shared by every service that keeps state."""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as redis
from pydantic import SecretStr

log = logging.getLogger(__name__)


def revealed(password: SecretStr | None) -> str | None:
    """For `redis.Redis.from_url(url, password=...)`: None keeps what the URL says."""
    return password.get_secret_value() if password else None


async def connect_valkey(url: str, timeout_s: float = 30.0, password: SecretStr | None = None
                         ) -> redis.Redis:
    """Connect and wait (with backoff) until the server answers PING. A wrong or missing
    password fails at once (AuthenticationError): waiting would not fix it."""
    client: redis.Redis = redis.Redis.from_url(url, decode_responses=False,
                                               password=revealed(password))
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            await client.ping()
            return client
        except (redis.ConnectionError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                await client.aclose()
                raise ConnectionError(f"Valkey at {url} not reachable: {exc}") from exc
            log.info("waiting for Valkey at %s", url)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
