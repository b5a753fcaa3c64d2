"""Who is calling. Until auth lands this is a dev credential the client simply names
(`?org=&user=` on the WebSocket, `X-Org`/`X-User` on REST), defaulting to configured values.
Everything the gateway does is scoped by the (org, user) pair."""

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


def resolve_identity(org: str | None, user: str | None, default_org: str, default_user: str
                     ) -> Identity:
    values = {"org": org or default_org, "user": user or default_user}
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
