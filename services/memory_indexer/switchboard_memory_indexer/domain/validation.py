"""Parse bus bytes into a contract model, or explain (without echoing content) why not."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from switchboard_memory_indexer.domain.errors import InvalidEvent

M = TypeVar("M", bound=BaseModel)
_MAX_DETAIL = 500


def parse(model: type[M], data: bytes) -> M:
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        # Field paths and error types only: the values may be personal data.
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['type']}"
                           for e in exc.errors(include_input=False, include_url=False))
        raise InvalidEvent(f"invalid {model.__name__}", detail[:_MAX_DETAIL]) from exc


def check_subject(subject: str, org: str, client: str | None = None) -> None:
    """The subject a message came on must name the org (and client) its body claims, so a
    producer allowed to publish for one org cannot write into another's memory."""
    tokens = subject.split(".")
    expected_org = tokens[2] if len(tokens) > 2 else ""
    if expected_org != org:
        raise InvalidEvent("subject/body org mismatch", "org_id: subject_mismatch")
    if client is not None and (len(tokens) < 4 or tokens[3] != client):
        raise InvalidEvent("subject/body client mismatch", "client_id: subject_mismatch")
