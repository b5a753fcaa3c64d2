import json
from pathlib import Path

import pytest

from switchboard_context.domain.complexity import estimate

REQUESTS = Path(__file__).resolve().parents[3] / "bench" / "data" / "requests.json"


@pytest.mark.parametrize("text", [
    "Schedule a meeting tomorrow at 2pm",
    "Add 'call the bank' to my tasks",
    "Cancel my 4pm",
    "Remind me to send the deck on Friday",
])
def test_short_commands_are_simple(text: str) -> None:
    assert estimate(text).level == "simple"


@pytest.mark.parametrize("text", [
    "What did we discuss about the Q3 budget last time?",
    "Compare the two vendor proposals and recommend one, then draft a reply to both.",
    "Why did the board push back on the hiring plan? Summarize the concerns.",
])
def test_analysis_and_memory_requests_are_complex(text: str) -> None:
    assert estimate(text).level == "complex"


def test_estimate_is_deterministic_and_explains_itself() -> None:
    a = estimate("Summarize what we discussed earlier and then plan next steps")
    b = estimate("Summarize what we discussed earlier and then plan next steps")
    assert a == b
    assert {"memory_reference", "analysis", "multi_step"} <= set(a.features)
    assert a.score == sum(a.features.values())


def test_the_kept_request_set_is_classified_as_labelled() -> None:
    """The benchmark's labelled set doubles as a regression test of the estimator."""
    rows = json.loads(REQUESTS.read_text())
    assert len(rows) >= 50
    wrong = [r["text"] for r in rows if estimate(r["text"]).level != r["level"]]
    assert len(wrong) <= len(rows) // 10, wrong
