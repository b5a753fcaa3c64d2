"""Who may do what inside an org. Pure: the callers look things up (always inside the caller's
org, so another org's data is unreachable by construction) and ask here.

Rules:
- Admins manage users, templates, API keys and the org's system skills, and see every client
  of the org. Nobody becomes an admin implicitly: the first admin is made by `switchboard up`
  (or comes from the identity provider's role claim).
- A member sees and changes only the clients assigned to them (the creator of a client is
  assigned automatically), and their own user skills.
- Any member reads the org's templates, system skills and user list.
- An API key acts as its user, further limited by its scopes: admin operations need `admin`,
  the WebSocket and approvals need `chat`, uploading events needs `ingest`.

Clients and what members can learn: for a member, a client id that is not assigned to them is
refused the same way whether or not it exists (`ClientForbidden`), so ids from another org,
guessed ids and colleagues' clients all look alike and nothing about them leaks. An admin sees
the whole org, so telling them an id is unknown (`ClientNotFound`) reveals nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from switchboard_common.credentials import Scope
from switchboard_common.directory import Client, User
from switchboard_gateway.domain.auth import AuthMethod


class AccessError(Exception):
    """Base of the refusals below; routes map them to HTTP, the socket to error frames."""


class NotFound(AccessError):
    pass


class ClientNotFound(NotFound):
    pass


class Forbidden(AccessError):
    pass


class ClientForbidden(Forbidden):
    pass


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an org and that org's user record."""

    org: str
    user: User
    method: AuthMethod = AuthMethod.DEV
    scopes: frozenset[str] | None = None
    """API keys only; None: the user's full rights."""

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin" and self.has_scope(Scope.ADMIN)

    def has_scope(self, scope: Scope) -> bool:
        return self.scopes is None or scope.value in self.scopes


class ClientAccess(StrEnum):
    ALLOWED = "allowed"
    UNKNOWN = "unknown"
    FORBIDDEN = "forbidden"


def client_access(who: Principal, client: Client | None) -> ClientAccess:
    """The raw decision, before hiding existence from members (see `check_client`)."""
    if client is None:
        return ClientAccess.UNKNOWN
    if who.is_admin or who.user.id in client.assigned_users:
        return ClientAccess.ALLOWED
    return ClientAccess.FORBIDDEN


def check_client(who: Principal, client_id: str, client: Client | None) -> Client:
    """`client` (looked up by `client_id` in the caller's org) if the caller may use it."""
    decision = client_access(who, client)
    if decision is ClientAccess.ALLOWED and client is not None:
        return client
    if decision is ClientAccess.UNKNOWN and who.is_admin:
        raise ClientNotFound(f"no client {client_id!r} in this org")
    # Same words for "exists but not yours" and "does not exist": nothing leaks.
    raise ClientForbidden(f"client {client_id!r} is not assigned to you")


def visible_clients(who: Principal, clients: list[Client]) -> list[Client]:
    return [c for c in clients if client_access(who, c) is ClientAccess.ALLOWED]


def require_admin(who: Principal, action: str) -> None:
    if who.user.role == "admin" and not who.has_scope(Scope.ADMIN):
        raise Forbidden(f"this API key lacks the 'admin' scope needed to {action}")
    if not who.is_admin:
        raise Forbidden(f"only an org admin may {action}")


def require_scope(who: Principal, scope: Scope) -> None:
    if not who.has_scope(scope):
        raise Forbidden(f"this API key lacks the {scope.value!r} scope")


def check_self_or_admin(who: Principal, user_id: str, action: str) -> None:
    if user_id != who.user.id and not who.is_admin:
        raise Forbidden(f"only {user_id!r} or an org admin may {action}")


def assignees_after(current: list[str], *, add: list[str] | None = None,
                    remove: list[str] | None = None) -> list[str]:
    """Ordered, without duplicates: existing order kept, new ids appended."""
    out = [u for u in current if u not in (remove or [])]
    for user_id in add or []:
        if user_id not in out:
            out.append(user_id)
    return out
