"""Test users. Nothing creates users implicitly any more (docs/security.md), so tests that
speak as someone put that someone into the directory first, the way `switchboard up` and the
invite API do."""

from __future__ import annotations

import redis.asyncio as redis

from switchboard_common.directory import Directory, User


async def add_people(valkey_url: str, org: str, admins: tuple[str, ...] = ("va1",),
                     members: tuple[str, ...] = ()) -> None:
    """Create the users that do not exist yet (an existing one keeps its role)."""
    client = redis.Redis.from_url(valkey_url)
    try:
        directory = Directory(client)
        for user_id in admins:
            await directory.add_user(org, User(id=user_id, role="admin"))
        for user_id in members:
            await directory.add_user(org, User(id=user_id, role="member"))
    finally:
        await client.aclose()
