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
("move" matches "Can we move it?" but not "remove").

Most rules are never looked at: a `TriggerMatcher` is built once per resolved rule list (the
resolved skills are cached until a tier changes, so the same rule objects come back and the
matcher is found by their identity). It buckets the enabled rules by the event's source and
kind; within a bucket, rules are indexed by their sender patterns and by each keyword's first
word. An event's candidates are the bucket's rules its sender passes that have no keywords,
or one of whose keywords has all its words among the event's words (the text is split into
words only when such a keyword rule is left); the lowest position among them wins, as the
first passing rule of a plain scan with `rule_matches` would (tests/unit/common/
test_triggers.py compares the two on random rules and events).

The matcher is pure and shared (the context service matches, the gateway's dry run answers
"would this event trigger?" with the same function). Events are untrusted content: a rule's
`instruction` is the platform's text in the turn, the event itself is quoted as data.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from functools import cached_property
from itertools import pairwise
from typing import Annotated, NamedTuple
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


class Phrase(NamedTuple):
    """A keyword of several words: present when its adjacent word pairs all are (one set
    test) and, for three words or more, the padded text is found among the event's words."""

    padded: str
    pairs: frozenset[tuple[str, str]]
    search: bool


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
    def phrases(self) -> tuple[Phrase, ...]:
        out = []
        for k in self.keywords:
            if " " in k:
                parts = k.split(" ")
                out.append(Phrase(f" {k} ", frozenset(pairwise(parts)), len(parts) > 2))
        return tuple(out)


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

    __slots__ = ("_pairs", "_phrase_text", "_text", "_words", "kind", "sender", "source")

    def __init__(self, event: IngestEvent) -> None:
        meta = event.metadata
        self.source: str = event.source
        self.kind = str(meta.get("kind", "")).lower()
        self.sender = _address(str(meta.get("from") or meta.get("sender") or "").strip().lower())
        self._text = f"{event.title}\n{event.text}"
        self._words: frozenset[str] | None = None
        self._pairs: frozenset[tuple[str, str]] = frozenset()
        self._phrase_text = ""

    @property
    def words(self) -> frozenset[str]:
        if self._words is None:
            words = _WORD.findall(self._text.lower())
            self._words = frozenset(words)
            self._pairs = frozenset(pairwise(words))
            self._phrase_text = f" {' '.join(words)} "
        return self._words

    def has_any(self, rule: TriggerRule) -> bool:
        """The plain definition (a whole-word search per phrase); `has_phrase` is the quick
        form the matcher uses."""
        if not rule.single_words.isdisjoint(self.words):  # also splits the phrase text
            return True
        return any(p.padded in self._phrase_text for p in rule.phrases)

    def has_phrase(self, phrase: Phrase) -> bool:
        """Call after `words`."""
        return phrase.pairs <= self._pairs and (not phrase.search
                                                or phrase.padded in self._phrase_text)


def _address(sender: str) -> str:
    # "Priya <priya@acme.com>": the address is what is between the angle brackets.
    if "<" in sender and sender.endswith(">"):
        return sender[sender.rindex("<") + 1:-1]
    return sender


def rule_matches(rule: TriggerRule, facts: EventFacts) -> bool:
    """The definition of a match, one rule at a time; `TriggerMatcher` must agree with it."""
    return (rule.enabled
            and (not rule.sources or facts.source in rule.sources)
            and (not rule.kinds or facts.kind in rule.kinds)
            and (not rule.senders or facts.sender in rule.exact_senders
                 or facts.sender.endswith(rule.domains))
            and (not rule.keywords or facts.has_any(rule)))


def _sender_keys(sender: str) -> list[str]:
    """The sender patterns an address passes: itself, and each `@...` suffix of it (a domain
    pattern matches exactly when it is one of those: `endswith` in rule_matches)."""
    return [sender, *(sender[i:] for i, c in enumerate(sender) if c == "@" and i)]


class _Bucket:
    """The enabled rules that accept one (source, kind), by position in the resolved list."""

    __slots__ = ("by_sender", "by_word", "index_words", "keyworded", "open_senders", "plain")

    def __init__(self, rules: Sequence[tuple[int, TriggerRule]]) -> None:
        self.plain = tuple(i for i, r in rules if not r.keywords)
        self.keyworded = frozenset(i for i, r in rules if r.keywords)
        self.open_senders = frozenset(i for i, r in rules if not r.senders)
        by_sender: dict[str, set[int]] = {}
        # first word of a keyword -> (rule, the phrase and its word pairs; None for a single
        # word, present whenever its index word is)
        by_word: dict[str, list[tuple[int, Phrase | None]]] = {}
        for i, r in rules:
            for pattern in r.senders:
                by_sender.setdefault(pattern, set()).add(i)
            for word in r.single_words:
                by_word.setdefault(word, []).append((i, None))
            for phrase in r.phrases:
                first = phrase.padded.split(" ", 2)[1]
                by_word.setdefault(first, []).append((i, phrase))
        self.by_sender = by_sender
        self.by_word = by_word
        self.index_words = frozenset(by_word)

    def sender_passes(self, sender: str) -> frozenset[int]:
        """The rules whose sender condition this sender passes."""
        return self.open_senders.union(*(self.by_sender[k] for k in _sender_keys(sender)
                                         if k in self.by_sender))

    def first_keyword_match(self, facts: EventFacts, allowed: frozenset[int], before: int
                            ) -> int:
        """The lowest position (< `before`) of an allowed rule one of whose keywords the
        event has; `before` when there is none."""
        for w in facts.words & self.index_words:
            for i, phrase in self.by_word[w]:
                if i < before and i in allowed and (
                        phrase is None or facts.has_phrase(phrase)):
                    before = i
        return before


class TriggerMatcher:
    """First-match-wins over one resolved rule list. Its buckets and indexes decide each
    condition exactly as `rule_matches` does, so no rule is checked one by one."""

    __slots__ = ("_buckets", "_enabled", "_kinds", "rules")

    def __init__(self, rules: Sequence[TriggerRule]) -> None:
        self.rules = tuple(rules)
        self._enabled = [(i, r) for i, r in enumerate(self.rules) if r.enabled]
        self._kinds = frozenset(k for _, r in self._enabled for k in r.kinds)
        # (source, kind) -> bucket, built on first use: a kind no rule names shares the
        # bucket of the rules that name none, so untrusted kinds cannot grow this.
        self._buckets: dict[tuple[str, str | None], _Bucket] = {}

    def _bucket(self, source: str, kind: str) -> _Bucket:
        key = (source, kind if kind in self._kinds else None)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket([
                (i, r) for i, r in self._enabled
                if (not r.sources or source in r.sources) and (not r.kinds or kind in r.kinds)])
        return bucket

    def match(self, event: IngestEvent) -> tuple[int, TriggerRule] | None:
        """The first rule the event passes and its position, or None (no model call)."""
        if not self._enabled:
            return None
        facts = EventFacts(event)
        bucket = self._bucket(facts.source, facts.kind)
        allowed = bucket.sender_passes(facts.sender)
        best = next((i for i in bucket.plain if i in allowed), len(self.rules))
        # The event's words are split only when a keyword rule is still in the running.
        if not bucket.keyworded.isdisjoint(allowed):
            best = bucket.first_keyword_match(facts, allowed, best)
        return (best, self.rules[best]) if best < len(self.rules) else None


_MATCHERS: OrderedDict[tuple[int, ...], TriggerMatcher] = OrderedDict()
_MATCHERS_KEPT = 1024


def matcher_for(rules: Sequence[TriggerRule]) -> TriggerMatcher:
    """The matcher of this rule list, built once. Keyed by the rules' identities: the rule
    objects are frozen and the matcher holds them, so an id in a kept key cannot be reused by
    another rule; re-resolved skills bring new objects and so a new matcher (least recently
    used ones are dropped beyond a bound, one per resolved (user, client) is the usual set)."""
    key = tuple(map(id, rules))
    matcher = _MATCHERS.get(key)
    if matcher is None:
        matcher = _MATCHERS[key] = TriggerMatcher(rules)
        if len(_MATCHERS) > _MATCHERS_KEPT:
            _MATCHERS.popitem(last=False)
    else:
        _MATCHERS.move_to_end(key)
    return matcher


def first_match(rules: Sequence[TriggerRule], event: IngestEvent) -> TriggerRule | None:
    """The first rule the event passes, or None (then nothing calls a model)."""
    found = matcher_for(rules).match(event)
    return found[1] if found is not None else None


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
