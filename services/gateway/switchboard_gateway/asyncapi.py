"""The gateway's bus interface as an AsyncAPI document (`task asyncapi`). The gateway talks to
NATS directly rather than through FastStream handlers (it relays raw frames per socket), so
this app only declares what it publishes and consumes; it is never run."""

from __future__ import annotations

from faststream import FastStream
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

from switchboard_common.actions import DecideAction, UndoAction
from switchboard_common.credentials import CredentialRevoked
from switchboard_common.directory import SkillsChanged
from switchboard_common.memory import ForgetRequest, IngestEvent, SearchRequest
from switchboard_common.skills import ResolveSkills
from switchboard_common.turns import StreamEvent, TurnRequest


def build_app() -> FastStream:
    broker = NatsBroker()
    publisher = broker.publisher(
        "turns.requested.{org}", schema=TurnRequest, title="gateway/turns.requested",
        description="A user message to answer (JetStream SB_TURNS; Nats-Msg-Id = "
                    "turn:<org>:<user>:<idempotency_key>, so a repeated key is one turn).")

    @broker.subscriber(
        "turns.events.{org}.{turn}", title="gateway/turns.events",
        description="A turn's client stream (core NATS, kept in SB_TURN_EVENTS for resume), "
                    "forwarded verbatim to the socket that started or resumed the turn.")
    async def on_turn_event(event: StreamEvent) -> None:  # documentation only
        del event

    changed = broker.publisher(
        "skills.changed.{org}", schema=SkillsChanged, title="gateway/skills.changed",
        description="A skill tier, template or client changed through the REST API (core "
                    "NATS): every context replica drops the org's cached resolutions, every "
                    "gateway replica its cached client records.")

    @broker.subscriber(
        "skills.changed.{org}", title="gateway/skills.changed.listen",
        description="Changes made on any replica: the org's client records cached for the "
                    "turn gate's access check are dropped.")
    async def on_changed(event: SkillsChanged) -> None:  # documentation only
        del event

    resolve = broker.publisher(
        "skills.resolve.{org}", schema=ResolveSkills, title="gateway/skills.resolve",
        description="Request/reply (2 s): resolved skills with provenance for (user, "
                    "client), answered by one context replica with ResolveSkillsReply.")

    for subject, schema, title, description in (
        ("events.ingest.{org}.{client}", IngestEvent, "gateway/events.ingest",
         "An uploaded event (POST /v1/clients/{id}/events), JetStream SB_INGEST, "
         "Nats-Msg-Id ingest:<org>:<client>:<event_id>."),
        ("memory.search.{org}", SearchRequest, "gateway/memory.search",
         "Request/reply to memory_indexer (GET .../memory/search); reply SearchResponse."),
        ("memory.forget.{org}", ForgetRequest, "gateway/memory.forget",
         "Request/reply to memory_indexer (DELETE .../memory..., DELETE a client); reply "
         "ForgetResult."),
        ("actions.decide.{org}", DecideAction, "gateway/actions.decide",
         "Request/reply to action_executor: approve, edit or reject a pending action; "
         "reply DecideReply."),
        ("actions.undo.{org}", UndoAction, "gateway/actions.undo",
         "Request/reply to action_executor: undo an executed action (its tool's compensating "
         "operation); reply DecideReply."),
    ):
        broker.publisher(subject, schema=schema, title=title, description=description)

    revoked = broker.publisher(
        "auth.revoked.{org}", schema=CredentialRevoked, title="gateway/auth.revoked",
        description="A session was signed out or an API key revoked (core NATS): every "
                    "gateway replica drops it from its cache of verified credentials.")

    @broker.subscriber(
        "auth.revoked.{org}", title="gateway/auth.revoked.listen",
        description="Revocations made on any replica (this one included).")
    async def on_revoked(event: CredentialRevoked) -> None:  # documentation only
        del event

    del publisher, changed, resolve, revoked
    return FastStream(broker, specification=AsyncAPI(title="Switchboard gateway"))
