"""Access rules (pure): who sees which client, and what a refusal reveals."""

from __future__ import annotations

import pytest

from switchboard_common.directory import Client, User
from switchboard_gateway.domain.access import (
    ClientAccess,
    ClientForbidden,
    ClientNotFound,
    Forbidden,
    Principal,
    assignees_after,
    check_client,
    check_self_or_admin,
    client_access,
    require_admin,
    visible_clients,
)

ADMIN = Principal("acme", User(id="boss", role="admin"))
ANA = Principal("acme", User(id="ana"))
BEN = Principal("acme", User(id="ben"))
SARAH = Client(id="sarah", name="Sarah Chen", assigned_users=["ana"])
JOHN = Client(id="john", name="John Park", assigned_users=["ben", "ana"])


def test_decisions() -> None:
    assert client_access(ANA, SARAH) is ClientAccess.ALLOWED
    assert client_access(BEN, SARAH) is ClientAccess.FORBIDDEN
    assert client_access(ADMIN, SARAH) is ClientAccess.ALLOWED
    assert client_access(ANA, None) is ClientAccess.UNKNOWN


def test_check_client_returns_the_client_when_allowed() -> None:
    assert check_client(ANA, "sarah", SARAH) is SARAH
    assert check_client(ADMIN, "john", JOHN) is JOHN


def test_member_cannot_tell_unassigned_from_missing() -> None:
    with pytest.raises(ClientForbidden) as unassigned:
        check_client(BEN, "sarah", SARAH)
    with pytest.raises(ClientForbidden) as missing:
        check_client(BEN, "nobody", None)
    assert str(unassigned.value) == "client 'sarah' is not assigned to you"
    assert "Sarah Chen" not in str(unassigned.value)
    assert str(missing.value).replace("nobody", "sarah") == str(unassigned.value)


def test_admin_gets_not_found_for_an_unknown_id() -> None:
    with pytest.raises(ClientNotFound):
        check_client(ADMIN, "ghost", None)


def test_visible_clients() -> None:
    assert visible_clients(BEN, [SARAH, JOHN]) == [JOHN]
    assert visible_clients(ANA, [SARAH, JOHN]) == [SARAH, JOHN]
    assert visible_clients(ADMIN, [SARAH, JOHN]) == [SARAH, JOHN]


def test_admin_and_self_rules() -> None:
    require_admin(ADMIN, "x")
    with pytest.raises(Forbidden, match="only an org admin may add users"):
        require_admin(ANA, "add users")
    check_self_or_admin(ANA, "ana", "x")
    check_self_or_admin(ADMIN, "ana", "x")
    with pytest.raises(Forbidden):
        check_self_or_admin(BEN, "ana", "read this usage")


def test_assignees_keep_order_and_drop_duplicates() -> None:
    assert assignees_after(["a", "b"], add=["b", "c", "c"]) == ["a", "b", "c"]
    assert assignees_after(["a", "b", "c"], remove=["b"]) == ["a", "c"]
    assert assignees_after([], add=["x", "x"]) == ["x"]
