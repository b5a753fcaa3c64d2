"""The (org, user) pair everything the gateway does is scoped by, and how the development
credential names it (`?org=&user=` on the WebSocket, `X-Org`/`X-User` on REST)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from switchboard_common.envelope import Id

_ID: TypeAdapter[str] = TypeAdapter(Id)


class Identity(BaseModel):
    model_config = ConfigDict(frozen=True)

    org: Id
    user: Id


class InvalidIdentity(ValueError):
    pass


def resolve_identity(org: str | None, user: str | None) -> Identity:
    values = {"org": org or "", "user": user or ""}
    bad = []
    for name, value in values.items():
        try:
            _ID.validate_python(value)
        except ValidationError:
            bad.append(name)
    if bad:
        raise InvalidIdentity(f"invalid {' and '.join(bad)}: must be 1-64 characters of "
                              "letters, digits, '_' or '-'")
    return Identity(**values)
