"""Personal data out of logs and traces: one function every log record and every exported span
goes through (telemetry.py wires it into the JSON log formatter and the span exporter).

What it removes:
- e-mail addresses, phone numbers and payment card numbers anywhere in a string (patterns
  below; card numbers must also pass the Luhn check, so ids and timestamps survive);
- the whole value of fields that carry message or mail bodies (`SENSITIVE_KEYS`), whatever
  they contain: a body can hold anything, so no pattern list could clean it.

Code should not log content in the first place; this is the net under it (a library's
exception message, an argument echoed in a traceback)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

SENSITIVE_KEYS = frozenset({
    "text", "body", "content", "message_body", "mail_body", "html", "prompt", "system",
    "messages", "user_text", "assistant_text", "arguments", "input", "output", "summary",
    "gen_ai.prompt", "gen_ai.completion", "gen_ai.input.messages", "gen_ai.output.messages",
    "gen_ai.system_instructions", "messaging.message.body",
})
"""Keys (of log fields and span attributes) whose values are bodies, dropped whole."""

PLATFORM_KEYS = frozenset({
    "messaging.system", "messaging.destination.name", "messaging.destination_publish.name",
    "messaging.consumer.group.name", "messaging.message.conversation_id",
    "messaging.operation", "messaging.operation.name", "messaging.operation.type",
    "switchboard.org_id", "switchboard.turn_id", "switchboard.client_id",
    "switchboard.outcome", "switchboard.purpose", "gen_ai.operation.name",
    "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model", "error.type",
})
"""Span attributes whose values the platform builds itself: subjects and their tokens (ids
checked by `envelope.Id`), consumer names, correlation ids, model and outcome names from code.
No person's text can reach them, so span export does not look into them (every span carries
several, and an id with a digit in it sent each through all three patterns). Not in the
list: `messaging.message.id`, which carries a client's idempotency key or a producer's own
event id ("msg.4711@example.com")."""

EMAIL_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
"""An e-mail address in free text (also what the local model's grounding looks for)."""
# International (+CC ...) or North-American style numbers with separators; a bare run of
# digits is not taken for a phone number (it is more often an id, a count or a timestamp).
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){2,4}"
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])")
_CARD = re.compile(r"(?<![\w])(?:\d[ -]?){12,18}\d(?![\w])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[card]" if _luhn(digits) else match.group()


_DIGIT = re.compile(r"\d")


def redact(text: str) -> str:
    """`text` with e-mail addresses, card numbers and phone numbers replaced."""
    # Each pattern runs only where it could match: the e-mail pattern tries every start
    # position of a string without '@' (an id with a digit spent most of its time there).
    if "@" in text:
        text = EMAIL_ADDRESS.sub("[email]", text)
    if _DIGIT.search(text) is None:
        return text  # the common case on the hot path: nothing more to look for
    text = _CARD.sub(_card, text)
    return _PHONE.sub("[phone]", text)


def redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Span (or span event) attributes cleaned as `redact_value` cleans each one, except
    `PLATFORM_KEYS`; None when nothing had to change, so the exporter passes the common span
    on as it is instead of rebuilding it."""
    cleaned: dict[str, Any] | None = None
    for key, value in (attributes or {}).items():
        if key in PLATFORM_KEYS:
            continue
        new = redact_value(key, value)
        if new is not value and new != value:
            cleaned = cleaned if cleaned is not None else dict(attributes or {})
            cleaned[key] = new
    return cleaned


def redact_value(key: str, value: Any) -> Any:
    """A log field or span attribute value, cleaned: bodies dropped, strings redacted,
    containers cleaned item by item."""
    if key.lower() in SENSITIVE_KEYS and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(key, v) for v in value)
    return value
