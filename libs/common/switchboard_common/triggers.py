"""Triggers: which ingested events start a background turn for a client, and when.

Rules live in the skills (`Skills.triggers`, resolved through the four tiers like any list:
the last tier that sets `triggers` replaces the list whole, so a template's rules apply until
a client sets its own). Matching is deterministic and runs before any model call:

    for each rule, in order:  enabled
                              and event.source in rule.sources       (empty: any source)
                              and event kind   in rule.kinds         (empty: any kind)
                              and a sender     matches rule.senders  (empty: anyone)
                              and a keyword    in title or text      (empty: no keyword needed)
    -> the first rule that passes wins; none passes -> no turn, no model call.

An event's kind is the producer's `metadata["kind"]` ("received", "moved", "shared"); its
sender is `metadata["from"]` (or `"sender"`). Sender patterns are an exact address or a domain
(`@acme.com`), case-insensitive. Keywords are whole words or phrases, case-insensitive
("move" matches "Can we move it?" but not "remove"): the event's words are split once into a
set, so a one-word keyword is one set lookup and 100 rules stay far below 0.1 ms an event.

The matcher is pure and shared (the context service matches, the gateway's dry run answers
"would this event trigger?" with the same function). Events are untrusted content: a rule's
`instruction` is the platform's text in the turn, the event itself is quoted as data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from switchboard_common.memory import IngestEvent, SourceType

ACTIVITY_CONVERSATION = "activity"
"""The per-(user, client) conversation background turns run in: its turns are the activity
feed's summary lines ("New mail from Priya: proposed moving board prep to Friday 10:00")."""

MAX_TRIGGERS = 100
_Short = Annotated[str, Field(min_length=1, max_length=200)]


_WORD = re.compile(r"\w+")


def _lower(values: list[str]) -> list[str]:
    return [v.strip().lower() for v in values]


def _words(values: list[str]) -> list[str]:
    """Keywords as the words they match, joined by one space ("Board  Prep" -> "board prep")."""
    out = [" ".join(_WORD.findall(v.lower())) for v in values]
    if not all(out):
        raise ValueError("a keyword needs at least one letter or digit")
    return out


class TriggerRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")]
    sources: list[SourceType] = Field(default_factory=list, max_length=10)
    kinds: Annotated[list[_Short], Field(max_length=20), AfterValidator(_lower)] = Field(
        default_factory=list)
    senders: Annotated[list[_Short], Field(max_length=50), AfterValidator(_lower)] = Field(
        default_factory=list)
    keywords: Annotated[list[_Short], Field(max_length=50), AfterValidator(_words)] = Field(
        default_factory=list)
    instruction: str = Field(min_length=1, max_length=2000)
    """What the assistant should do with a matching event, e.g. "Propose a calendar change
    if the sender asks to move a meeting"."""
    tools: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=50)
    """The tools the background turn may use (within the enabled tools); None: all enabled."""
    enabled: bool = True

    # Derived once per rule object (resolved skills are cached per user and client), so
    # matching is set lookups, not list scans.
    @cached_property
    def exact_senders(self) -> frozenset[str]:
        return frozenset(s for s in self.senders if not s.startswith("@"))

    @cached_property
    def domains(self) -> tuple[str, ...]:
        return tuple(s for s in self.senders if s.startswith("@"))

    @cached_property
    def single_words(self) -> frozenset[str]:
        return frozenset(k for k in self.keywords if " " not in k)

    @cached_property
    def phrases(self) -> tuple[str, ...]:
        return tuple(k for k in self.keywords if " " in k)


class QuietHours(BaseModel):
    """Background turns that fall inside [start, end) in the client's time zone (the
    `timezone` skill) wait until `end` (a window may cross midnight: 22:00-07:00)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time
    end: time

    def resume_at(self, now: datetime, timezone: str) -> datetime | None:
        """When a trigger arriving at `now` may run; None: now."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        local = now.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None
        inside = (self.start <= clock < self.end if self.start < self.end
                  else clock >= self.start or clock < self.end)
        if not inside:
            return None
        end = local.replace(hour=self.end.hour, minute=self.end.minute,
                            second=self.end.second, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end


class EventFacts:
    """What rules look at, lower-cased once per event (not once per rule); the words are split
    only when a rule gets as far as its keywords."""

    __slots__ = ("_phrase_text", "_text", "_words", "kind", "sender", "source")

    def __init__(self, event: IngestEvent) -> None:
        meta = event.metadata
        self.source: str = event.source
        self.kind = str(meta.get("kind", "")).lower()
        self.sender = _address(str(meta.get("from") or meta.get("sender") or "").strip().lower())
        self._text = f"{event.title}\n{event.text}"
        self._words: frozenset[str] | None = None
        self._phrase_text = ""

    @property
    def words(self) -> frozenset[str]:
        if self._words is None:
            words = _WORD.findall(self._text.lower())
            self._words = frozenset(words)
            self._phrase_text = f" {' '.join(words)} "
        return self._words

    def has_any(self, rule: TriggerRule) -> bool:
        if not rule.single_words.isdisjoint(self.words):
            return True
        return any(f" {p} " in self._phrase_text for p in rule.phrases)


def _address(sender: str) -> str:
    # "Priya <priya@acme.com>": the address is what is between the angle brackets.
    if "<" in sender and sender.endswith(">"):
        return sender[sender.rindex("<") + 1:-1]
    return sender


def rule_matches(rule: TriggerRule, facts: EventFacts) -> bool:
    return (rule.enabled
            and (not rule.sources or facts.source in rule.sources)
            and (not rule.kinds or facts.kind in rule.kinds)
            and (not rule.senders or facts.sender in rule.exact_senders
                 or facts.sender.endswith(rule.domains))
            and (not rule.keywords or facts.has_any(rule)))


def first_match(rules: Sequence[TriggerRule], event: IngestEvent) -> TriggerRule | None:
    """The first rule the event passes, or None (then nothing calls a model)."""
    facts = EventFacts(event)
    for rule in rules:
        if rule_matches(rule, facts):
            return rule
    return None


def background_turn_id(org: str, client: str, event_id: str) -> str:
    """Deterministic: a redelivered or re-sent event names the same background turn."""
    return "bg" + hashlib.sha256(f"{org}:{client}:{event_id}".encode()).hexdigest()[:30]


# ---- dry run (REST) ----

class TriggerTest(BaseModel):
    """`POST /v1/clients/<c>/triggers/test`: would this event start a background turn?"""

    model_config = ConfigDict(extra="forbid")

    source: SourceType
    title: str = Field("", max_length=500)
    text: str = Field(min_length=1, max_length=20_000)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=20)


class TriggerTestResult(BaseModel):
    matched: bool
    rule: TriggerRule | None = None
    index: int | None = None
    """Position of the winning rule in the resolved list."""
    tier: str | None = None
    """The skill tier that set the resolved `triggers` list."""
    quiet_until: datetime | None = None
    """Inside the client's quiet hours: when the turn would start."""
