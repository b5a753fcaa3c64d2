"""Autonomy that learns: Beta-prior calibration and suggestions (pure)."""

from __future__ import annotations

from switchboard_common.learning import ToolHistory, calibrate, learning_of, suggest
from switchboard_common.skills import Autonomy


def history(*recent: str, tool: str = "calendar_create") -> ToolHistory:
    return ToolHistory.model_validate({"tool": tool, "counts": {}, "recent": list(recent)})


def test_no_history_keeps_the_models_confidence() -> None:
    assert calibrate(0.8, None) == 0.8
    assert calibrate(None, history("approved")) is None
    assert calibrate(1.5, history("approved")) == 1.5  # the policy asks; not ours to fix


def test_approvals_lift_and_rejections_lower_it() -> None:
    assert calibrate(0.8, history(*["approved"] * 20)) == round(28 / 30, 4)
    assert calibrate(0.8, history(*["rejected"] * 20)) == round(8 / 30, 4)
    edits = calibrate(0.8, history(*["edited"] * 20))
    assert edits is not None and edits < 0.8  # half success, half failure: toward 0.5


def test_unanimous_approvals_suggest_more_autonomy_for_that_tool_only() -> None:
    found = suggest(history(*["approved"] * 20), Autonomy(mode="suggest"), "Sarah")
    assert found is not None and found.direction == "more"
    assert "20 of the last 20" in found.text and "Sarah" in found.text
    patch = found.patch["autonomy"]
    assert patch == {"actions": {"calendar_create": {"mode": "automate", "auto_execute": 0.9,
                                                     "require_approval": 0.6}}}
    one_no = history(*["approved"] * 19, "rejected")
    assert suggest(one_no, Autonomy(mode="suggest"), "Sarah") is None
    assert suggest(history(*["approved"] * 5), Autonomy(), "Sarah") is None


def test_rejections_suggest_less_and_an_accepted_suggestion_stops_suggesting() -> None:
    automated = Autonomy.model_validate(
        {"mode": "suggest", "actions": {"calendar_create": {"mode": "automate"}}})
    assert suggest(history(*["approved"] * 20), automated, "Sarah") is None
    found = suggest(history(*["rejected"] * 5, "approved"), automated, "Sarah")
    assert found is not None and found.direction == "less"
    assert found.patch["autonomy"]["actions"]["calendar_create"]["mode"] == "suggest"
    assert suggest(history(*["rejected"] * 6), Autonomy(mode="suggest"), "Sarah") is None


def test_learning_view_shows_raw_to_calibrated() -> None:
    view = learning_of(history(*["approved"] * 10), Autonomy(), "Sarah")
    assert view.successes == 10 and view.failures == 0
    assert view.calibrated_at["0.8"] == round(18 / 20, 4)
    assert view.suggestion is not None
