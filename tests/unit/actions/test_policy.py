"""The autonomy policy, exhaustively: every mode x risky/non-risky x confidence zone, the
boundaries, missing and out-of-range confidence, and per-action thresholds."""

from __future__ import annotations

import itertools
import math

import pytest

from switchboard_action_executor.domain.policy import decide
from switchboard_common.skills import Autonomy, Thresholds

T = Thresholds(auto_execute=0.9, require_approval=0.6)
ZONES = {"low": 0.3, "at_require": 0.6, "middle": 0.75, "at_auto": 0.9, "high": 0.97}
EXPECTED = {
    # (mode, risky): outcome for zones low, at_require, middle, at_auto, high
    ("suggest", False): ("ask", "propose", "propose", "propose", "propose"),
    ("suggest", True): ("ask", "propose", "propose", "propose", "propose"),
    ("assist", False): ("ask", "propose", "propose", "execute", "execute"),
    ("assist", True): ("ask", "propose", "propose", "propose", "propose"),
    ("automate", False): ("ask", "propose", "propose", "execute", "execute"),
    ("automate", True): ("ask", "propose", "propose", "execute", "execute"),
}


@pytest.mark.parametrize(("mode", "risky", "zone"), list(itertools.product(
    ("suggest", "assist", "automate"), (False, True), ZONES)))
def test_every_mode_risk_and_zone(mode: str, risky: bool, zone: str) -> None:
    decision = decide(Autonomy(mode=mode, default=T), "calendar_create", risky, ZONES[zone])
    expected = EXPECTED[(mode, risky)][list(ZONES).index(zone)]
    assert decision.outcome == expected, decision.reason
    # The decision records its inputs.
    assert decision.mode == mode and decision.risky is risky
    assert decision.confidence == ZONES[zone] and decision.thresholds == T


@pytest.mark.parametrize("confidence", [None, -0.01, 1.01, 7.0, math.nan, math.inf])
@pytest.mark.parametrize("mode", ["suggest", "assist", "automate"])
def test_missing_or_out_of_range_confidence_asks(confidence: float | None, mode: str) -> None:
    decision = decide(Autonomy(mode=mode), "task_add", False, confidence)
    assert decision.outcome == "ask"
    assert "confidence" in decision.reason


def test_per_action_thresholds_override_the_default() -> None:
    autonomy = Autonomy(mode="automate", default=T, actions={
        "task_add": Thresholds(auto_execute=0.5, require_approval=0.2)})
    assert decide(autonomy, "task_add", False, 0.55).outcome == "execute"
    assert decide(autonomy, "task_add", False, 0.3).outcome == "propose"
    assert decide(autonomy, "calendar_create", False, 0.55).outcome == "ask"
    assert decide(autonomy, "task_add", False, 0.55).thresholds.auto_execute == 0.5


def test_edges_of_the_unit_interval() -> None:
    automate = Autonomy(mode="automate", default=Thresholds(auto_execute=1.0,
                                                            require_approval=0.0))
    assert decide(automate, "x", False, 1.0).outcome == "execute"
    assert decide(automate, "x", False, 0.0).outcome == "propose"


@pytest.mark.parametrize("mode", ["suggest", "assist", "automate"])
@pytest.mark.parametrize(("risky", "outbound"), [(True, False), (False, True), (True, True)])
def test_a_tainted_turn_never_runs_a_risky_or_outbound_tool_alone(
        mode: str, risky: bool, outbound: bool) -> None:
    taint = ["memory:email:evt-1", "tool:calendar_list:a1"]
    decision = decide(Autonomy(mode=mode, default=T), "email_send", risky, 1.0,
                      outbound=outbound, tainted_by=taint)
    assert decision.outcome == "propose"
    assert decision.tainted_by == taint
    if mode == "automate":
        assert "memory:email:evt-1" in decision.reason


def test_a_tainted_turn_keeps_the_policy_for_plain_tools_and_asks_stay_asks() -> None:
    auto = Autonomy(mode="automate", default=T)
    assert decide(auto, "task_add", False, 1.0, tainted_by=["memory:email:e"]).outcome == \
        "execute"
    assert decide(auto, "email_send", True, 0.2, outbound=True,
                  tainted_by=["memory:email:e"]).outcome == "ask"


def test_an_untainted_turn_keeps_todays_policy() -> None:
    auto = Autonomy(mode="automate", default=T)
    assert decide(auto, "email_send", True, 0.95, outbound=True).outcome == "execute"


def test_the_canary_in_outbound_arguments_holds_the_call() -> None:
    decision = decide(Autonomy(mode="automate", default=T), "email_send", True, 1.0,
                      outbound=True, canary_hit=True)
    assert decision.outcome == "propose" and "canary" in decision.reason


@pytest.mark.parametrize("mode", ["suggest", "assist", "automate"])
@pytest.mark.parametrize("confidence", [None, 0.1, 0.95])
def test_read_only_tools_run_alone_in_every_mode(mode: str, confidence: float | None) -> None:
    decision = decide(Autonomy(mode=mode, default=T), "calendar_list", False, confidence,
                      read_only=True)
    assert decision.outcome == "execute" and "read-only" in decision.reason


def test_the_catalogue_marks_lookups_read_only() -> None:
    from switchboard_common.tools import CATALOG

    assert {n for n, t in CATALOG.items() if t.read_only} == {
        "calendar_list", "task_list", "memory_search"}


def test_a_tools_own_mode_overrides_the_autonomy_mode_for_that_tool_only() -> None:
    autonomy = Autonomy.model_validate(
        {"mode": "suggest", "actions": {"calendar_create": {"mode": "automate"}}})
    assert decide(autonomy, "calendar_create", False, 0.95).outcome == "execute"
    assert decide(autonomy, "task_add", False, 0.95).outcome == "propose"
    # Taint still holds an outbound call for approval, whatever the tool's mode.
    tainted = decide(autonomy, "calendar_create", False, 0.95, outbound=True,
                     tainted_by=["event:email:m1"])
    assert tainted.outcome == "propose"
