"""The bus roles (switchboard_common.permissions) cover what each service declares it sends and
receives (its AsyncAPI document, built from the code), and no more than the rules allow. A
new subject a service starts using fails here until its role allows it."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
import yaml

from switchboard_common.permissions import ROLES, SERVICES, Role
from switchboard_common.settings import ServiceSettings
from switchboard_common.streams import TURN_EVENTS

APPS = {
    "context": "switchboard_context.main",
    "llm_stream": "switchboard_llm_stream.main",
    "action_executor": "switchboard_action_executor.main",
    "memory_indexer": "switchboard_memory_indexer.main",
    "gateway": "switchboard_gateway.asyncapi",
}


def covers(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` one token, `>` the rest; `subject` may itself hold `*`."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def declared(service: str) -> dict[str, set[str]]:
    """send / receive subjects of the service's AsyncAPI document, `{org}` -> `*`."""
    app = importlib.import_module(APPS[service]).build_app()
    doc: dict[str, Any] = yaml.safe_load(app.schema.to_specification().to_yaml())
    out: dict[str, set[str]] = {"send": set(), "receive": set()}
    for op in doc.get("operations", {}).values():
        channel = doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]
        out[op["action"]].add(re.sub(r"\{[^}]+\}", "*", channel["address"]))
    return out


def may_publish(role: Role, subject: str) -> bool:
    return any(covers(p, subject) for p in role.publish_allow())


def may_subscribe(role: Role, subject: str) -> bool:
    return any(covers(p, subject) for p in role.subscribe_allow())


def consumes(role: Role, subject: str) -> bool:
    return any(any(covers(f, subject) for f in c.stream.subjects) for c in role.consumers)


@pytest.mark.parametrize("service", SERVICES)
def test_role_allows_everything_the_service_declares(service: str) -> None:
    role, used = ROLES[service], declared(service)
    assert used["send"] or used["receive"]
    for subject in used["send"]:
        assert may_publish(role, subject), f"{service} sends {subject}: add it to its role"
    for subject in used["receive"]:
        assert may_subscribe(role, subject) or consumes(role, subject), (
            f"{service} receives {subject}: add it to its role")


@pytest.mark.parametrize("service", ["context", "llm_stream", "action_executor",
                                     "memory_indexer"])
def test_role_names_the_services_own_consumers(service: str) -> None:
    module = importlib.import_module(APPS[service])
    specs = module.consumers(module.Settings())
    owned = {(c.stream.name, c.name) for c in ROLES[service].consumers}
    assert {(s.stream.name, s.name) for s in specs} == owned


def test_only_the_gateway_reads_turn_events() -> None:
    readers = {name for name, role in ROLES.items()
               if may_subscribe(role, "turns.events.acme.t1")
               or any(c.stream == TURN_EVENTS for c in role.consumers)
               or TURN_EVENTS in role.replays}
    assert readers == {"gateway"}


def test_turn_events_publishers_and_memory_search_askers() -> None:
    publishers = {n for n, r in ROLES.items() if may_publish(r, "turns.events.acme.t1")}
    assert publishers == {"llm_stream", "context", "action_executor"}
    askers = {n for n, r in ROLES.items() if may_publish(r, "memory.search.acme")}
    assert askers == {"gateway", "context", "action_executor"}
    answerers = {n for n, r in ROLES.items() if may_subscribe(r, "memory.search.acme")}
    assert answerers == {"memory_indexer"}


def test_inboxes_are_per_service() -> None:
    for name, role in ROLES.items():
        for other in ROLES:
            assert may_subscribe(role, f"_INBOX.{other}.abc") == (other == name)
        assert not may_subscribe(role, "_INBOX.abc")
        assert not may_subscribe(role, "_inbox.abc")


def test_settings_require_credentials_outside_development() -> None:
    with pytest.raises(ValueError, match="NATS_USER, NATS_PASSWORD, VALKEY_PASSWORD must"):
        ServiceSettings(environment="production")
    ok = ServiceSettings(environment="production", nats_user="context", nats_password="p",
                         valkey_password="v")
    assert "p" not in repr(ok.nats_password) and ok.nats_user == "context"
    assert ServiceSettings().nats_user is None  # development may run open servers


def test_every_subject_of_the_contracts_has_a_publisher_and_a_reader() -> None:
    """A new subject function in a contract module needs its place in the roles."""
    import inspect

    from switchboard_common import actions, directory, memory, model, skills, turns

    for module in (actions, directory, memory, model, skills, turns):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if not name.endswith("_subject") or fn.__module__ != module.__name__:
                continue
            subject = fn(*["*"] * len(inspect.signature(fn).parameters))
            assert any(may_publish(r, subject) for r in ROLES.values()), name
            readers = [r for r in ROLES.values() if may_subscribe(r, subject)
                       or consumes(r, subject)]
            assert readers, f"{name}: nobody may read {subject}"
