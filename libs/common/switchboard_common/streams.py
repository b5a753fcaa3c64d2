"""JetStream streams and consumers, declared once here and created idempotently at start-up.

Commands use work-queue retention (a message leaves the stream when its one owner acks it);
events use limits retention with an age bound so a consumer that starts later still sees them.
Every consumer acks explicitly, has a bounded `max_deliver`, and messages that exhaust their
deliveries (or are rejected) are copied to `dlq.<stream>.<consumer>` by `dead_letter`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

log = logging.getLogger(__name__)

DAY = 24 * 3600.0


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    retention: RetentionPolicy
    storage: StorageType
    max_age_s: float
    duplicate_window_s: float = 120.0
    max_msgs_per_subject: int = -1
    description: str = ""

    def config(self, replicas: int = 1) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=self.retention,
            storage=self.storage,
            max_age=self.max_age_s,
            duplicate_window=self.duplicate_window_s,
            max_msgs_per_subject=self.max_msgs_per_subject,
            discard=DiscardPolicy.OLD,
            num_replicas=replicas,
        )


TURNS = StreamSpec(
    "SB_TURNS", ("turns.requested.>",), RetentionPolicy.WORK_QUEUE, StorageType.FILE, DAY,
    description="turn commands (gateway -> context), deduplicated by the client's idempotency key",
)
MODEL = StreamSpec(
    "SB_MODEL", ("model.requested.>",), RetentionPolicy.WORK_QUEUE, StorageType.FILE, DAY,
    description="model calls (context -> llm_stream)",
)
RESULTS = StreamSpec(
    "SB_RESULTS", ("model.completed.>",), RetentionPolicy.WORK_QUEUE, StorageType.FILE, DAY,
    description="model results (llm_stream -> context)",
)
HISTORY = StreamSpec(
    "SB_HISTORY", ("turns.completed.>",), RetentionPolicy.LIMITS, StorageType.FILE, 7 * DAY,
    description="finished turns, for indexing and audit",
)
ACTIONS = StreamSpec(
    "SB_ACTIONS", ("actions.proposed.>", "actions.results.>"), RetentionPolicy.LIMITS,
    StorageType.FILE, 7 * DAY, description="proposed actions and their results",
)
INGEST = StreamSpec(
    "SB_INGEST", ("events.ingest.>",), RetentionPolicy.LIMITS, StorageType.FILE, 7 * DAY,
    duplicate_window_s=600.0, description="external events to index as per-client memory",
)
TURN_EVENTS = StreamSpec(
    "SB_TURN_EVENTS", ("turns.events.>",), RetentionPolicy.LIMITS, StorageType.MEMORY, 900.0,
    duplicate_window_s=0.0, max_msgs_per_subject=20_000,
    description="client stream events kept 15 minutes so a reconnecting client can resume",
)
DLQ = StreamSpec(
    "SB_DLQ", ("dlq.>",), RetentionPolicy.LIMITS, StorageType.FILE, 14 * DAY,
    description="messages that exhausted their deliveries or were rejected",
)

ALL_STREAMS: tuple[StreamSpec, ...] = (TURNS, MODEL, RESULTS, HISTORY, ACTIONS, INGEST,
                                       TURN_EVENTS, DLQ)


# PULL_NOTE: FastStream's pull subscribers fetch one message per pull request. nats-py's
# multi-message fetch, once the first message of an idle period arrives, keeps waiting for the
# rest of the batch until the request expires, which would hold that first message back. The
# consumers on every turn's path run on pull_worker.PullWorker instead, which hands each
# message on as it arrives and keeps one request standing for a window of messages.


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer: every replica of the owning service fetches from it, so they
    share the work, and a message unacked after `ack_wait_s` goes to another replica."""

    stream: StreamSpec
    name: str
    filter_subject: str
    ack_wait_s: float = 30.0
    max_deliver: int = 5
    max_ack_pending: int = 1000
    backoff_s: tuple[float, ...] = field(default=())
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    """NEW for a consumer that must not act on history (a trigger consumer added to a stream
    that already holds a week of events)."""

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.name,
            deliver_policy=self.deliver_policy,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            filter_subject=self.filter_subject,
            backoff=list(self.backoff_s) or None,
        )


async def ensure_streams(js: JetStreamContext, specs: tuple[StreamSpec, ...] = ALL_STREAMS,
                         replicas: int = 1) -> None:
    """Create or update every stream with `replicas` copies (1 on one server, 3 on a cluster;
    consumers inherit it). Safe to run from every replica of every service.

    A service's NATS user may create its streams but not change them (see permissions: a
    stream's subjects decide what its consumers can read). Its update is then refused and
    the stream is used as it is, with a warning; the deploy's admin step
    (`switchboard nats-streams`) brings it up to date."""
    for spec in specs:
        try:
            await js.add_stream(spec.config(replicas))
        except BadRequestError:
            # Exists with another config (an older deploy, or R1 before the cluster grew):
            # bring it up to date; JetStream moves a stream between R1 and R3 in place.
            try:
                await js.update_stream(spec.config(replicas))
            except NatsTimeout:
                # nats-server drops a denied request: no answer comes.
                log.warning("stream %s differs from its declaration and this user may not "
                            "update it: run `switchboard nats-streams` as the admin user",
                            spec.name)
    log.debug("streams ready: %s", ", ".join(s.name for s in specs))


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Create the durable consumer, or update its editable settings (ack wait, max deliver...)."""
    try:
        await js.add_consumer(spec.stream.name, spec.config())
    except BadRequestError:
        await js.delete_consumer(spec.stream.name, spec.name)
        await js.add_consumer(spec.stream.name, spec.config())


async def declare_missing(js: JetStreamContext, streams: tuple[StreamSpec, ...],
                          consumers: tuple[ConsumerSpec, ...], replicas: int = 1) -> int:
    """Create the streams and consumers the server lacks, and change nothing that exists:
    run after a reconnect (a restarted server lost its memory streams, or its whole store),
    where `ensure_consumer`'s delete-and-recreate of a differing consumer would fight a
    newer replica's settings. How many were created."""
    created = 0
    for spec in streams:
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(spec.config(replicas))
            created += 1
    for consumer in consumers:
        try:
            await js.consumer_info(consumer.stream.name, consumer.name)
        except NotFoundError:
            await js.add_consumer(consumer.stream.name, consumer.config())
            created += 1
    return created
