"""The autonomy policy (pure): may this tool call run alone, wait for the user's one-click
approval, or should the assistant ask for details instead?

    read-only tool (a lookup), in every mode               -> execute
    confidence missing, not a number, or outside 0..1     -> ask
    confidence <  require_approval                         -> ask
    suggest                                                -> propose
    assist,   risky tool                                   -> propose
    assist,   confidence >= auto_execute                   -> execute
    automate, confidence >= auto_execute                   -> execute
    otherwise (between the thresholds)                     -> propose

Then, whatever the mode and confidence, an `execute` becomes `propose` (an approval card) when
    the turn read untrusted content and the tool is risky or outbound   (taint)
    the arguments of an outbound tool carry the system prompt's canary  (leak attempt)
Untainted turns keep the table above unchanged.

Thresholds are per action type (`Autonomy.actions[tool]`), else the mode's default. The
decision records every input it used, and is stored with the action.
"""

from __future__ import annotations

import math

from switchboard_common.actions import PolicyDecision
from switchboard_common.skills import Autonomy


def decide(autonomy: Autonomy, tool: str, risky: bool, confidence: float | None, *,
           outbound: bool = False, tainted_by: list[str] | None = None,
           canary_hit: bool = False, read_only: bool = False) -> PolicyDecision:
    base = _by_autonomy(autonomy, tool, risky, confidence, read_only)
    guarded = base.model_copy(update={"outbound": outbound, "tainted_by": tainted_by or [],
                                      "canary_hit": canary_hit})
    if base.outcome != "execute":
        return guarded
    if canary_hit and outbound:
        return guarded.model_copy(update={
            "outcome": "propose",
            "reason": "the arguments carry the system prompt's canary (a leak attempt): "
                      "held for approval"})
    if tainted_by and (risky or outbound):
        kind = "sends data out" if outbound else "is risky"
        return guarded.model_copy(update={
            "outcome": "propose",
            "reason": f"untrusted content entered this turn ({', '.join(tainted_by[:5])}"
                      f"{', ...' if len(tainted_by) > 5 else ''}) and {tool} {kind}: "
                      "never executed alone"})
    return guarded


def _by_autonomy(autonomy: Autonomy, tool: str, risky: bool, confidence: float | None,
                 read_only: bool) -> PolicyDecision:
    limits = autonomy.thresholds(tool)
    mode = limits.mode or autonomy.mode

    def out(outcome: str, reason: str) -> PolicyDecision:
        return PolicyDecision.model_validate({
            "outcome": outcome, "reason": reason, "mode": mode, "risky": risky,
            "confidence": confidence, "thresholds": limits})

    if read_only:
        # Reads change nothing, so approving them only stalls the turn: "cancel my 3 pm"
        # must be able to find the event before it proposes the delete.
        return out("execute", "read-only tool: runs without approval in every mode")
    if confidence is None or not math.isfinite(confidence):
        return out("ask", "confidence missing")
    if not 0.0 <= confidence <= 1.0:
        return out("ask", "confidence out of range 0..1")
    if confidence < limits.require_approval:
        return out("ask", f"confidence below require_approval ({limits.require_approval:g})")
    if mode == "suggest":
        return out("propose", "suggest mode never executes alone")
    if mode == "assist" and risky:
        return out("propose", "risky tool in assist mode needs approval")
    if confidence >= limits.auto_execute:
        return out("execute", f"{mode} mode, confidence at or above auto_execute "
                              f"({limits.auto_execute:g})")
    return out("propose", f"confidence between require_approval ({limits.require_approval:g}) "
                          f"and auto_execute ({limits.auto_execute:g})")
