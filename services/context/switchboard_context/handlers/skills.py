"""Skill resolution over the bus.

- `skills.changed.<org>` (core NATS, no queue group: every replica hears it) drops that org's
  cached resolutions.
- `skills.resolve.<org>` (request/reply, one replica answers) returns the resolved skills with
  provenance for a (user, client): the gateway's "why does it behave like this" endpoint shows
  exactly what context uses."""

from __future__ import annotations

import logging

from faststream.nats import NatsRouter

from switchboard_common.directory import SkillsChanged
from switchboard_common.skills import ResolveSkills, ResolveSkillsReply
from switchboard_context.deps import Skills

log = logging.getLogger(__name__)


async def on_skills_changed(event: SkillsChanged, skills: Skills) -> None:
    skills.invalidate(event.org_id)
    log.debug("skills of org %s invalidated (version %d)", event.org_id, event.version)


async def on_resolve(request: ResolveSkills, skills: Skills) -> ResolveSkillsReply:
    resolved, client = await skills.resolve(request.org_id, request.user_id, request.client_id)
    return ResolveSkillsReply(resolved=resolved, client_known=client is not None)


def router() -> NatsRouter:
    """A fresh router per broker: FastStream binds subscribers to the broker that
    includes them, so two apps in one process (tests) must not share one."""
    r = NatsRouter()
    r.subscriber(
        "skills.changed.*", title="context/skills.changed",
                       description="A skill tier changed: drop the org's cached resolutions."
    )(on_skills_changed)
    r.subscriber(
        "skills.resolve.*", queue="context", title="context/skills.resolve",
                       description="Resolve the skills of a (user, client) with provenance."
    )(on_resolve)
    return r
