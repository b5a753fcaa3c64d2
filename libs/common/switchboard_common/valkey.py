"""Valkey (Redis protocol) client helper, shared by every service that keeps state."""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as redis

log = logging.getLogger(__name__)


async def connect_valkey(url: str, timeout_s: float = 30.0) -> redis.Redis:
    """Connect and wait (with backoff) until the server answers PING."""
    client: redis.Redis = redis.Redis.from_url(url, decode_responses=False)
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
