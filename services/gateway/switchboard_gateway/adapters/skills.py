"""The gateway's side of the skills contracts: tell every context replica that a tier changed,
and ask one of them for a resolution (request/reply, so the endpoint shows exactly what the
context service uses, cache included)."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from switchboard_common.directory import Directory, publish_change
from switchboard_common.errors import ErrorCode, SwitchboardError
from switchboard_common.skills import (
    ResolveSkills,
    ResolveSkillsReply,
    Tier,
    skills_resolve_subject,
)
from switchboard_common.telemetry import current_trace


class SkillsUnavailable(SwitchboardError):
    code = ErrorCode.UNAVAILABLE
    retryable = True


class SkillsBus:
    def __init__(self, nc: NatsClient, directory: Directory, timeout_s: float) -> None:
        self._nc = nc
        self._directory = directory
        self._timeout = timeout_s

    async def changed(self, org: str, tier: Tier, subject_id: str | None = None) -> None:
        await publish_change(self._directory, self._nc, org, tier, subject_id)

    async def resolve(self, org: str, user: str, client_id: str) -> ResolveSkillsReply:
        request = ResolveSkills(org_id=org, trace=current_trace(), user_id=user,
                                client_id=client_id)
        try:
            reply = await self._nc.request(skills_resolve_subject(org),
                                           request.model_dump_json().encode(),
                                           timeout=self._timeout)
        except (NoRespondersError, NatsTimeout, TimeoutError) as exc:
            raise SkillsUnavailable(
                f"no context service answered within {self._timeout:g} s; is it running?"
            ) from exc
        return ResolveSkillsReply.model_validate_json(reply.data)
