"""Built-in tool implementations. Each derives its idempotency from the action id: a repeated
call (retry, redelivery, resume after a crash) finds its own earlier effect instead of making a
second one, wherever the backing store allows it (CalDAV UID, HSETNX). Mail cannot be taken
back or looked up over SMTP, so `email_send` is not retried after an ambiguous failure and is
refused when an earlier attempt may have sent it (at most once; see docs/actions.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis.asyncio as redis
from nats.aio.client import Client as NatsClient

from switchboard_action_executor.adapters.caldav import CalDav
from switchboard_action_executor.adapters.connections import ClientBackends
from switchboard_action_executor.adapters.smtp import Mailer
from switchboard_action_executor.domain.registry import (
    Registry,
    Tool,
    ToolContext,
    ToolError,
    TransientToolError,
)
from switchboard_common.bus import NoAnswer, request_reply
from switchboard_common.connections import ConnectionStore
from switchboard_common.egress import EgressPolicy
from switchboard_common.envelope import utcnow
from switchboard_common.memory import SearchRequest, SearchResponse, search_subject
from switchboard_common.tools import (
    CATALOG,
    CalendarCreate,
    CalendarDelete,
    CalendarList,
    EmailDraft,
    EmailSend,
    MemorySearchInput,
    TaskAdd,
    TaskComplete,
    TaskList,
)


@dataclass
class Backends:
    calendar: CalDav
    """The deployment's calendar server, for clients without their own."""
    mailer: Mailer
    """The deployment's mail server, for clients without their own."""
    valkey: redis.Redis
    nats: NatsClient | None = None
    memory_timeout_s: float = 2.0
    connections: ConnectionStore | None = None
    """Per-client servers (REST `/v1/clients/{id}/connections`); None: defaults only."""
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    """Which per-client servers may be connected to (OUTBOUND_ALLOW / OUTBOUND_DENY)."""


def _mail_summary(args: EmailDraft) -> dict[str, Any]:
    return {"to": args.to, "cc": args.cc, "subject": args.subject}


class BuiltinTools:
    """The implementations; `build_registry` binds them to the catalogue."""

    def __init__(self, backends: Backends) -> None:
        self.b = backends
        self.servers = ClientBackends(backends.connections, backends.calendar, backends.mailer,
                                      backends.egress)

    async def calendar_create(self, ctx: ToolContext, a: CalendarCreate) -> dict[str, Any]:
        # An end equal to the start is an end not given (models fill every date field they
        # see): the duration decides, as when the end is left out.
        end = a.end if a.end and a.end != a.start else a.start + timedelta(
            minutes=a.duration_minutes)
        if end <= a.start:
            raise ToolError("the event must end after it starts")
        created = await (await self.servers.calendar(ctx.org, ctx.client_id)).create(
            ctx.org, ctx.client_id, ctx.action_id, title=a.title, start=a.start, end=end,
            location=a.location, description=a.description, attendees=a.attendees)
        return {"event_id": ctx.action_id, "title": a.title, "start": a.start.isoformat(),
                "end": end.isoformat(), "created": created}

    async def calendar_create_undo(self, ctx: ToolContext, _: dict[str, Any]
                                   ) -> dict[str, Any]:
        # The event's UID is the action id (see calendar_create): delete exactly that one;
        # already gone (a repeated undo, or the user deleted it) is the same outcome.
        calendar = await self.servers.calendar(ctx.org, ctx.client_id)
        deleted = await calendar.delete(ctx.org, ctx.client_id, ctx.action_id)
        return {"event_id": ctx.action_id, "deleted": deleted}

    async def calendar_list(self, ctx: ToolContext, a: CalendarList) -> dict[str, Any]:
        if a.end <= a.start:
            raise ToolError("the window must end after it starts")
        calendar = await self.servers.calendar(ctx.org, ctx.client_id)
        events = await calendar.list(ctx.org, ctx.client_id, a.start, a.end)
        return {"events": events[:100], "count": len(events)}

    async def calendar_delete(self, ctx: ToolContext, a: CalendarDelete) -> dict[str, Any]:
        calendar = await self.servers.calendar(ctx.org, ctx.client_id)
        deleted = await calendar.delete(ctx.org, ctx.client_id, a.event_id)
        if not deleted and not ctx.resumed:
            raise ToolError(f"there is no event {a.event_id} in the calendar")
        # Resumed and gone: our own earlier attempt deleted it.
        return {"event_id": a.event_id, "deleted": True}

    async def email_draft(self, ctx: ToolContext, a: EmailDraft) -> dict[str, Any]:
        draft = {"draft_id": ctx.action_id, **a.model_dump(), "created_at": utcnow().isoformat(),
                 "created_by": ctx.user_id}
        await self.b.valkey.hsetnx(f"drafts:{ctx.org}:{ctx.client_id}", ctx.action_id,
                              json.dumps(draft))
        return {"draft_id": ctx.action_id, **_mail_summary(a)}

    async def email_draft_undo(self, ctx: ToolContext, _: dict[str, Any]) -> dict[str, Any]:
        removed = await self.b.valkey.hdel(f"drafts:{ctx.org}:{ctx.client_id}", ctx.action_id)
        return {"draft_id": ctx.action_id, "deleted": bool(removed)}

    async def email_send(self, ctx: ToolContext, a: EmailSend) -> dict[str, Any]:
        if ctx.resumed:
            raise ToolError("an earlier attempt to send this mail was interrupted and may have "
                            "gone out; it was not sent again (check the sent mail)")
        message_id = f"<{ctx.action_id}@switchboard>"
        mailer = await self.servers.mailer(ctx.org, ctx.client_id)
        await mailer.send(message_id, a.to, a.cc, a.subject, a.body)
        return {"message_id": message_id, "recipients": len(a.to) + len(a.cc),
                **_mail_summary(a)}

    async def task_add(self, ctx: ToolContext, a: TaskAdd) -> dict[str, Any]:
        task = {"task_id": ctx.action_id, "title": a.title,
                "due": a.due.isoformat() if a.due else None, "notes": a.notes,
                "status": "open", "created_at": utcnow().isoformat()}
        await self.b.valkey.hsetnx(f"tasks:{ctx.org}:{ctx.client_id}", ctx.action_id,
                              json.dumps(task))
        return {"task_id": ctx.action_id, "title": a.title, "due": task["due"]}

    async def task_add_undo(self, ctx: ToolContext, _: dict[str, Any]) -> dict[str, Any]:
        removed = await self.b.valkey.hdel(f"tasks:{ctx.org}:{ctx.client_id}", ctx.action_id)
        return {"task_id": ctx.action_id, "deleted": bool(removed)}

    async def task_list(self, ctx: ToolContext, a: TaskList) -> dict[str, Any]:
        raw = await self.b.valkey.hvals(f"tasks:{ctx.org}:{ctx.client_id}")
        tasks = sorted((json.loads(r) for r in raw), key=lambda t: t["created_at"])
        if a.status != "all":
            tasks = [t for t in tasks if t["status"] == a.status]
        return {"tasks": tasks[:100], "count": len(tasks)}

    async def task_complete(self, ctx: ToolContext, a: TaskComplete) -> dict[str, Any]:
        key = f"tasks:{ctx.org}:{ctx.client_id}"
        raw = await self.b.valkey.hget(key, a.task_id)
        if raw is None:
            raise ToolError(f"there is no task {a.task_id}")
        task = json.loads(raw)
        task["status"] = "done"
        # Setting "done" twice is a no-op: safe to repeat.
        await self.b.valkey.hset(key, a.task_id, json.dumps(task))
        return {"task_id": a.task_id, "status": "done", "title": task["title"]}

    async def memory_search(self, ctx: ToolContext, a: MemorySearchInput) -> dict[str, Any]:
        if self.b.nats is None:
            raise ToolError("memory search is not available")
        request = SearchRequest(org_id=ctx.org, client_id=ctx.client_id, user_id=ctx.user_id,
                                query=a.query, k=a.k)
        try:
            response = await request_reply(self.b.nats, search_subject(ctx.org), request,
                                           SearchResponse, self.b.memory_timeout_s)
        except NoAnswer as exc:
            raise TransientToolError("memory search did not answer") from exc
        if response.error:
            raise ToolError(f"memory search refused the query ({response.error})")
        return {"hits": [{"source": h.source, "title": h.title, "text": h.text[:500],
                          "date": h.occurred_at.date().isoformat()} for h in response.hits]}


def build_registry(b: Backends) -> Registry:
    t = BuiltinTools(b)
    c = CATALOG
    return Registry([
        # `undo`: the compensating operation behind `POST /v1/actions/{id}/undo`.
        Tool(c["calendar_create"], t.calendar_create, undo=t.calendar_create_undo),
        Tool(c["calendar_list"], t.calendar_list, rate_per_minute=60),
        Tool(c["calendar_delete"], t.calendar_delete),
        Tool(c["email_draft"], t.email_draft, undo=t.email_draft_undo),
        Tool(c["email_send"], t.email_send, timeout_s=20.0, rate_per_minute=10,
             idempotent=False),
        Tool(c["task_add"], t.task_add, timeout_s=5.0, undo=t.task_add_undo),
        Tool(c["task_list"], t.task_list, timeout_s=5.0, rate_per_minute=60),
        Tool(c["task_complete"], t.task_complete, timeout_s=5.0),
        Tool(c["memory_search"], t.memory_search, timeout_s=5.0, rate_per_minute=60),
    ])
