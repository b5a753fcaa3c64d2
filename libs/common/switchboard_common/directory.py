"""The directory: orgs, users, clients, templates and the skill tiers, stored in Valkey.

Written by the gateway's REST API, read by context (skill resolution). Every read and write is
scoped by org; nothing here crosses orgs. After any write that can change resolved skills, the
writer publishes `skills.changed.<org>` (see `publish_change`) so every context replica drops
its cached resolutions.

Keys (JSON values):
- `dir:{org}:users`             hash user_id -> User
- `dir:{org}:clients`           hash client_id -> Client
- `dir:{org}:templates`         hash template_id -> Template
- `dir:{org}:skills:system`     the org's overrides of the built-in system defaults
- `dir:{org}:skills:user:{id}`  a user's defaults
- `dir:{org}:skills:client:{id}` a client's overrides
- `dir:{org}:version`           counter bumped on every change (orders SkillsChanged events)
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import redis.asyncio as redis
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.envelope import Envelope, Id, utcnow
from switchboard_common.skills import SYSTEM_DEFAULTS, Tier, merge


def skills_changed_subject(org: str) -> str:
    return f"skills.changed.{org}"


class SkillsChanged(Envelope):
    """Event (core NATS, every context replica): cached resolutions of this org are stale."""

    tier: Tier
    subject_id: str | None = None
    version: int


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    display_name: str = ""
    role: Literal["admin", "member"] = "member"
    created_at: datetime = Field(default_factory=utcnow)


class Client(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    name: str = Field(min_length=1, max_length=200)
    template_id: Id | None = None
    assigned_users: list[Id] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    name: str = Field(min_length=1, max_length=200)
    skills: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


def _k(org: str, *parts: str) -> str:
    return ":".join(("dir", org, *parts))


class Directory:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    # --- users ---
    async def get_user(self, org: str, user: str) -> User | None:
        raw = await self._r.hget(_k(org, "users"), user)
        return User.model_validate_json(raw) if raw else None

    async def add_user(self, org: str, user: User) -> bool:
        """Create `user` unless the id is taken (atomic); False when it already exists."""
        return bool(await self._r.hsetnx(_k(org, "users"), user.id, user.model_dump_json()))

    async def put_user(self, org: str, user: User) -> None:
        """Create or replace (an identity provider's user, mirrored with its current role)."""
        await self._r.hset(_k(org, "users"), user.id, user.model_dump_json())

    async def list_users(self, org: str) -> list[User]:
        raw = await self._r.hvals(_k(org, "users"))
        return sorted((User.model_validate_json(v) for v in raw), key=lambda u: u.id)

    # --- clients ---
    async def get_client(self, org: str, client: str) -> Client | None:
        raw = await self._r.hget(_k(org, "clients"), client)
        return Client.model_validate_json(raw) if raw else None

    async def put_client(self, org: str, client: Client) -> None:
        await self._r.hset(_k(org, "clients"), client.id, client.model_dump_json())

    async def add_client(self, org: str, client: Client) -> bool:
        """Create `client` unless the id is taken (atomic); False when it already exists."""
        return bool(await self._r.hsetnx(_k(org, "clients"), client.id,
                                         client.model_dump_json()))

    async def delete_client(self, org: str, client: str) -> bool:
        pipe = self._r.pipeline(transaction=True)
        pipe.hdel(_k(org, "clients"), client)
        pipe.delete(_k(org, "skills", "client", client))
        pipe.delete(_k(org, "conn", client))
        removed, *_ = await pipe.execute()
        return bool(removed)

    async def list_clients(self, org: str) -> list[Client]:
        raw = await self._r.hvals(_k(org, "clients"))
        return sorted((Client.model_validate_json(v) for v in raw), key=lambda c: c.id)

    # --- templates ---
    async def get_template(self, org: str, template: str) -> Template | None:
        raw = await self._r.hget(_k(org, "templates"), template)
        return Template.model_validate_json(raw) if raw else None

    async def put_template(self, org: str, template: Template) -> None:
        await self._r.hset(_k(org, "templates"), template.id, template.model_dump_json())

    async def add_template(self, org: str, template: Template) -> bool:
        """Create `template` unless the id is taken (atomic); False when it already exists."""
        return bool(await self._r.hsetnx(_k(org, "templates"), template.id,
                                         template.model_dump_json()))

    async def delete_template(self, org: str, template: str) -> bool:
        return bool(await self._r.hdel(_k(org, "templates"), template))

    async def list_templates(self, org: str) -> list[Template]:
        raw = await self._r.hvals(_k(org, "templates"))
        return sorted((Template.model_validate_json(v) for v in raw), key=lambda t: t.id)

    # --- skill tiers (system / user / client; the template tier lives in the template) ---
    def _tier_key(self, org: str, tier: Tier, subject_id: str | None) -> str:
        if tier is Tier.SYSTEM:
            return _k(org, "skills", "system")
        if tier in (Tier.USER, Tier.CLIENT) and subject_id:
            return _k(org, "skills", tier.value, subject_id)
        raise ValueError(f"tier {tier} needs an id")

    async def get_layer(self, org: str, tier: Tier, subject_id: str | None = None
                        ) -> dict[str, Any] | None:
        raw = await self._r.get(self._tier_key(org, tier, subject_id))
        return dict(json.loads(raw)) if raw else None

    async def put_layer(self, org: str, tier: Tier, subject_id: str | None,
                        layer: dict[str, Any]) -> None:
        await self._r.set(self._tier_key(org, tier, subject_id), json.dumps(layer))

    async def delete_layer(self, org: str, tier: Tier, subject_id: str | None) -> bool:
        return bool(await self._r.delete(self._tier_key(org, tier, subject_id)))

    async def tiers_for(self, org: str, user: str, client: Client
                        ) -> dict[Tier, dict[str, Any] | None]:
        """The four layers for (user, client), read in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        pipe.get(self._tier_key(org, Tier.SYSTEM, None))
        pipe.get(self._tier_key(org, Tier.USER, user))
        pipe.hget(_k(org, "templates"), client.template_id or "\x00none")
        pipe.get(self._tier_key(org, Tier.CLIENT, client.id))
        system, user_layer, template, client_layer = await pipe.execute()
        return {
            Tier.SYSTEM: merge(SYSTEM_DEFAULTS, json.loads(system)) if system
            else SYSTEM_DEFAULTS,
            Tier.USER: json.loads(user_layer) if user_layer else None,
            Tier.TEMPLATE: Template.model_validate_json(template).skills if template else None,
            Tier.CLIENT: json.loads(client_layer) if client_layer else None,
        }

    # --- change notification ---
    async def bump_version(self, org: str) -> int:
        return int(await self._r.incr(_k(org, "version")))


async def publish_change(directory: Directory, nc: NatsClient, org: str, tier: Tier,
                         subject_id: str | None = None) -> None:
    """Tell every context replica to drop the org's cached resolutions. The event carries the
    org's change counter, so logs show which change a replica acted on. A replica that misses
    the event (disconnected) clears its cache on reconnect, and entries expire anyway."""
    version = await directory.bump_version(org)
    event = SkillsChanged(org_id=org, tier=tier, subject_id=subject_id, version=version)
    await nc.publish(skills_changed_subject(org), event.model_dump_json().encode())
