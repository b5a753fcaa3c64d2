"""Who may publish and subscribe to what on NATS: one role per service, written with the
subject functions and stream specs of the contract modules, turned into nats-server
`permissions` blocks (see `switchboard_cli.natsconf` for the server config).

Rules the roles encode (docs/security.md, "The bus"):
- only context, the gateway and action_executor (its memory_search tool) may request
  `memory.search.*`; only memory_indexer answers it;
- only llm_stream, context and action_executor publish turn events; only the gateway reads them
  (live, and replayed from SB_TURN_EVENTS through an ephemeral consumer);
- a service reads a JetStream stream only through its own durable consumers: creating,
  fetching from and acking them are separate JetStream API subjects, each allowed by name;
- replies come back to a per-service inbox (`_INBOX.<service>.>`, set by `bus.make_broker`),
  so no service can subscribe to another's replies; answering a request uses
  `allow_responses` (publish to the reply subject of a request just received, once).

JetStream streams: a service may create the streams it uses (services declare them idempotently
at start-up; outside producers may not) but never change one: a stream's subjects decide what
its consumers read. Updates are the admin's (`switchboard nats-streams`, run by the embedded
stack at every start and by a deployment when a stream's declaration changes).
Consumers, message reads and deletes, and purges are allowed only where the service owns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switchboard_common.actions import (
    action_decide_subject,
    action_proposed_subject,
    action_results_subject,
    action_undo_subject,
    agency_subject,
)
from switchboard_common.credentials import credential_revoked_subject
from switchboard_common.dead_letter import dlq_subject
from switchboard_common.directory import skills_changed_subject
from switchboard_common.memory import (
    forget_subject,
    forgotten_subject,
    ingest_subject,
    search_subject,
)
from switchboard_common.model import model_completed_subject, model_requested_subject
from switchboard_common.skills import skills_resolve_subject
from switchboard_common.streams import (
    ACTIONS,
    ALL_STREAMS,
    DLQ,
    HISTORY,
    INGEST,
    MODEL,
    RESULTS,
    TURN_EVENTS,
    TURNS,
    StreamSpec,
)
from switchboard_common.turns import (
    turn_cancel_subject,
    turn_completed_subject,
    turn_events_subject,
    turn_observed_subject,
    turn_requested_subject,
)

ANY = "*"
JS_API = "$JS.API"
MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


def inbox_prefix(service: str) -> str:
    """Where a service's replies (request/reply, JetStream API answers, pull fetches) arrive."""
    return f"_INBOX.{service}"


def pull_inbox(service: str) -> bytes:
    """FastStream's pull subscribers take their own inbox prefix (default `_inbox.`, shared by
    everyone): every pull subscriber of a service passes this one."""
    return f"{inbox_prefix(service)}.".encode()


@dataclass(frozen=True)
class Consumer:
    """A durable pull consumer the service owns (see streams.ConsumerSpec)."""

    stream: StreamSpec
    name: str


@dataclass(frozen=True)
class Role:
    """What one service does on the bus. Subjects are written with the contracts' subject
    functions and `ANY` for the org/turn/client tokens."""

    name: str
    publishes: tuple[str, ...] = ()
    """Events and commands it sends (core NATS or JetStream)."""
    requests: tuple[str, ...] = ()
    """Request/reply subjects it asks (and waits on its own inbox)."""
    serves: tuple[str, ...] = ()
    """Request/reply subjects it answers (queue subscriptions + allow_responses)."""
    listens: tuple[str, ...] = ()
    """Core NATS events it subscribes to."""
    consumers: tuple[Consumer, ...] = ()
    writes: tuple[StreamSpec, ...] = ()
    """Streams its JetStream publishes land in (it declares them at start-up)."""
    replays: tuple[StreamSpec, ...] = ()
    """Streams it reads through short-lived ephemeral consumers (resume)."""
    reads_last: tuple[StreamSpec, ...] = ()
    """Streams it reads single messages of (the last event of a subject)."""
    purges: tuple[StreamSpec, ...] = ()
    dead_letters: bool = True
    """Copies its consumers' dead letters to SB_DLQ (reads the original, deletes it)."""
    declares_streams: bool = True
    """Creates the streams it uses at start-up (the services do; outside producers
    only publish into streams that exist)."""

    def streams(self) -> tuple[StreamSpec, ...]:
        used = [*self.writes, *(c.stream for c in self.consumers), *self.replays,
                *self.reads_last]
        if self.dead_letters and self.consumers:
            used.append(DLQ)
        return tuple(s for s in ALL_STREAMS if s in used)

    def publish_allow(self) -> list[str]:
        out = [*self.publishes, *self.requests, f"{JS_API}.INFO"]
        for s in self.streams() if self.declares_streams else ():
            # Create, never update: a service that could change a stream's subjects could
            # capture other subjects (e.g. other services' inboxes) into a stream it reads.
            out += [f"{JS_API}.STREAM.INFO.{s.name}", f"{JS_API}.STREAM.CREATE.{s.name}"]
        for c in self.consumers:
            prefix = f"{JS_API}.CONSUMER"
            out += [f"{prefix}.CREATE.{c.stream.name}.{c.name}",
                    f"{prefix}.CREATE.{c.stream.name}.{c.name}.>",
                    f"{prefix}.DURABLE.CREATE.{c.stream.name}.{c.name}",
                    f"{prefix}.INFO.{c.stream.name}.{c.name}",
                    f"{prefix}.DELETE.{c.stream.name}.{c.name}",
                    f"{prefix}.MSG.NEXT.{c.stream.name}.{c.name}",
                    f"$JS.ACK.{c.stream.name}.{c.name}.>"]
            if self.dead_letters:
                out.append(dlq_subject(c.stream.name, c.name))
        if self.dead_letters and self.consumers:
            for s in dict.fromkeys(c.stream for c in self.consumers):
                out += [f"{JS_API}.STREAM.MSG.GET.{s.name}", f"{JS_API}.STREAM.MSG.DELETE.{s.name}"]
        out += [f"{JS_API}.STREAM.MSG.GET.{s.name}" for s in self.reads_last]
        for s in self.replays:
            # Ephemeral consumers have server-chosen names: create (unnamed) and use any.
            prefix = f"{JS_API}.CONSUMER"
            out += [f"{prefix}.CREATE.{s.name}", f"{prefix}.CREATE.{s.name}.>",
                    f"{prefix}.INFO.{s.name}.*", f"{prefix}.DELETE.{s.name}.*",
                    f"{prefix}.MSG.NEXT.{s.name}.*"]
        out += [f"{JS_API}.STREAM.PURGE.{s.name}" for s in self.purges]
        return list(dict.fromkeys(out))

    def subscribe_allow(self) -> list[str]:
        out = [f"{inbox_prefix(self.name)}.>", *self.serves, *self.listens]
        if self.dead_letters:
            out += [MAX_DELIVERIES_ADVISORY.format(stream=c.stream.name, consumer=c.name)
                    for c in self.consumers]
        return list(dict.fromkeys(out))

    def permissions(self) -> dict[str, Any]:
        """The nats-server `permissions` block of this role's user."""
        block: dict[str, Any] = {"publish": {"allow": self.publish_allow()},
                                 "subscribe": {"allow": self.subscribe_allow()}}
        if self.serves:
            # Answer a request once, within a minute, on the reply subject it carried.
            block["allow_responses"] = {"max": 1, "expires": "1m"}
        return block


ROLES: dict[str, Role] = {role.name: role for role in (
    Role(
        "gateway",
        # turns.observed: a user's other sockets (on any replica) follow their new turns;
        # turns.cancel: the stop button, heard by llm_stream.
        publishes=(turn_requested_subject(ANY), ingest_subject(ANY, ANY),
                   skills_changed_subject(ANY), turn_cancel_subject(ANY),
                   turn_observed_subject(ANY, ANY), credential_revoked_subject(ANY)),
        requests=(search_subject(ANY), forget_subject(ANY), action_decide_subject(ANY),
                  action_undo_subject(ANY), skills_resolve_subject(ANY)),
        # skills.changed: the turn gate's cached client records (adapters/client_cache.py).
        listens=(turn_events_subject(ANY, ANY), turn_observed_subject(ANY, ANY),
                 credential_revoked_subject(ANY), agency_subject(ANY, ANY),
                 skills_changed_subject(ANY)),
        writes=(TURNS, INGEST),
        replays=(TURN_EVENTS,),
        dead_letters=False,
    ),
    Role(
        "context",
        publishes=(model_requested_subject(ANY), turn_completed_subject(ANY),
                   action_proposed_subject(ANY), turn_events_subject(ANY, ANY)),
        requests=(search_subject(ANY),),
        serves=(skills_resolve_subject(ANY),),
        listens=(skills_changed_subject(ANY), forgotten_subject(ANY)),
        consumers=(Consumer(TURNS, "context-turns"), Consumer(RESULTS, "context-results"),
                   Consumer(ACTIONS, "context-actions"),
                   # Trigger rules: ingested events may start background turns.
                   Consumer(INGEST, "context-triggers")),
        writes=(MODEL, HISTORY, ACTIONS),
    ),
    Role(
        "llm_stream",
        publishes=(turn_events_subject(ANY, ANY), model_completed_subject(ANY)),
        listens=(turn_cancel_subject(ANY),),
        consumers=(Consumer(MODEL, "llm-stream"),),
        writes=(RESULTS,),
        # A retried call continues the turn's `seq` after the last event already sent.
        reads_last=(TURN_EVENTS,),
    ),
    Role(
        "action_executor",
        publishes=(action_results_subject(ANY), turn_events_subject(ANY, ANY),
                   agency_subject(ANY, ANY)),
        # Its memory_search tool searches the client's memory on the user's behalf.
        requests=(search_subject(ANY),),
        serves=(action_decide_subject(ANY), action_undo_subject(ANY)),
        consumers=(Consumer(ACTIONS, "action-executor"),),
        writes=(ACTIONS,),
    ),
    Role(
        "memory_indexer",
        publishes=(forgotten_subject(ANY),),
        serves=(search_subject(ANY), forget_subject(ANY)),
        consumers=(Consumer(HISTORY, "memory-turns"), Consumer(INGEST, "memory-ingest")),
        purges=(INGEST,),
    ),
    Role(
        # Other systems that publish events into a client's memory (DESIGN: "Other systems
        # publish events into NATS"). Trusted for every org: give each org its own account
        # (docs/security.md, "At scale") where producers are not the platform's own.
        "ingest",
        publishes=(ingest_subject(ANY, ANY),),
        writes=(INGEST,),
        dead_letters=False,
        declares_streams=False,
    ),
)}

SERVICES: tuple[str, ...] = ("gateway", "context", "llm_stream", "action_executor",
                             "memory_indexer")
ADMIN = "admin"
"""The operator's user (stream provisioning, the `nats` CLI): every subject. Never given
to a service."""

