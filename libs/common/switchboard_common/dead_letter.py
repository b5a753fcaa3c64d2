"""Dead-letter path: JetStream drops a message from a consumer when it exhausts
`max_deliver` (or a handler terminates it) and announces that with an advisory. This copies the
original message to `dlq.<stream>.<consumer>` (stream SB_DLQ) with the reason in headers, so
nothing is silently lost and one poison message never blocks the ones behind it."""

from __future__ import annotations

import json
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import RetentionPolicy
from nats.js.errors import NotFoundError

from switchboard_common.streams import ConsumerSpec

log = logging.getLogger(__name__)

_ADVISORIES = {
    "MAX_DELIVERIES": "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}",
    "MSG_TERMINATED": "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{stream}.{consumer}",
}


def dlq_subject(spec: ConsumerSpec) -> str:
    return f"dlq.{spec.stream.name}.{spec.name}"


async def watch_dead_letters(nc: NatsClient, specs: tuple[ConsumerSpec, ...]
                             ) -> list[Subscription]:
    """Subscribe (as a queue group, so one replica handles each advisory) for our consumers."""
    js = nc.jetstream()
    subs: list[Subscription] = []
    for spec in specs:
        for reason, pattern in _ADVISORIES.items():
            async def on_advisory(msg: Msg, spec: ConsumerSpec = spec, reason: str = reason
                                  ) -> None:
                data = json.loads(msg.data)
                seq = int(data["stream_seq"])
                try:
                    original = await js.get_msg(spec.stream.name, seq)
                except NotFoundError:
                    log.warning("dead letter %s seq %d already gone", spec.name, seq)
                    return
                headers = dict(original.headers or {})
                headers.update({
                    "Sb-Dlq-Reason": reason,
                    "Sb-Dlq-Stream": spec.stream.name,
                    "Sb-Dlq-Seq": str(seq),
                    "Sb-Dlq-Subject": original.subject or "",
                    "Nats-Msg-Id": f"dlq:{spec.stream.name}:{seq}",
                })
                await js.publish(dlq_subject(spec), original.data or b"", headers=headers)
                if spec.stream.retention is RetentionPolicy.WORK_QUEUE:
                    # A work queue keeps an unacked message until max_age; it now lives in
                    # the DLQ. (Limits streams keep it: other consumers may still want it.)
                    try:
                        await js.delete_msg(spec.stream.name, seq)
                    except NotFoundError:
                        pass
                log.warning("message %s seq %d dead-lettered (%s)", spec.name, seq, reason)

            subject = pattern.format(stream=spec.stream.name, consumer=spec.name)
            subs.append(await nc.subscribe(subject, queue=f"dlq-{spec.name}", cb=on_advisory))
    return subs
