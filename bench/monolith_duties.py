"""A monolith that does a turn's duties, for bench/hop_floor.py: what the features cost with no
hops at all.

bench/monolith.py (the issue's baseline) streams the provider's answer and does nothing else.
This one takes the same WebSocket `user_message` and does, in one process and with the
services' own code, what the pipeline does for a turn apart from passing it between
processes:
- admits the turn against the limits (the gateway's `Limiter`, one Valkey script);
- queues it behind its conversation with its pending record and reads the conversation's
  history in the same round trip (context's `TurnQueue.enqueue_then`);
- builds the prompt (context's `prompt.build`: skills defaults, dates, the tools' schemas) into
  the `ModelRequest` context sends, and streams the answer with llm_stream's own
  `AnthropicProvider` (the SDK's `client.post` on its aiohttp transport, the request body
  encoded once, the events read untyped), as llm_stream calls the model;
- appends the turn to the conversation with its usage (`ConversationStore.append_turn`),
  finishes it in the queue, frees the limit slot;
- traces the turn (a `turn` span and a gen_ai `chat` span) and exports its spans over OTLP
  when OTEL_EXPORTER_OTLP_ENDPOINT is set, as the services do.
No authentication per turn (the pipeline checks a socket once, at connect), no JetStream, no
second process. Run: python bench/monolith_duties.py --port P --anthropic-url URL --valkey URL
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, WebSocket
from monolith import serve, services_provider, socket_app
from opentelemetry.trace import SpanKind

from switchboard_common.conversations import ConversationStore, TurnRecord, conversation_key
from switchboard_common.envelope import utcnow
from switchboard_common.model import ModelRequest
from switchboard_common.skills import SYSTEM_DEFAULTS, Skills
from switchboard_common.telemetry import setup as setup_telemetry
from switchboard_common.tools import model_tools
from switchboard_common.turns import TurnRequest
from switchboard_common.valkey import valkey_client
from switchboard_context.adapters.pending import PendingTurns
from switchboard_context.adapters.turn_queue import TurnQueue
from switchboard_context.domain import complexity, dates, pricing, prompt
from switchboard_context.settings import Settings as ContextSettings
from switchboard_gateway.adapters.limits import Limiter
from switchboard_gateway.domain.identity import Identity
from switchboard_gateway.domain.limits import OrgLimits

ORG, USER = "bench", "bench"


def build(anthropic_url: str, valkey_url: str) -> FastAPI:
    tracer = setup_telemetry("monolith", "WARNING")
    provider = services_provider(anthropic_url)
    skills = Skills.model_validate(SYSTEM_DEFAULTS)
    tools = model_tools(skills.enabled_tools)
    who = Identity(org=ORG, user=USER)
    valkey = valkey_client(valkey_url)  # connects on first use
    limiter = Limiter(valkey, valkey_url, OrgLimits(
        turns_per_minute_user=100_000, turns_per_minute_org=100_000, concurrent_turns_user=1000))
    ctx = ContextSettings.model_construct()  # context's defaults
    queue = TurnQueue(valkey, ctx.turn_active_ttl_s)
    pending = PendingTurns(valkey, ctx.pending_ttl_s)
    conversations = ConversationStore(valkey)

    async def turn(socket: WebSocket, msg: dict[str, Any]) -> None:
        key, client_id = msg["idempotency_key"], msg["client_id"]
        request = TurnRequest(org_id=ORG, turn_id=key, user_id=USER, client_id=client_id,
                              text=msg["text"], idempotency_key=key,
                              deadline_at=utcnow() + timedelta(seconds=120))
        with tracer.start_as_current_span("turn", kind=SpanKind.SERVER,
                                          attributes={"switchboard.turn_id": key}):
            await limiter.admit_turn(who, key, 120.0)
            await socket.send_text(json.dumps({"type": "turn_started", "turn_id": key}))
            base = conversation_key(ORG, USER, client_id, request.conversation_id)
            _, reply = await queue.enqueue_then(
                base, key, 0, record=pending.record(request),
                then=conversations.history_command(ORG, USER, client_id,
                                                   request.conversation_id))
            past = (conversations.parse_history(reply) if reply is not None else  # NOSCRIPT
                    await conversations.history(ORG, USER, client_id, request.conversation_id))
            built = prompt.build(
                prompt.PromptInputs(client_id=client_id, client_name=client_id, skills=skills,
                                    history=past.recent, user_text=request.text,
                                    now=dates.date_context(skills.timezone, utcnow(),
                                                           request.text)),
                complexity.estimate(request.text),
                history_budget_tokens=ctx.history_token_budget, lite_messages=ctx.lite_messages)
            model_request = ModelRequest(
                org_id=ORG, turn_id=key, user_id=USER, client_id=client_id,
                conversation_id=request.conversation_id, system=built.system,
                context=built.context, recall=built.recall, messages=built.messages,
                model="bench", max_tokens=512, deadline_at=request.deadline_at, tools=tools)
            seq = 0
            with tracer.start_as_current_span("chat default", kind=SpanKind.CLIENT,
                                              attributes={"gen_ai.system": "anthropic"}):
                async with provider.stream(model_request) as stream:
                    async for piece in stream:
                        seq += 1
                        await socket.send_text(json.dumps(
                            {"type": "delta", "turn_id": key, "seq": seq, "text": piece}))
            done = stream.completion
            usage, answer = done.usage, done.text
            await conversations.append_turn(ORG, USER, client_id, request.conversation_id,
                                            TurnRecord(turn_id=key, user_text=request.text,
                                                       assistant_text=answer, model=done.model,
                                                       provider="anthropic", usage=usage,
                                                       cost_usd=pricing.cost_usd(done.model,
                                                                                 usage)))
            await queue.finish(base, key, forget=pending.key(key))
            await socket.send_text(json.dumps({"type": "turn_completed", "turn_id": key,
                                               "seq": seq + 1, "model": done.model,
                                               "text": answer}))
            await limiter.end_turn(who, key)

    return socket_app(turn)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--anthropic-url", required=True)
    parser.add_argument("--valkey", required=True)
    args = parser.parse_args()
    serve(build(args.anthropic_url, args.valkey), args.port)
