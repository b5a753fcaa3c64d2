"""The gateway's side of the skills contracts: tell every context replica that a tier changed,
and ask one of them for a resolution (request/reply, so the endpoint shows exactly what the
context service uses, cache included)."""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client as NatsClient

from switchboard_common.directory import Directory, publish_change
from switchboard_common.skills import (
    ResolveSkills,
    ResolveSkillsReply,
    Tier,
    skills_resolve_subject,
)
from switchboard_gateway.adapters.requests import ask


class SkillsBus:
    def __init__(self, nc: NatsClient, directory: Directory, timeout_s: float,
                 drop_local: Callable[[str], None] | None = None) -> None:
        self._nc = nc
        self._directory = directory
        self._timeout = timeout_s
        self._drop_local = drop_local

    async def changed(self, org: str, tier: Tier, subject_id: str | None = None) -> None:
        """Announce a change of `org`'s directory. This replica's own caches of the org
        (`drop_local`) are dropped first, before the caller answers, not when the
        announcement comes back."""
        if self._drop_local is not None:
            self._drop_local(org)
        await publish_change(self._directory, self._nc, org, tier, subject_id)

    async def resolve(self, org: str, user: str, client_id: str) -> ResolveSkillsReply:
        request = ResolveSkills(org_id=org, user_id=user,
                                client_id=client_id)
        return await ask(self._nc, skills_resolve_subject(org), request, ResolveSkillsReply,
                         self._timeout, "context")
