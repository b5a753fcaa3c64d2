"""The turn's lifecycle inside context: accept -> (wait for the conversation) -> start ->
complete -> start the conversation's next turn. Handlers call this; it holds no state of its
own beyond its collaborators, so any replica can continue any turn."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from faststream.nats import NatsBroker

from switchboard_common.action_store import ActionStore
from switchboard_common.actions import ActionResult, AuditEntry
from switchboard_common.bus import publish_command, publish_fast, redelivery_delay
from switchboard_common.conversations import (
    ConversationStore,
    History,
    Summary,
    TurnRecord,
    conversation_key,
    done_key,
)
from switchboard_common.envelope import utcnow
from switchboard_common.errors import SwitchboardError
from switchboard_common.model import (
    ChatMessage,
    ModelRequest,
    ModelResult,
    model_msg_id,
    model_requested_subject,
)
from switchboard_common.pull_worker import Delivery
from switchboard_common.skills import Skills
from switchboard_common.streams import HISTORY, MODEL
from switchboard_common.tools import model_tools
from switchboard_common.turns import (
    TurnAction,
    TurnCompleted,
    TurnDone,
    TurnError,
    TurnRequest,
    turn_completed_subject,
    turn_events_subject,
)
from switchboard_common.untrusted import DATA_RULE
from switchboard_context.adapters.memory import MemorySearch, Retrieval
from switchboard_context.adapters.pending import PendingTurns
from switchboard_context.adapters.skills_cache import SkillResolver
from switchboard_context.adapters.turn_queue import TurnQueue
from switchboard_context.domain import complexity, dates, pricing, prompt, retrieval, tokens
from switchboard_context.settings import Settings
from switchboard_context.tool_loop import AUTONOMY, TAINTED_BY, ToolLoop

log = logging.getLogger(__name__)

SUMMARY_SYSTEM = (
    "You summarise an assistant's conversation with a client for later reference. Keep facts, "
    "decisions, dates, names, commitments and open questions. Write at most 200 words.\n"
    + DATA_RULE)


def _turn_meta(result: ModelResult) -> dict[str, str]:
    """What the client and the turn's record learn about how the turn was served: whether
    memory was used (or the turn went on without it) and the time zone of its dates."""
    return {k: v for k, v in result.meta.items() if k in ("memory", "timezone")}


HISTORY_TOKENS = "history_tokens"
"""ModelRequest.meta (returned in ModelResult.meta): the tokens of the unsummarised history
the prompt was built from."""


def new_messages(user_text: str, answer: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=user_text),
            ChatMessage(role="assistant", content=answer)]


def background_skills(skills: Skills, tools: list[str] | None) -> Skills:
    """A trigger rule narrows the tools of its background turns (never widens them)."""
    if tools is None:
        return skills
    return skills.model_copy(update={"enabled_tools": [t for t in skills.enabled_tools
                                                       if t in tools]})


def base_of(turn: TurnRequest | ModelResult) -> str:
    """The turn's queue slot: its conversation, one turn at a time. A background turn gets a
    slot of its own: events of one client need no order among each other, and queueing them
    behind each other in the activity conversation made a burst of events wait for every
    earlier turn's model calls. It still stores its turn in the activity conversation, when it
    finishes. (Its model result carries the cause of every background turn in its meta.)"""
    key = conversation_key(turn.org_id, turn.user_id, turn.client_id, turn.conversation_id)
    background = (turn.background is not None if isinstance(turn, TurnRequest)
                  else "caused_by" in turn.meta)
    return f"{key}:bg:{turn.turn_id}" if background else key


def _done(turn: TurnRequest) -> str:
    """Where the turn is recorded as finished: its conversation's set (a background turn's
    too, though it queues in a slot of its own)."""
    return done_key(turn.org_id, turn.user_id, turn.client_id, turn.conversation_id)


@dataclass
class TurnFlow:
    settings: Settings
    broker: NatsBroker
    conversations: ConversationStore
    pending: PendingTurns
    queue: TurnQueue
    skills: SkillResolver
    memory: MemorySearch | None = None
    loop: ToolLoop | None = None
    """The tool-use loop; None: turns are answered without tools."""
    audit: ActionStore | None = None
    """Where a flagged turn (its answer repeated the canary) is recorded."""
    canary_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    """Per process: a canary only has to be unguessable and stable per client, so the cached
    system prompt prefix stays the same from turn to turn."""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))

    def in_background(self, work: Coroutine[Any, Any, None], message: Delivery) -> None:
        """Run `work` concurrently (bounded), then ack `message`; nack it if `work` fails."""
        async def run() -> None:
            async with self._slots:
                try:
                    await work
                except Exception:
                    log.exception("background turn work failed; the message will be redelivered")
                    await message.nack(delay=redelivery_delay(message.raw_message))
                    return
            await message.ack()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float) -> None:
        """On shutdown: let background work finish (and ack) within the grace period; what
        does not finish is redelivered to another replica."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def accept(self, turn: TurnRequest, order: int,
                     once: tuple[str, str, int] | None = None) -> str | None:
        """Record the turn and queue it behind its conversation; returns the turn to start
        now (this one, or for an expired conversation the next waiting one), or None; TAKEN
        when `once` (see TurnQueue.enqueue) says it is not this caller's to queue."""
        return await self.queue.enqueue(base_of(turn), turn.turn_id, order,
                                        record=self.pending.record(turn), once=once,
                                        done=_done(turn))

    async def accept_reading(self, turn: TurnRequest, order: int
                             ) -> tuple[str | None, History | None]:
        """`accept`, with the conversation read in the same Valkey round trip: the read runs
        after the queue script on the same connection, so when this turn is the one to start
        it sees every turn that finished before. The history is None when another turn
        starts (or none), or when the read could not ride along."""
        start, reply = await self.queue.enqueue_then(
            base_of(turn), turn.turn_id, order, record=self.pending.record(turn),
            then=self.conversations.history_command(turn.org_id, turn.user_id,
                                                    turn.client_id, turn.conversation_id),
            done=_done(turn))
        if start != turn.turn_id or reply is None:
            return start, None
        return start, self.conversations.parse_history(reply)

    async def start(self, turn_id: str, accepted: TurnRequest | None = None,
                    past: History | None = None) -> None:
        """Build the prompt of `turn_id` and ask for the model call. `accepted` is the request
        that was just queued: when it is the one to start, its pending record (written by the
        same enqueue) is not read back, which saves a Valkey round trip per turn; `past`, its
        conversation as `accept_reading` read it, saves another."""
        turn = (accepted if accepted is not None and accepted.turn_id == turn_id
                else await self.pending.get(turn_id))
        if turn is None:  # expired before its turn came: move the conversation on
            log.warning("turn %s expired while waiting", turn_id)
            return
        resolved, client = await self.skills.resolve(turn.org_id, turn.user_id, turn.client_id)
        skills, own_taint = resolved.skills, ()  # type: tuple[Skills, tuple[str, ...]]
        if turn.background is not None:  # its text quotes an ingested event: tainted from start
            skills, own_taint = background_skills(skills, turn.background.tools), (
                turn.background.taint,)
        if past is None:
            past = await self.conversations.history(turn.org_id, turn.user_id, turn.client_id,
                                                    turn.conversation_id)
        level = complexity.estimate(turn.text)
        found = Retrieval(status="not_needed")
        if self.memory is not None and retrieval.could_use_memory(turn.text):
            try:
                found = await self.memory.search(turn.org_id, turn.user_id, turn.client_id,
                                                 turn.text)
            except SwitchboardError as exc:
                await self._refuse(turn, exc)
                return
        zone = resolved.skills.timezone
        built = prompt.build(
            prompt.PromptInputs(
                client_id=turn.client_id, client_name=client.name if client else turn.client_id,
                skills=skills, history=past.recent, user_text=turn.text,
                summary=past.summary.text if past.summary else None,
                retrieved=found.items, outcomes=past.outcomes,
                canary=self.canary(turn.org_id, turn.client_id),
                now=dates.date_context(zone, utcnow(), turn.text)),
            level, history_budget_tokens=self.settings.history_token_budget,
            lite_messages=self.settings.lite_messages,
            lite_memory_items=self.settings.lite_memory_items)
        model = built.model or (self.settings.simple_model if built.kind == "lite"
                                else self.settings.complex_model)
        tools = model_tools(skills.enabled_tools) if self.loop is not None else []
        taint = tuple(dict.fromkeys((*own_taint, *built.tainted_by, *past.tainted_by)))
        request = ModelRequest(
            org_id=turn.org_id, turn_id=turn.turn_id, user_id=turn.user_id,
            client_id=turn.client_id, conversation_id=turn.conversation_id, iteration=0,
            system=built.system, context=built.context, recall=built.recall,
            messages=built.messages, model=model,
            max_tokens=min(built.max_tokens, self.settings.max_tokens),
            deadline_at=turn.deadline_at,
            meta={"prompt": built.kind, "memory": found.status, "timezone": zone,
                  HISTORY_TOKENS: str(tokens.count_messages(past.recent)),
                  **({"caused_by": turn.background.taint} if turn.background else {}),
                  **({TAINTED_BY: json.dumps(taint)} if tools and taint else {}),
                  **({AUTONOMY: skills.autonomy.model_dump_json()} if tools else {})},
            tools=tools,
            canary=self.canary(turn.org_id, turn.client_id),
            leak_markers=list(prompt.LEAK_MARKERS))
        # The tool loop keeps no state for this call: a result that calls tools carries the
        # request back (`ModelResult.request`) and the loop starts from it.
        await publish_command(self.broker, request, model_requested_subject(turn.org_id),
                              msg_id=model_msg_id(turn.turn_id, 0), stream=MODEL.name)
        log.debug("turn %s started: %s prompt, ~%d tokens", turn_id, built.kind,
                  built.input_tokens)

    def canary(self, org: str, client: str) -> str:
        digest = hmac.new(self.canary_key, f"{org}:{client}".encode(), hashlib.sha256)
        return "sbc-" + digest.hexdigest()[:20]

    async def complete(self, result: ModelResult) -> None:
        if result.purpose == "summary":
            await self._save_summary(result)
            return
        turn = await self.pending.get(result.turn_id)
        if result.canary_hit:
            await self._flag(result)
        if turn is not None and result.error is None and self.loop is not None:
            final = await self.loop.after_model(result)
            if final is None:
                return  # the tool-use loop goes on; the turn keeps its conversation
            result = final
        if turn is not None:
            if result.error:
                await self._fail(turn, result)
            else:
                await self._finish(turn, result, await self.loop.actions(result)
                                   if self.loop is not None else [])
        # Always (also for a redelivered result): free the conversation, start what waits; the
        # turn's record goes in the same script.
        if (following := await self.queue.finish(
                base_of(result), result.turn_id,
                forget=self.pending.key(result.turn_id) if turn is not None else None)
                ) is not None:
            await self.start(following)

    async def _flag(self, result: ModelResult) -> None:
        log.warning("turn %s: the answer repeated the system prompt canary; withheld",
                    result.turn_id)
        if self.audit is not None:
            await self.audit.audit(result.org_id, result.client_id, AuditEntry(
                kind="flagged", action_id=result.turn_id, tool="answer", actor="system",
                details={"reason": "the answer repeated the system prompt canary; the text "
                                   "from it on was withheld", "turn_id": result.turn_id,
                         "user_id": result.user_id, "iteration": result.iteration}))

    async def note_outcome(self, result: ActionResult) -> None:
        """An action decided after its turn ended (an approval card answered later): keep a
        line about it with the conversation, so the next prompt knows, e.g., that the mail
        went out. The user already saw the result on the card."""
        if result.status == "pending":
            return
        await self.conversations.add_outcome(
            result.org_id, result.user_id, result.client_id, result.conversation_id,
            f"{result.tool} ({result.action_id}): {result.status}. {result.message}".strip())

    async def sweep(self) -> None:
        """Start waiting turns of conversations whose active turn expired."""
        for base in await self.queue.pending_conversations():
            if (following := await self.queue.finish(base)) is not None:
                await self.start(following)

    async def _refuse(self, turn: TurnRequest, exc: SwitchboardError) -> None:
        """End a turn before its model call (typed, first and last event of its stream) and
        move its conversation on."""
        await publish_fast(self.broker.connection,
                           turn_events_subject(turn.org_id, turn.turn_id),
                           TurnError(org_id=turn.org_id, turn_id=turn.turn_id, seq=1,
                                     code=exc.code, message=str(exc), retryable=exc.retryable))
        log.warning("turn %s refused: %s", turn.turn_id, exc.code)
        if (following := await self.queue.finish(base_of(turn), turn.turn_id,
                                                 forget=self.pending.key(turn.turn_id))
                ) is not None:
            await self.start(following)

    async def _fail(self, turn: TurnRequest, result: ModelResult) -> None:
        assert result.error is not None
        # Keep the user's message (store first, then tell the client, as for a success): the
        # placeholder answer keeps the roles alternating and tells the next prompt it failed.
        await self.conversations.append_turn(
            turn.org_id, turn.user_id, turn.client_id, turn.conversation_id,
            TurnRecord(turn_id=turn.turn_id, user_text=turn.text,
                       assistant_text=f"(no answer: {result.error.message})",
                       model=result.model, provider=result.provider, usage=result.usage,
                       cost_usd=pricing.cost_usd(result.model, result.usage),
                       prompt=result.meta.get("prompt", "full"), error=result.error.code,
                       meta=_turn_meta(result)))
        await publish_fast(self.broker.connection, turn_events_subject(result.org_id,
                                                                       result.turn_id),
                           TurnError(org_id=result.org_id, turn_id=result.turn_id,
                                     seq=result.last_seq + 1, code=result.error.code,
                                     message=result.error.message,
                                     retryable=result.error.retryable))
        log.warning("turn %s failed: %s", result.turn_id, result.error.code)

    async def _finish(self, turn: TurnRequest, result: ModelResult,
                      actions: list[TurnAction]) -> None:
        # Store first, then tell the client: a message sent right after `turn_completed`
        # must find this turn in the conversation.
        record = TurnRecord(turn_id=turn.turn_id, user_text=turn.text,
                            assistant_text=result.text, model=result.model,
                            provider=result.provider, usage=result.usage,
                            cost_usd=pricing.cost_usd(result.model, result.usage),
                            prompt=result.meta.get("prompt", "full"),
                            stop_reason=result.stop_reason, meta=_turn_meta(result))
        await self.conversations.append_turn(turn.org_id, turn.user_id, turn.client_id,
                                             turn.conversation_id, record)
        if self.loop is not None and (taint := await self.loop.taint(result)):
            await self.conversations.add_taint(turn.org_id, turn.user_id, turn.client_id,
                                               turn.conversation_id, taint,
                                               self.settings.conversation_taint_ttl_s)
        await publish_command(
            self.broker,
            TurnCompleted(org_id=turn.org_id, turn_id=turn.turn_id,
                          user_id=turn.user_id, client_id=turn.client_id,
                          conversation_id=turn.conversation_id, user_text=turn.text,
                          assistant_text=result.text, model=result.model, usage=result.usage),
            turn_completed_subject(turn.org_id), msg_id=f"turn-completed:{turn.turn_id}",
            stream=HISTORY.name)
        await publish_fast(self.broker.connection, turn_events_subject(turn.org_id, turn.turn_id),
                           TurnDone(org_id=turn.org_id, turn_id=turn.turn_id,
                                    seq=result.last_seq + 1, model=result.model,
                                    provider=result.provider, stop_reason=result.stop_reason,
                                    usage=result.usage, text=result.text,
                                    actions=actions, meta=_turn_meta(result)))
        await self._maybe_summarise(turn, result)

    async def _maybe_summarise(self, turn: TurnRequest, result: ModelResult) -> None:
        """Off the critical path: when the unsummarised conversation outgrows the budget, ask
        the model (in the background) to fold its older part into the summary."""
        budget = self.settings.history_token_budget
        if (before := result.meta.get(HISTORY_TOKENS)) is not None and int(before) + \
                tokens.count_messages(new_messages(turn.text, result.text)) <= budget:
            # What the prompt read plus this turn is within budget: no need to read the
            # conversation back (turns of a conversation run one at a time, and a summary
            # saved meanwhile only shortens it).
            return
        past = await self.conversations.history(turn.org_id, turn.user_id, turn.client_id,
                                                turn.conversation_id)
        summary = past.summary
        if tokens.count_messages(past.recent) <= budget:
            return
        keep = len(prompt.window(past.recent, "", budget_tokens=budget // 2)) - 1
        target = past.total - keep
        if target <= past.offset:
            return
        request = ModelRequest(
            org_id=turn.org_id, turn_id=f"s{turn.turn_id}"[:64], user_id=turn.user_id,
            client_id=turn.client_id, conversation_id=turn.conversation_id,
            system=SUMMARY_SYSTEM, purpose="summary", model=self.settings.simple_model,
            messages=[ChatMessage(role="user", content=prompt.summary_request(
                summary.text if summary else None, past.recent[:target - past.offset]))],
            max_tokens=self.settings.summary_max_tokens,
            deadline_at=utcnow() + timedelta(seconds=self.settings.summary_deadline_s),
            meta={"covers": str(target)})
        where = (turn.org_id, turn.user_id, turn.client_id, turn.conversation_id)
        # Each turn past the budget would ask again while the first summary is on its way:
        # one model call per conversation at a time.
        if not await self.conversations.begin_summary(
                *where, ttl_s=self.settings.summary_deadline_s + 30.0):
            return
        try:
            await publish_command(self.broker, request, model_requested_subject(turn.org_id),
                                  msg_id=model_msg_id(request.turn_id, 0), stream=MODEL.name)
        except BaseException:
            await self.conversations.end_summary(*where)
            raise
        log.info("conversation of turn %s: summarising %d messages", turn.turn_id,
                 target - past.offset)

    async def _save_summary(self, result: ModelResult) -> None:
        where = (result.org_id, result.user_id, result.client_id, result.conversation_id)
        if result.error or not result.text.strip():
            log.warning("summary %s failed: %s", result.turn_id,
                        result.error.code if result.error else "empty")
        else:
            await self.conversations.save_summary(*where, Summary(
                text=result.text.strip(), covers=int(result.meta.get("covers", "0"))))
        await self.conversations.end_summary(*where)
