import pytest
from pydantic import ValidationError

from switchboard_common.skills import SYSTEM_DEFAULTS, Tier, merge, resolve, validate_layer


def test_mappings_merge_deeply() -> None:
    out = merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3, "z": 4}})
    assert out == {"a": {"x": 1, "y": 3, "z": 4}}


def test_lists_and_scalars_replace() -> None:
    assert merge({"tools": ["a", "b"], "tone": "x"}, {"tools": ["c"], "tone": "y"}) == {
        "tools": ["c"], "tone": "y"}


def test_explicit_null_removes_a_key() -> None:
    assert merge({"a": 1, "b": {"c": 2, "d": 3}}, {"a": None, "b": {"c": None}}) == {
        "b": {"d": 3}}


def test_later_tiers_win_and_provenance_names_the_tier() -> None:
    r = resolve({
        Tier.SYSTEM: SYSTEM_DEFAULTS,
        Tier.USER: {"email_tone": "warm", "preferences": {"sign": "sign as Alex"}},
        Tier.TEMPLATE: {"email_tone": "formal", "autonomy": {"mode": "assist"},
                        "preferences": {"meetings": "mornings only"}},
        Tier.CLIENT: {"preferences": {"meetings": "afternoons only"},
                      "autonomy": {"actions": {"email_send": {"auto_execute": 0.99,
                                                              "require_approval": 0.8}}}},
    })
    s = r.skills
    assert s.email_tone == "formal" and r.provenance["email_tone"] is Tier.TEMPLATE
    assert s.preferences == {"sign": "sign as Alex", "meetings": "afternoons only"}
    assert r.provenance["preferences.sign"] is Tier.USER
    assert r.provenance["preferences.meetings"] is Tier.CLIENT
    assert s.autonomy.mode == "assist" and r.provenance["autonomy.mode"] is Tier.TEMPLATE
    assert s.autonomy.thresholds("email_send").auto_execute == 0.99
    assert s.autonomy.thresholds("calendar_create").auto_execute == 0.9
    assert r.provenance["autonomy.default.auto_execute"] is Tier.SYSTEM
    assert r.provenance["enabled_tools"] is Tier.SYSTEM


def test_null_falls_back_to_the_default_and_provenance_says_system() -> None:
    r = resolve({Tier.SYSTEM: SYSTEM_DEFAULTS, Tier.TEMPLATE: {"email_tone": "formal"},
                 Tier.CLIENT: {"email_tone": None}})
    assert r.skills.email_tone == "professional and concise"
    assert r.provenance["email_tone"] is Tier.SYSTEM


@pytest.mark.parametrize("layer", [
    {"emial_tone": "typo"},
    {"autonomy": {"mode": "yolo"}},
    {"autonomy": {"default": {"auto_execute": 1.5}}},
    {"autonomy": {"default": {"auto_execute": 0.5, "require_approval": 0.8}}},
    {"enabled_tools": "calendar_create"},
])
def test_invalid_layers_are_refused_at_write_time(layer: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        validate_layer(layer)
