"""Trigger rules: deterministic matching (first match wins), skills tiers, quiet hours."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time
from typing import Any

import pytest
from pydantic import ValidationError

from switchboard_common.memory import IngestEvent
from switchboard_common.skills import SYSTEM_DEFAULTS, Tier, resolve
from switchboard_common.triggers import (
    EventFacts,
    QuietHours,
    TriggerMatcher,
    TriggerRule,
    background_turn_id,
    first_match,
    matcher_for,
    rule_matches,
)


def event(text: str = "Can we move Thursday's board prep?", source: str = "email",
          **meta: Any) -> IngestEvent:
    return IngestEvent.model_validate({
        "org_id": "o1", "event_id": "m-1", "client_id": "sarah", "source": source,
        "title": "Board prep", "text": text,
        "metadata": {"kind": "received", "from": "Priya <Priya@Acme.com>", **meta}})


def rule(name: str, **kw: Any) -> TriggerRule:
    return TriggerRule.model_validate({"name": name, "instruction": "propose", **kw})


def test_every_condition_must_hold() -> None:
    assert first_match([rule("r", sources=["email"], kinds=["Received"],
                             senders=["@acme.com"], keywords=["MOVE"])], event())
    assert first_match([rule("r", sources=["calendar"])], event()) is None
    assert first_match([rule("r", kinds=["sent"])], event()) is None
    assert first_match([rule("r", senders=["@other.com"])], event()) is None
    assert first_match([rule("r", keywords=["invoice"])], event()) is None


def test_sender_is_an_address_or_a_domain_not_a_substring() -> None:
    assert first_match([rule("r", senders=["priya@acme.com"])], event())
    assert first_match([rule("r", senders=["@cme.com"])], event()) is None
    assert first_match([rule("r", senders=["acme.com"])], event()) is None


def test_keywords_are_words_or_phrases() -> None:
    assert first_match([rule("r", keywords=["Board  Prep"])], event())
    assert first_match([rule("r", keywords=["thursday"])], event())
    assert first_match([rule("r", keywords=["ove"])], event()) is None
    assert first_match([rule("r", keywords=["prep board"])], event()) is None


def test_first_matching_rule_wins_and_disabled_rules_are_skipped() -> None:
    rules = [rule("off", enabled=False), rule("mail", sources=["email"]), rule("any")]
    chosen = first_match(rules, event())
    assert chosen is not None and chosen.name == "mail"
    assert first_match([], event()) is None


def test_rules_resolve_through_the_tiers_with_provenance() -> None:
    template = {"triggers": [{"name": "investors", "senders": ["@acme.com"],
                              "instruction": "react"}]}
    resolved = resolve({Tier.SYSTEM: SYSTEM_DEFAULTS, Tier.TEMPLATE: template})
    assert [r.name for r in resolved.skills.triggers] == ["investors"]
    assert resolved.provenance["triggers"] == Tier.TEMPLATE
    own = resolve({Tier.SYSTEM: SYSTEM_DEFAULTS, Tier.TEMPLATE: template,
                   Tier.CLIENT: {"triggers": []}})
    assert own.skills.triggers == [] and own.provenance["triggers"] == Tier.CLIENT


def test_rules_are_validated() -> None:
    with pytest.raises(ValidationError):
        rule("bad name!")
    with pytest.raises(ValidationError):
        rule("r", sources=["fax"])
    with pytest.raises(ValidationError):
        rule("r", keywords=["!!"])
    with pytest.raises(ValidationError):
        TriggerRule.model_validate({"name": "r", "instruction": "x", "surprise": 1})


def test_quiet_hours_across_midnight_in_the_clients_zone() -> None:
    quiet = QuietHours(start=time(22), end=time(7))
    # 23:30 in Berlin (UTC+1 in winter) waits until 07:00 Berlin = 06:00 UTC.
    resume = quiet.resume_at(datetime(2026, 12, 1, 22, 30, tzinfo=UTC), "Europe/Berlin")
    assert resume is not None and resume.astimezone(UTC) == datetime(2026, 12, 2, 6,
                                                                     tzinfo=UTC)
    assert quiet.resume_at(datetime(2026, 12, 1, 12, tzinfo=UTC), "Europe/Berlin") is None
    day = QuietHours(start=time(12), end=time(13))
    resume = day.resume_at(datetime(2026, 12, 1, 12, 30, tzinfo=UTC), "UTC")
    assert resume == datetime(2026, 12, 1, 13, tzinfo=UTC)


def test_background_turn_id_is_stable_per_event_and_a_subject_token() -> None:
    one = background_turn_id("o1", "sarah", "msg.4711@example.com")
    assert one == background_turn_id("o1", "sarah", "msg.4711@example.com")
    assert one != background_turn_id("o2", "sarah", "msg.4711@example.com")
    assert one.isalnum() and len(one) <= 64


# ---- the indexed matcher against a plain scan ----

_VOCAB = ("move", "board", "prep", "invoice", "due", "friday", "urgent", "remove", "7")
_KINDS = ("received", "moved", "shared", "")
_SENDERS = ("priya@acme.com", "a@acme.com", "x@corp.example@acme.com", "ceo@corp.example", "")


def _random_rule(rng: random.Random, n: int) -> TriggerRule:
    def some(pool: tuple[str, ...], most: int) -> list[str]:
        return rng.sample(pool, rng.randint(0, most))

    keywords = [" ".join(rng.choices(_VOCAB[:5], k=rng.randint(1, 3)))
                for _ in range(rng.choice((0, 0, 1, 2, 3)))]
    return rule(f"r{n}", sources=some(("email", "calendar", "crm"), 2),
                kinds=some(_KINDS[:3], 2),
                senders=some(("priya@acme.com", "@acme.com", "@corp.example", "a@acme.com"), 2),
                keywords=keywords, enabled=rng.random() > 0.1)


def _random_event(rng: random.Random) -> IngestEvent:
    text = " ".join(rng.choices(_VOCAB[:5] if rng.random() < 0.5 else _VOCAB,
                                k=rng.randint(1, 12)))
    return IngestEvent.model_validate({
        "org_id": "o1", "event_id": "m", "client_id": "sarah",
        "source": rng.choice(("email", "calendar", "crm", "note")), "title": "", "text": text,
        "metadata": {"kind": rng.choice(_KINDS), "from": rng.choice(_SENDERS)}})


def test_the_indexed_matcher_picks_what_a_plain_scan_picks() -> None:
    rng = random.Random(12)
    hits = 0
    for _ in range(300):
        rules = [_random_rule(rng, n) for n in range(rng.randint(0, 25))]
        matcher = TriggerMatcher(rules)
        for _ in range(20):
            ev = _random_event(rng)
            facts = EventFacts(ev)
            plain = next(((i, r) for i, r in enumerate(rules) if rule_matches(r, facts)), None)
            assert matcher.match(ev) == plain, (rules, ev)
            hits += plain is not None
    assert 1000 < hits < 5000  # both outcomes are exercised, not just "no match"


def test_the_matcher_is_built_once_per_resolved_rule_list() -> None:
    rules = [rule("a", keywords=["invoice"]), rule("b", keywords=["board prep"])]
    assert matcher_for(rules) is matcher_for(list(rules))
    assert matcher_for([rule("a", keywords=["invoice"]), rules[1]]) is not matcher_for(rules)
