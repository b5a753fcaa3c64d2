"""Skill resolution served from an in-process cache.

A resolution is cached per (org, user, client) until any tier of that org changes: writers
publish `skills.changed.<org>` and every context replica drops that org's entries. Two
safety nets for a missed event: the whole cache is dropped when the NATS connection comes
back, and entries expire after `ttl_s`."""

from __future__ import annotations

import time

from switchboard_common.directory import Client, Directory
from switchboard_common.skills import ResolvedSkills, resolve


class SkillResolver:
    def __init__(self, directory: Directory, ttl_s: float = 300.0) -> None:
        self._directory = directory
        self._ttl = ttl_s
        self._cache: dict[str, dict[tuple[str, str], tuple[float, ResolvedSkills,
                                                          Client | None]]] = {}

    async def resolve(self, org: str, user: str, client_id: str
                      ) -> tuple[ResolvedSkills, Client | None]:
        entries = self._cache.setdefault(org, {})
        hit = entries.get((user, client_id))
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1], hit[2]
        client = await self._directory.get_client(org, client_id)
        placeholder = client or Client(id=client_id, name=client_id)
        tiers = await self._directory.tiers_for(org, user, placeholder)
        resolved = resolve(tiers)
        entries[(user, client_id)] = (now, resolved, client)
        return resolved, client

    def invalidate(self, org: str) -> None:
        self._cache.pop(org, None)

    def clear(self) -> None:
        self._cache.clear()
