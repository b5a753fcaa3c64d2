"""Dead-lettering of events that can never be indexed. The copy keeps the original bytes and
headers and uses the same Nats-Msg-Id as the shared advisory path (`switchboard_common.
dead_letter`), so a message both paths see lands in SB_DLQ once."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from switchboard_common.streams import DLQ


async def dead_letter(broker: NatsBroker, subject: str, msg: Msg, reason: str,
                      detail: str) -> None:
    meta = msg.metadata
    stream, seq = meta.stream, meta.sequence.stream
    headers = dict(msg.headers or {})
    headers.update({
        "Sb-Dlq-Reason": reason,
        "Sb-Dlq-Error": detail,
        "Sb-Dlq-Stream": stream,
        "Sb-Dlq-Seq": str(seq),
        "Sb-Dlq-Subject": msg.subject,
        "Nats-Msg-Id": f"dlq:{stream}:{seq}",
    })
    await broker.publish(msg.data, subject, headers=headers, stream=DLQ.name, timeout=5.0)
