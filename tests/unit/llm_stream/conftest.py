from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from switchboard_common.envelope import utcnow
from switchboard_common.model import ChatMessage, ModelRequest
from tests.fakes.fake_anthropic import FakeAnthropic


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def model_request(text: str, *, system: str = "You are a test assistant.",
                  max_tokens: int = 64, **kw: object) -> ModelRequest:
    return ModelRequest.model_validate({
        "org_id": "org1", "turn_id": "t1", "user_id": "u1", "client_id": "c1",
        "conversation_id": "main", "system": system,
        "messages": [ChatMessage(role="user", content=text)], "max_tokens": max_tokens,
        "deadline_at": utcnow() + timedelta(seconds=30), **kw})
