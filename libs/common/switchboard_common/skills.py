"""Skills: the configuration that shapes the assistant for one (user, client), resolved from
four tiers, later tiers overriding earlier ones:

    system defaults -> user defaults -> the client's template -> client overrides

Merge rules (`merge`):
- mappings merge deeply, key by key;
- any other value (scalars and lists) replaces the earlier one whole;
- an explicit `null` removes the key set by an earlier tier (the value falls back to the
  model default when the key is required).
Every resolved leaf knows which tier set it (`ResolvedSkills.provenance`, dotted paths).
Pure code: no I/O. Storage lives in `directory`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from switchboard_common.envelope import Envelope, Id
from switchboard_common.triggers import MAX_TRIGGERS, QuietHours, TriggerRule


class Tier(StrEnum):
    SYSTEM = "system"
    USER = "user"
    TEMPLATE = "template"
    CLIENT = "client"


TIER_ORDER = (Tier.SYSTEM, Tier.USER, Tier.TEMPLATE, Tier.CLIENT)


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_execute: float = Field(0.9, ge=0, le=1)
    """Execute alone at or above this confidence (assist/automate)."""
    require_approval: float = Field(0.6, ge=0, le=1)
    """Below this confidence the assistant asks for details instead of proposing."""
    mode: Literal["suggest", "assist", "automate"] | None = None
    """This action type's own mode (an accepted autonomy suggestion sets it); None: the
    autonomy's `mode`."""

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.require_approval > self.auto_execute:
            raise ValueError("require_approval must not exceed auto_execute")
        return self


class Autonomy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["suggest", "assist", "automate"] = "suggest"
    default: Thresholds = Thresholds()
    actions: dict[str, Thresholds] = Field(default_factory=dict)
    """Per action type (e.g. calendar_create) thresholds overriding `default`."""

    def thresholds(self, action: str) -> Thresholds:
        return self.actions.get(action, self.default)


# Bounds on what a member may write into every turn's system prompt: before them, a 1 MB
# preference became a million-character prompt on each turn of the client.
MAX_PREFERENCES = 50
MAX_PREFERENCE_CHARS = 1000
MAX_PREFERENCES_TOTAL_CHARS = 8000
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")]
"""A model id's shape; which ids a deployment allows is the gateway's `allowed_models`."""


def _bounded_preferences(value: dict[str, str]) -> dict[str, str]:
    if sum(len(k) + len(v) for k, v in value.items()) > MAX_PREFERENCES_TOTAL_CHARS:
        raise ValueError(f"preferences together must stay under {MAX_PREFERENCES_TOTAL_CHARS} "
                         "characters")
    return value


class ModelPrefs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    simple: ModelName | None = None
    """Model for simple (lite-prompt) requests; None = the provider's default."""
    complex: ModelName | None = None
    """Model for complex (full-prompt) requests; None = the provider's default."""
    max_tokens: int = Field(1024, ge=1, le=64_000)


class Skills(BaseModel):
    """The resolved, validated skills. Unknown keys are refused so a typo in a tier is a 422,
    not a silently ignored setting."""

    model_config = ConfigDict(extra="forbid")

    preferences: Annotated[
        dict[Annotated[str, Field(min_length=1, max_length=64)],
             Annotated[str, Field(max_length=MAX_PREFERENCE_CHARS)]],
        Field(max_length=MAX_PREFERENCES), AfterValidator(_bounded_preferences),
    ] = Field(default_factory=dict)
    """Named preferences in plain text, e.g. {"meetings": "prefers morning meetings"}."""
    email_tone: str = Field("professional and concise", max_length=200)
    enabled_tools: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list,
                                                                      max_length=50)
    autonomy: Autonomy = Autonomy()
    models: ModelPrefs = ModelPrefs()
    timezone: str = "UTC"
    """IANA zone of the client (e.g. Europe/Berlin). Set it on the user tier for everyone the
    user works for, override it per client: prompts state "now" and resolve "tomorrow" in it,
    and tool arguments are normalised to it."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "Europe/Berlin)") from exc
        return value
    triggers: list[TriggerRule] = Field(default_factory=list, max_length=MAX_TRIGGERS)
    """Ingested events that start a background turn (first match wins; see triggers.py)."""
    quiet_hours: QuietHours | None = None
    """Background turns wait until the end of this window (client's time zone)."""


SYSTEM_DEFAULTS: dict[str, Any] = Skills(
    enabled_tools=["calendar_create", "calendar_list", "email_draft", "task_add", "task_list"],
).model_dump()


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge one tier over another by the rules in the module docstring."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = _strip_nulls(value)
    return out


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def _leaves(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_leaves(value, path + "."))
        else:
            out[path] = value
    return out


class ResolvedSkills(BaseModel):
    model_config = ConfigDict(frozen=True)

    skills: Skills
    provenance: dict[str, Tier]
    """Dotted path of every resolved leaf -> the tier that set it (`system` for defaults)."""


def resolve(tiers: Mapping[Tier, Mapping[str, Any] | None]) -> ResolvedSkills:
    """Merge the tiers in order and validate. Raises pydantic.ValidationError on bad values."""
    merged: dict[str, Any] = {}
    setters: dict[str, Tier] = {}
    for tier in TIER_ORDER:
        layer = tiers.get(tier)
        if layer is None:
            continue
        merged = merge(merged, layer)
        for path, value in _leaves(layer).items():
            if value is None:  # removed: what remains there is the default's, not a tier's
                for known in [p for p in setters if p == path or p.startswith(path + ".")]:
                    del setters[known]
            else:
                setters[path] = tier
    skills = Skills.model_validate(merged)
    provenance: dict[str, Tier] = {}
    for path in _leaves(skills.model_dump()):
        provenance[path] = _owner(path, setters)
    return ResolvedSkills(skills=skills, provenance=provenance)


def _owner(path: str, setters: Mapping[str, Tier]) -> Tier:
    """The tier that set `path` or, for values inside a replaced whole (a list, a mapping set
    in one go), the tier that set the nearest enclosing path. Defaults belong to `system`."""
    probe = path
    while True:
        if probe in setters:
            return setters[probe]
        if "." not in probe:
            return Tier.SYSTEM
        probe = probe.rsplit(".", 1)[0]


def layer_models(layer: Mapping[str, Any]) -> list[str]:
    """The model ids a skills layer names (for the deployment's allow-list)."""
    models = layer.get("models")
    if not isinstance(models, Mapping):
        return []
    return [v for k in ("simple", "complex") if isinstance(v := models.get(k), str)]


def validate_layer(layer: Mapping[str, Any]) -> None:
    """Reject a tier document that could never resolve (unknown keys, wrong types), at write
    time, by resolving it over the system defaults."""
    resolve({Tier.SYSTEM: SYSTEM_DEFAULTS, Tier.CLIENT: layer})


# ---- bus contract: skills.resolve.<org> (request/reply, served by context) ----


def skills_resolve_subject(org: str) -> str:
    return f"skills.resolve.{org}"


class ResolveSkills(Envelope):
    user_id: Id
    client_id: Id


class ResolveSkillsReply(BaseModel):
    resolved: ResolvedSkills
    client_known: bool
