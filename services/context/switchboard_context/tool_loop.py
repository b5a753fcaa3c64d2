"""The tool-use loop of a turn (context owns it):

    model answers with tool_use -> one ActionProposed per call (actions.proposed, JetStream)
    -> action_executor decides / runs them concurrently -> one ActionResult per call
    -> all results of the iteration in -> the next model call with tool_result blocks
    -> ... until the model ends its turn.

Bounds: at most `tool_max_iterations` model calls per turn and `tool_token_budget` tokens
(input + output, summed over the turn's model calls). When a bound stops the loop, the calls of
that last answer are not proposed, the client gets a short notice as a final delta, and the
turn completes with stop_reason `max_iterations` / `token_budget`.

A pending approval does not hold the turn: its tool_result says it awaits the user's approval,
the model tells the user so, and the decision arrives later on the approval card's action.

Untrusted content: every tool result reaches the model quoted as data
(`switchboard_common.untrusted.quote`). The turn's taint (untrusted sources in its context) is
a set in the loop state: retrieved outside memory from the start, plus every executed tool whose
result carries outside text (`ToolInfo.outside_text`). Each proposal carries the taint as it
stood when the model made the call, and whether its arguments repeat the system prompt's
canary; the executor's policy decides on both.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from faststream.nats import NatsBroker

from switchboard_common.actions import (
    MAX_TAINT,
    ActionProposed,
    ActionResult,
    action_id_for,
    action_proposed_subject,
)
from switchboard_common.bus import publish_command, publish_fast
from switchboard_common.model import (
    ChatMessage,
    ContentBlock,
    ModelResult,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    model_msg_id,
    model_requested_subject,
)
from switchboard_common.skills import Autonomy
from switchboard_common.streams import ACTIONS, MODEL
from switchboard_common.tools import CATALOG, split_meta
from switchboard_common.turns import Delta, TurnAction, turn_events_subject
from switchboard_common.untrusted import quote, source_id
from switchboard_context.adapters.loop_state import LoopMeta, LoopState
from switchboard_context.domain import dates
from switchboard_context.domain.leaks import carries_prompt

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 4000
_OUTCOMES = {"executed": "ran", "failed": "ran", "approved": "ran", "needs_input": "asked",
             "refused": "refused"}
NOTICES = {
    "max_iterations": "\n\n(Stopped: this request needed more tool steps than one turn allows.)",
    "token_budget": "\n\n(Stopped: this request reached the token budget of one turn.)",
}


TAINTED_BY = "tainted_by"
"""ModelRequest.meta of iteration 0 (returned in its ModelResult.meta): the taint the loop
began with (JSON list). A turn that ends with that call ran no tool, so its taint is this and
is not read back from the loop state (`ToolLoop.taint`)."""


AUTONOMY = "autonomy"
"""ModelRequest.meta of iteration 0 when the model may call tools (returned in its
ModelResult.meta): the client's autonomy policy as the turn started (JSON), for the proposals
of the calls the model makes."""


@dataclass
class ToolLoop:
    broker: NatsBroker
    state: LoopState
    max_iterations: int
    token_budget: int

    async def taint(self, result: ModelResult) -> list[str]:
        """The turn's taint once it ended with `result`: what the loop began with when no
        tool ran (iteration 0, see `TAINTED_BY`), else the loop state's set."""
        if result.iteration == 0:
            return sorted(json.loads(result.meta.get(TAINTED_BY, "[]")))
        return await self.state.taint(result.org_id, result.turn_id)

    async def after_model(self, result: ModelResult) -> ModelResult | None:
        """None: the loop goes on (actions proposed). Otherwise the turn's final result, with
        the text and usage of all its model calls."""
        calls = result.stop_reason == "tool_use" and bool(result.tool_calls)
        if calls and (result.request is None
                      or (result.iteration == 0 and AUTONOMY not in result.meta)):
            # From a service older than this one (a rolling upgrade): nothing to go on from.
            log.error("turn %s: tool calls without the request they answer; the turn ends "
                      "without them", result.turn_id)
            result, calls = result.model_copy(update={"tool_calls": []}), False
        meta: LoopMeta | None
        if result.iteration == 0:
            # The first model call's totals are its own: nothing is read back.
            final = result if result.text.strip() else result.model_copy(update={"text": ""})
            if not calls:
                return final  # the turn ends with it (most do): the loop stores nothing
            meta = await self._begin(result)
        else:
            if (meta := await self.state.meta(result.org_id, result.turn_id)) is None:
                return result  # expired with its turn: nothing more to continue
            text, usage = await self.state.record_call(result)
            final = result.model_copy(update={"text": text, "usage": usage})
            if not calls:
                return final
        usage = final.usage
        spent = usage.input_tokens + usage.output_tokens + usage.cache_read_input_tokens + \
            usage.cache_creation_input_tokens
        limit = ("max_iterations" if result.iteration + 1 >= self.max_iterations else
                 "token_budget" if spent >= self.token_budget else None)
        if limit is not None:
            return await self._stop(final, limit)
        await self._propose(result, meta)
        return None

    async def _begin(self, result: ModelResult) -> LoopMeta:
        """The loop's state, once the first model call of a turn calls tools (turns that end
        without tools, most of them, store nothing), with that call recorded, in one round
        trip. A redelivered result writes the same state again."""
        assert result.request is not None  # checked by after_model
        meta = LoopMeta(Autonomy.model_validate_json(result.meta[AUTONOMY]),
                        [t.name for t in result.request.tools], result.request.canary)
        await self.state.start(result, meta, tuple(await self.taint(result)))
        return meta

    async def actions(self, result: ModelResult) -> list[TurnAction]:
        """What the turn did, for its terminal frame: every action of the iterations before
        this final one, with where it stands."""
        if result.iteration == 0:
            return []
        done = await self.state.results(result.org_id, result.turn_id, result.iteration)
        return [TurnAction(action_id=r.action_id, tool=r.tool, status=r.status,
                           outcome=_OUTCOMES.get(r.status, "proposed")) for r in done]

    async def _stop(self, final: ModelResult, reason: str) -> ModelResult:
        log.info("turn %s: tool loop stopped (%s) at iteration %d", final.turn_id, reason,
                 final.iteration)
        notice, seq = NOTICES[reason], final.last_seq + 1
        await publish_fast(self.broker.connection, turn_events_subject(final.org_id,
                                                                       final.turn_id),
                           Delta(org_id=final.org_id, turn_id=final.turn_id, seq=seq,
                                 text=notice))
        return final.model_copy(update={"text": final.text + notice, "last_seq": seq,
                                        "stop_reason": reason, "tool_calls": []})

    async def _propose(self, result: ModelResult, meta: LoopMeta) -> None:
        await self.state.save_calls(result.org_id, result.turn_id, result.iteration,
                                    result.tool_calls, result.text, result.last_seq)
        cause = result.meta.get("caused_by")
        # The triggering event first, so the bound (MAX_TAINT) never drops it.
        tainted_by = [*([cause] if cause else []), *(
            t for t in await self.taint(result) if t != cause)]
        zone = result.meta.get("timezone", "UTC")
        for call in result.tool_calls:
            arguments, confidence, rationale = split_meta(call.input)
            if (info := CATALOG.get(call.name)) is not None:
                arguments = dates.normalise_arguments(info.input, arguments, zone)
            canary_hit = carries_prompt(arguments, meta.canary)
            action_id = action_id_for(result.turn_id, result.iteration, call.id)
            proposal = ActionProposed.model_validate({
                "org_id": result.org_id, "action_id": action_id,
                "turn_id": result.turn_id, "user_id": result.user_id,
                "client_id": result.client_id, "conversation_id": result.conversation_id,
                "iteration": result.iteration, "tool_use_id": call.id, "tool": call.name,
                "arguments": arguments, "confidence": confidence, "rationale": rationale,
                "autonomy": meta.autonomy, "enabled_tools": meta.enabled,
                "tainted_by": tainted_by[:MAX_TAINT], "canary_hit": canary_hit,
                "caused_by": cause})
            if canary_hit:
                log.warning("turn %s: %s arguments repeat the system prompt canary",
                            result.turn_id, call.name)
            await publish_command(self.broker, proposal, action_proposed_subject(result.org_id),
                                  msg_id=f"action:{action_id}", stream=ACTIONS.name)
        log.debug("turn %s: %d tool call(s) proposed", result.turn_id, len(result.tool_calls))

    async def on_result(self, result: ActionResult) -> bool:
        """Collect one action's result; once every call of its iteration has one, request
        the next model call with the tool results. False: the result came after its turn's
        loop had moved on (a pending action decided later), so the loop did not use it."""
        if await self.state.meta(result.org_id, result.turn_id) is None:
            return False  # not a turn of ours any more (finished or expired)
        got = await self.state.add_result(result)
        saved = await self.state.calls(result.org_id, result.turn_id, result.iteration)
        if saved is None:
            return False  # calls are saved before they are proposed: not one of this loop
        calls, text, last_seq = saved
        if any(c.id not in got for c in calls):
            return True
        if await self.state.was_sent(result.org_id, result.turn_id, result.iteration):
            return False  # a later result for a pending action: the loop has moved on
        previous = await self.state.request(result.org_id, result.turn_id, result.iteration)
        if previous is None:
            return True
        await self.state.add_taint(result.org_id, result.turn_id, tuple(
            source_id("tool", c.name, got[c.id].action_id) for c in calls
            if got[c.id].status == "executed" and c.name in CATALOG
            and CATALOG[c.name].outside_text))
        assistant: list[ContentBlock] = [TextBlock(text=text)] if text else []
        assistant += [ToolUseBlock(id=c.id, name=c.name, input=c.input) for c in calls]
        results: list[ContentBlock] = [_tool_result(c.id, got[c.id]) for c in calls]
        request = previous.model_copy(update={
            "message_id": model_msg_id(result.turn_id, result.iteration + 1),
            "iteration": result.iteration + 1, "seq_base": last_seq,
            "messages": [*previous.messages, ChatMessage(role="assistant", content=assistant),
                         ChatMessage(role="user", content=results)]})
        await publish_command(self.broker, request, model_requested_subject(request.org_id),
                              msg_id=model_msg_id(request.turn_id, request.iteration),
                              stream=MODEL.name)
        await self.state.mark_sent(result.org_id, result.turn_id, result.iteration)
        return True


def _tool_result(call_id: str, result: ActionResult) -> ToolResultBlock:
    # Cut before quoting, so the cut can never drop the closing delimiter.
    # `code` types a refusal (`invalid_arguments`: the model may correct the call at once).
    typed = {"code": result.code} if result.code else {}
    body = json.dumps({"status": result.status, **typed, "message": result.message,
                       "output": result.output}, default=str, ensure_ascii=False)
    return ToolResultBlock(tool_use_id=call_id,
                           content=quote(body[:MAX_RESULT_CHARS], kind="tool_result",
                                         tool=result.tool or "unknown"),
                           is_error=result.is_error)
