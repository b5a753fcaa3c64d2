"""Dead-letter path: JetStream drops a message from a consumer when it exhausts
`max_deliver` and announces that with an advisory; this copies the original message to
`dlq.<stream>.<consumer>` (stream SB_DLQ) with the reason in headers. Malformed messages are
copied by `bus.reject_invalid` before they are terminated. So nothing is silently lost and one
poison message never blocks the ones behind it."""

from __future__ import annotations

import contextlib
import json
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import RetentionPolicy
from nats.js.errors import NotFoundError

from switchboard_common.streams import ConsumerSpec

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
_MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


def dlq_subject(stream: str, consumer: str) -> str:
    return f"dlq.{stream}.{consumer}"


async def dead_letter(nc: NatsClient, stream: str, consumer: str, seq: int, subject: str,
                      data: bytes, headers: dict[str, str] | None, reason: str,
                      error: str | None = None) -> None:
    """Copy one message to the DLQ with where it came from and why (`error`: field paths and
    types only, never content). Idempotent per (stream, seq) through Nats-Msg-Id, so two
    replicas, or the handler and the advisory path, store it once."""
    # Headers the server acts on (Nats-Expected-Stream, Nats-Expected-Last-*, Nats-Msg-Id,
    # Nats-TTL ...) describe the original publish: kept on the copy, JetStream would refuse
    # it ("expected stream does not match"), so they go; the original id is kept as data.
    out = {k: v for k, v in (headers or {}).items() if not k.lower().startswith("nats-")}
    if headers and MSG_ID in headers:
        out["Sb-Dlq-Msg-Id"] = headers[MSG_ID]
    out.update({
        "Sb-Dlq-Reason": reason, "Sb-Dlq-Stream": stream, "Sb-Dlq-Consumer": consumer,
        "Sb-Dlq-Seq": str(seq), "Sb-Dlq-Subject": subject,
        MSG_ID: f"dlq:{stream}:{seq}",
    })
    if error:
        out["Sb-Dlq-Error"] = error
    await nc.jetstream().publish(dlq_subject(stream, consumer), data, headers=out)
    log.warning("message %s/%s seq %d dead-lettered (%s)", stream, consumer, seq, reason)


async def dead_letter_delivery(nc: NatsClient, msg: Msg, reason: str,
                               error: str | None = None) -> None:
    """Dead-letter a JetStream delivery being handled now (before terminating or acking it)."""
    meta = msg.metadata
    await dead_letter(nc, meta.stream, meta.consumer, meta.sequence.stream, msg.subject,
                      msg.data, msg.headers, reason, error)


async def watch_dead_letters(nc: NatsClient, specs: tuple[ConsumerSpec, ...]
                             ) -> list[Subscription]:
    """Copy messages that exhausted max_deliver to the DLQ (one replica per advisory)."""
    js = nc.jetstream()
    subs: list[Subscription] = []
    for spec in specs:
        async def on_advisory(msg: Msg, spec: ConsumerSpec = spec) -> None:
            seq = int(json.loads(msg.data)["stream_seq"])
            try:
                original = await js.get_msg(spec.stream.name, seq)
            except NotFoundError:
                log.warning("dead letter %s seq %d already gone", spec.name, seq)
                return
            await dead_letter(nc, spec.stream.name, spec.name, seq, original.subject or "",
                              original.data or b"", original.headers, reason="MAX_DELIVERIES")
            if spec.stream.retention is RetentionPolicy.WORK_QUEUE:
                # A work queue keeps an unacked message until max_age; it now lives in the
                # DLQ. (Limits streams keep it: other consumers may still want it.)
                with contextlib.suppress(NotFoundError):
                    await js.delete_msg(spec.stream.name, seq)

        subject = _MAX_DELIVERIES.format(stream=spec.stream.name, consumer=spec.name)
        subs.append(await nc.subscribe(subject, queue=f"dlq-{spec.name}", cb=on_advisory))
    return subs
