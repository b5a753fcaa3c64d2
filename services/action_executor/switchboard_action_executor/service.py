"""The executor's use cases: decide on a proposal, decide for the user, execute, expire.

Exactly-once effects. An action's id is deterministic (turn, iteration, tool_use_id), its
record is created once (SET NX), and execution runs under a per-action lock:
  1. stored effect?     -> done: reuse it (a redelivery, a second decider, a resumed run);
  2. mark the intent    -> remembers that an attempt began (tools that cannot look up their
                           own effect refuse to repeat one that may have happened);
  3. run the tool       -> transient failures retried here with backoff (the one layer);
  4. store the effect   -> the idempotency key, stored *before* the proposal is acked;
  5. record + events    -> record `executed`, audit, ActionResult for the loop, frame.
A crash anywhere before 4 redelivers the proposal (or the sweeper resumes an approved action)
and the tool's own key (CalDAV UID, task id) finds the earlier effect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from datetime import timedelta
from typing import Any

from faststream.nats import NatsBroker
from pydantic import ValidationError

from switchboard_action_executor.adapters.ratelimit import RateLimiter
from switchboard_action_executor.domain import policy
from switchboard_action_executor.domain.redact import for_audit
from switchboard_action_executor.domain.registry import (
    Registry,
    Tool,
    ToolContext,
    ToolError,
    TransientToolError,
    argument_problems,
)
from switchboard_action_executor.settings import Settings
from switchboard_common.action_store import ActionStore
from switchboard_common.actions import (
    ActionPending,
    ActionProposed,
    ActionRecord,
    ActionResultFrame,
    AuditEntry,
    DecideAction,
    DecideReply,
    Decision,
    Undo,
    UndoAction,
    action_results_subject,
    agency_subject,
    describe,
)
from switchboard_common.bus import publish_command, publish_fast
from switchboard_common.envelope import utcnow
from switchboard_common.errors import ErrorCode
from switchboard_common.learning import LearningStore, Outcome, ToolHistory, calibrate
from switchboard_common.metrics import APPROVALS
from switchboard_common.streams import ACTIONS
from switchboard_common.triggers import ACTIVITY_CONVERSATION
from switchboard_common.turns import turn_events_subject

log = logging.getLogger(__name__)



class ActionService:
    def __init__(self, settings: Settings, store: ActionStore, registry: Registry,
                 limiter: RateLimiter, broker: NatsBroker,
                 learning: LearningStore | None = None) -> None:
        self._learning = learning
        self._s = settings
        self._store = store
        self._registry = registry
        self._limiter = limiter
        self._broker = broker

    # ---- proposals ----
    async def on_proposed(self, p: ActionProposed) -> ActionRecord:
        existing = await self._store.get(p.org_id, p.action_id)
        if existing is not None:  # redelivered: continue from where it stands
            return await self._continue(existing)
        history = (await self._learning.history(p.org_id, p.client_id, p.tool)
                   if self._learning is not None else None)
        record = await self._store.create(self._new_record(p, history))
        if record.status == "approved":  # the policy let it run alone
            await self._learn(record, "alone")
        if record.policy is not None and record.policy.canary_hit:
            await self._audit(record, "flagged", "policy", {
                "reason": "system prompt canary in the arguments",
                "tainted_by": record.tainted_by})
        if record.status != "refused":
            await self._audit(record, "proposed", "policy", {
                "policy": record.policy.model_dump(mode="json") if record.policy else None,
                "arguments": for_audit(record.arguments), "rationale": record.rationale})
        else:
            await self._audit(record, "failed", "system", {"error": record.error})
        return await self._continue(record)

    def _new_record(self, p: ActionProposed, history: ToolHistory | None = None
                    ) -> ActionRecord:
        base: dict[str, Any] = {
            "action_id": p.action_id, "org_id": p.org_id, "turn_id": p.turn_id,
            "user_id": p.user_id, "client_id": p.client_id,
            "conversation_id": p.conversation_id, "iteration": p.iteration,
            "tool_use_id": p.tool_use_id, "tool": p.tool, "arguments": p.arguments,
            "confidence": p.confidence, "rationale": p.rationale, "caused_by": p.caused_by}
        tool = self._registry.get(p.tool)
        if tool is None or p.tool not in p.enabled_tools:
            return ActionRecord(**base, status="refused",
                                error=f"the tool {p.tool} is not enabled for this client")
        try:
            args = tool.parse(p.arguments).model_dump(mode="json", exclude_unset=False)
        except ValidationError as exc:
            return ActionRecord(**base, status="refused", risky=tool.risky,
                                error=f"invalid arguments: {argument_problems(exc)}",
                                error_code=ErrorCode.INVALID_ARGUMENTS)
        # The policy decides on the confidence calibrated by this client's decisions on
        # this tool; the model's own stays on the record and the card.
        decision = policy.decide(p.autonomy, p.tool, tool.risky,
                                 calibrate(p.confidence, history),
                                 outbound=tool.info.outbound, tainted_by=p.tainted_by,
                                 canary_hit=p.canary_hit, read_only=tool.info.read_only)
        decision = decision.model_copy(update={"raw_confidence": p.confidence})
        status = {"execute": "approved", "propose": "pending", "ask": "needs_input"}
        expires = (utcnow() + timedelta(seconds=self._s.approval_ttl_s)
                   if decision.outcome == "propose" else None)
        return ActionRecord(
            **{**base, "arguments": args}, risky=tool.risky, policy=decision,
            tainted_by=p.tainted_by,
            status=status[decision.outcome], expires_at=expires,
            decision=Decision(approve=True, by="policy") if decision.outcome == "execute"
            else None)

    async def _continue(self, record: ActionRecord) -> ActionRecord:
        if record.status == "approved":
            return await self.execute(record)
        if record.status == "pending":
            await self._publish_frame(record, ActionPending(
                org_id=record.org_id, turn_id=record.turn_id, action_id=record.action_id,
                client_id=record.client_id, tool=record.tool, arguments=record.arguments,
                confidence=record.confidence, rationale=record.rationale, risky=record.risky,
                expires_at=record.expires_at, tainted_by=record.tainted_by,
                reason=record.policy.reason if record.policy else "",
                calibrated_confidence=record.policy.confidence if record.policy else None,
                caused_by=record.caused_by))
        await self._announce(record)
        return record

    # ---- decisions (the user's) ----
    async def decide(self, d: DecideAction) -> DecideReply:
        record = await self._store.get(d.org_id, d.action_id)
        if record is None:
            return DecideReply(ok=False, code=ErrorCode.UNKNOWN_ACTION,
                               message="no such action")
        if record.status == "pending" and record.expires_at and record.expires_at <= utcnow():
            record = await self.expire(record) or record
        if record.status != "pending":
            return self._refusal(record.status, record)
        arguments, edited = record.arguments, False
        if d.approve and d.arguments is not None:
            tool = self._registry.get(record.tool)
            assert tool is not None  # a pending action's tool was known when proposed
            try:
                arguments = tool.parse(d.arguments).model_dump(mode="json")
            except ValidationError as exc:
                return DecideReply(ok=False, code=ErrorCode.INVALID_ARGUMENTS,
                                   message=f"invalid arguments: {argument_problems(exc)}",
                                   record=record)
            edited = arguments != record.arguments
        decided = record.model_copy(update={
            "status": "approved" if d.approve else "rejected", "arguments": arguments,
            "decision": Decision(approve=d.approve, by=d.user_id, edited=edited,
                                 reason=d.reason)})
        found = await self._store.transition(decided, ("pending",))
        if found is not None:
            return self._refusal(found, await self._store.get(d.org_id, d.action_id))
        APPROVALS.labels("approved" if d.approve else "rejected").inc()
        await self._learn(decided, "edited" if edited else "approved" if d.approve
                          else "rejected")
        await self._audit(decided, "decided", d.user_id, {
            "approve": d.approve, "edited": edited, "reason": d.reason,
            "policy": record.policy.model_dump(mode="json") if record.policy else None,
            **({"arguments": for_audit(arguments)} if edited else {})})
        if not d.approve:
            await self._announce(decided)
            return DecideReply(ok=True, record=decided)
        return DecideReply(ok=True, record=await self.execute(decided))

    # ---- undo (the user's) ----
    async def undo(self, u: UndoAction) -> DecideReply:
        """Revert an executed action with its tool's compensating operation, then mark it
        `undone` (compare-and-set on `executed`, so two undos record one). The compensation
        runs first and is safe to repeat: a failure leaves the action `executed` and the user
        may try again; the learning history counts the action as undone instead of what it
        was (ran alone, approved, approved with edits)."""
        record = await self._store.get(u.org_id, u.action_id)
        if record is None:
            return DecideReply(ok=False, code=ErrorCode.UNKNOWN_ACTION,
                               message="no such action")
        tool = self._registry.get(record.tool)
        if record.status != "executed" or tool is None or tool.undo is None:
            why = (f"it is {record.status}, not executed" if record.status != "executed"
                   else f"{record.tool} has no compensating operation (its effect cannot be "
                        "taken back)")
            return DecideReply(ok=False, code=ErrorCode.ACTION_NOT_UNDOABLE, record=record,
                               message=f"this action cannot be undone: {why}")
        ctx = ToolContext(org=record.org_id, client_id=record.client_id, user_id=u.user_id,
                          action_id=record.action_id, resumed=True)
        try:
            async with asyncio.timeout(tool.timeout_s):
                output = await tool.undo(ctx, record.arguments)
        except (ToolError, TimeoutError) as exc:
            return DecideReply(ok=False, code=ErrorCode.UNAVAILABLE, record=record,
                               message=f"undoing {record.tool} failed ({exc or 'timeout'}); "
                                       "nothing changed, try again")
        undone = record.model_copy(update={
            "status": "undone", "undo": Undo(by=u.user_id, reason=u.reason, output=output)})
        if (found := await self._store.transition(undone, ("executed",))) is not None:
            return DecideReply(ok=False, code=ErrorCode.ACTION_NOT_UNDOABLE,
                               record=await self._store.get(u.org_id, u.action_id),
                               message=f"this action cannot be undone: it is {found}")
        if self._learning is not None:
            # What on_proposed / decide recorded for this action: the policy "decides"
            # the actions that ran alone.
            was: Outcome = ("alone" if record.decision is None or record.decision.by == "policy"
                            else "edited" if record.decision.edited else "approved")
            await self._learning.revise(record.org_id, record.client_id, record.tool, was,
                                        "undone")
        await self._audit(undone, "undone", u.user_id, {"reason": u.reason,
                                                         "output": for_audit(output)})
        await self._announce(undone)
        return DecideReply(ok=True, record=undone)

    @staticmethod
    def _refusal(status: str, record: ActionRecord | None) -> DecideReply:
        if status == "":
            return DecideReply(ok=False, code=ErrorCode.UNKNOWN_ACTION, message="no such action")
        if status == "expired":
            return DecideReply(ok=False, code=ErrorCode.ACTION_EXPIRED, record=record,
                               message="this action expired before anyone decided on it")
        return DecideReply(ok=False, code=ErrorCode.ACTION_ALREADY_DECIDED, record=record,
                           message=f"this action was already decided (it is {status})")

    async def expire(self, record: ActionRecord) -> ActionRecord | None:
        expired = record.model_copy(update={"status": "expired"})
        if await self._store.transition(expired, ("pending",)) is not None:
            await self._store.forget_expiry(record.org_id, record.action_id)
            return None
        APPROVALS.labels("expired").inc()
        await self._learn(expired, "expired")
        await self._audit(expired, "expired", "system", {})
        await self._announce(expired)
        return expired

    async def sweep(self) -> int:
        """Expire pending actions past their time (any replica; the transition is atomic), and
        run again approved actions whose executor died (the lock and the stored effect keep
        that single)."""
        done = 0
        for org, action_id in await self._store.stalled(time.time() - self._s.resume_after_s):
            record = await self._store.get(org, action_id)
            if record is None or record.status != "approved":
                await self._store.forget_running(org, action_id)
                continue
            try:
                await self.execute(record)
            except ActionBusy:
                continue
            done += 1
        for org, action_id in await self._store.due_for_expiry(time.time()):
            record = await self._store.get(org, action_id)
            if record is None or record.status != "pending":
                await self._store.forget_expiry(org, action_id)
                continue
            if await self.expire(record) is not None:
                done += 1
        return done

    # ---- execution ----
    async def execute(self, record: ActionRecord) -> ActionRecord:
        org, action_id = record.org_id, record.action_id
        tool = self._registry.get(record.tool)
        assert tool is not None
        if not await self._store.lock(org, action_id, self._s.ack_wait_s):
            # Another worker runs it right now; its outcome will be announced by it.
            raise ActionBusy(action_id)
        try:
            stored = await self._store.effect(org, action_id)
            started = time.perf_counter()
            if stored is None:
                resumed = not await self._store.mark_intent(org, action_id,
                                                            self._s.effect_ttl_s)
                stored = await self._run(tool, record, resumed)
                self._crash_point("after_effect")
                stored["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
                await self._store.save_effect(org, action_id, stored, self._s.effect_ttl_s)
            final = record.model_copy(update={
                "status": "executed" if stored.get("ok") else "failed",
                "output": stored.get("output", {}), "error": stored.get("error"),
                "duration_ms": stored.get("duration_ms"), "executed_at": utcnow()})
            if await self._store.transition(final, ("approved",)) is None:
                await self._audit(final, "executed" if final.status == "executed" else "failed",
                                  record.decision.by if record.decision else "policy", {
                                      "arguments": for_audit(record.arguments),
                                      "output": for_audit(final.output), "error": final.error,
                                      "duration_ms": final.duration_ms})
            else:  # finished by an earlier run: announce what is stored
                final = await self._store.get(org, action_id) or final
            log.info("action %s %s: %s in %sms", action_id, record.tool, final.status,
                     final.duration_ms)
            await self._announce(final)
            self._crash_point("before_ack")
            return final
        finally:
            await self._store.unlock(org, action_id)

    async def _run(self, tool: Tool, record: ActionRecord, resumed: bool) -> dict[str, Any]:
        """Outcome as stored with the effect: {"ok", "output"} or {"ok": False, "error"}."""
        per_minute = tool.rate_per_minute or self._s.rate_limit_per_minute
        if not await self._limiter.allow(record.org_id, record.client_id, tool.name,
                                         per_minute):
            return {"ok": False, "error": f"rate limit: at most {per_minute} {tool.name} "
                                          "calls per minute for this client; try later"}
        ctx = ToolContext(org=record.org_id, client_id=record.client_id,
                          user_id=record.user_id, action_id=record.action_id, resumed=resumed)
        args = tool.parse(record.arguments)
        delay = self._s.retry_backoff_s
        for attempt in range(1, self._s.tool_attempts + 1):
            try:
                async with asyncio.timeout(tool.timeout_s):
                    return {"ok": True, "output": await tool.fn(ctx, args)}
            except TransientToolError as exc:
                error = str(exc)
            except TimeoutError:
                if not tool.idempotent:  # it may have happened: never twice
                    return {"ok": False, "error": f"{tool.name} timed out; it may or may not "
                                                  "have happened, so it was not repeated"}
                error = f"{tool.name} timed out after {tool.timeout_s:g}s"
                ctx = ToolContext(**{**ctx.__dict__, "resumed": True})
            except ToolError as exc:
                return {"ok": False, "error": str(exc)}
            except (ValueError, TypeError) as exc:
                # A value the schema let through but the backend refused: its message may
                # quote the value (an address, a phone number), so only the type is kept.
                log.warning("action %s %s: the backend refused an argument (%s)",
                            record.action_id, tool.name, type(exc).__name__)
                return {"ok": False, "error": f"{tool.name} refused one of its arguments"}
            if attempt < self._s.tool_attempts:
                log.warning("action %s %s: attempt %d failed (%s); retrying", record.action_id,
                            tool.name, attempt, error)
                await asyncio.sleep(delay)
                delay *= 2
        return {"ok": False, "error": f"{error} (after {self._s.tool_attempts} attempts)"}

    def _crash_point(self, where: str) -> None:
        if self._s.test_crash_point == where:
            log.warning("test crash point %s reached: killing this process", where)
            os.kill(os.getpid(), signal.SIGKILL)

    # ---- outputs ----
    async def _announce(self, record: ActionRecord) -> None:
        """The result for the tool-use loop (JetStream, deduplicated per status) and, for the
        user, an `action_result` frame (not for `pending`: that one is the approval card)."""
        message = describe(record)
        # The user's frame first: the result lets the loop go on, and the turn could end
        # (and the socket stop following it) before a frame sent after it arrives.
        if record.status != "pending":
            await self._publish_frame(record, ActionResultFrame(
                org_id=record.org_id, turn_id=record.turn_id, action_id=record.action_id,
                client_id=record.client_id, tool=record.tool, status=record.status,
                message=message, output=record.output, code=record.error_code,
                arguments=record.arguments))
        await publish_command(self._broker, record.result(message),
                              action_results_subject(record.org_id),
                              msg_id=f"action-result:{record.action_id}:{record.status}",
                              stream=ACTIONS.name)

    async def _publish_frame(self, record: ActionRecord, frame: Any) -> None:
        await publish_fast(self._broker.connection,
                           turn_events_subject(record.org_id, record.turn_id), frame)
        if record.conversation_id == ACTIVITY_CONVERSATION:
            # A background turn: no socket follows it, its owner's sockets all hear this.
            await publish_fast(self._broker.connection,
                               agency_subject(record.org_id, record.user_id), frame)

    async def _learn(self, record: ActionRecord, outcome: Outcome) -> None:
        if self._learning is not None:
            await self._learning.record(record.org_id, record.client_id, record.tool, outcome)

    async def _audit(self, record: ActionRecord, kind: str, actor: str,
                     details: dict[str, Any]) -> None:
        await self._store.audit(record.org_id, record.client_id, AuditEntry.model_validate({
            "kind": kind, "action_id": record.action_id, "tool": record.tool, "actor": actor,
            "details": {"status": record.status, "turn_id": record.turn_id,
                        "user_id": record.user_id, **details}}))


class ActionBusy(Exception):
    """The action is being executed by another worker right now."""

