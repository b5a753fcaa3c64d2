"""docker-compose.yml: valid against the Compose Specification, every service health-checked
and started after what it needs, only the gateway published, credentials only from the env
file, and every service's settings parse from what compose would hand it. (No Docker engine
here: the file is checked, not run.)"""

from __future__ import annotations

import ipaddress
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import redis
import yaml
from nats.aio.client import Client as NatsClient

from switchboard_cli.natsconf import password_env
from switchboard_cli.stack import SERVICES
from switchboard_common.bus import make_broker
from tests.unit.deploy.support import (
    DEPLOY,
    build_settings,
    check_nats_config,
    check_nats_image,
    example_secrets,
    http_port,
)

ROOT = DEPLOY.parent
COMPOSE = ROOT / "docker-compose.yml"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


def _raw() -> Any:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution, for the forms the file uses."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        empty = current is None or (op is not None and op.startswith(":") and not current)
        if op and op.endswith("?") and empty:
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        if op and op.endswith("-") and empty:
            return str(arg)
        return current or ""

    return VARIABLE.sub(substitute, value)


@pytest.fixture(scope="module")
def compose() -> Any:
    return interpolate(_raw(), example_secrets())


def test_compose_file_follows_the_compose_specification(compose: Any) -> None:
    # The schema the Compose Specification publishes, as vendored (and kept current) by
    # check-jsonschema (Apache-2.0, its vendor/licenses/LICENSE.compose-spec).
    schema_file = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for document in (_raw(), compose):  # as written, and as compose reads it after substitution
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(document)]
        assert not errors, errors


def test_every_service_is_health_checked_and_waits_for_what_it_needs(compose: Any) -> None:
    services = compose["services"]
    assert set(SERVICES) <= set(services)
    for name, service in services.items():
        ours = service.get("build", {}).get("target") == "runtime"
        # Ours get the Dockerfile's HEALTHCHECK (tests/unit/deploy/test_dockerfile.py).
        assert ours or "healthcheck" in service, f"{name} has no healthcheck"
        for needed, how in service.get("depends_on", {}).items():
            assert how == {"condition": "service_healthy"}, (name, needed)
    action_executor = services["action_executor"]["depends_on"]
    assert {"nats", "valkey", "caldav", "smtp"} <= set(action_executor)


def test_only_the_authenticated_gateway_is_published(compose: Any) -> None:
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"gateway"}
    [port] = compose["services"]["gateway"]["ports"]
    assert port.startswith("127.0.0.1:"), "published on loopback unless the operator says so"


def test_credentials_come_only_from_the_env_file() -> None:
    keys = set(example_secrets())
    for match in VARIABLE.finditer(COMPOSE.read_text()):
        if match[0] == "$$":
            continue
        assert match["name"] in keys or match["op"] in (":-", "-"), match[0]
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    with pytest.raises(ValueError, match="VALKEY_PASSWORD"):  # a missing secret stops compose
        interpolate(_raw(), {k: v for k, v in example_secrets().items() if k != "VALKEY_PASSWORD"})


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_parses_its_compose_settings(
        compose: Any, service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {key: str(value) for key, value in compose["services"][service]["environment"].items()}
    settings = build_settings(env, service, monkeypatch)
    assert settings.environment == "production" and settings.stream_replicas == 1
    # The variable the image's HEALTHCHECK reads is the one the service serves on.
    variable = "GATEWAY_PORT" if service == "gateway" else f"{service.upper()}_HTTP_PORT"
    assert http_port(settings) == int(env[variable])
    broker = make_broker(settings.nats_url, service, user=settings.nats_user,
                         password=settings.nats_password)
    client = NatsClient()
    client._setup_server_pool(broker._connection_kwargs["servers"])
    assert {s.uri.hostname for s in client._server_pool} <= set(compose["services"])
    valkey = redis.Redis.from_url(settings.valkey_url).connection_pool.connection_kwargs
    assert valkey["host"] in compose["services"]
    # Signs in as its own role, with the password the NATS server reads for that user.
    assert settings.nats_user == service
    nats_env = compose["services"]["nats"]["environment"]
    assert settings.nats_password is not None
    assert settings.nats_password.get_secret_value() == nats_env[password_env(service)]


def test_the_ssrf_guard_lets_the_tools_reach_the_compose_tool_servers(
        compose: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: str(v) for k, v in compose["services"]["action_executor"]["environment"].items()}
    settings = build_settings(env, "action_executor", monkeypatch)
    policy = settings.egress_policy()
    private = ipaddress.ip_address("172.18.0.5")  # what a compose network hands out
    caldav = urlsplit(settings.caldav_url)
    assert policy.verdict(caldav.hostname or "", private, caldav.port or 80) is None
    assert policy.verdict(settings.smtp_host, private, settings.smtp_port) is None
    assert policy.verdict("valkey", private, 6379) is not None
    gateway = compose["services"]["gateway"]["environment"]
    assert gateway["OUTBOUND_ALLOW"] == env["OUTBOUND_ALLOW"], "both check the same rules"


def test_nats_has_the_kubernetes_users_and_all_their_passwords(compose: Any, tmp_path: Path
                                                               ) -> None:
    mounts = {target: ROOT / source for source, target, *_ in
              (v.split(":") for v in compose["services"]["nats"]["volumes"]) if source[0] == "."}
    assert mounts["/etc/nats/users.conf"] == DEPLOY / "k8s" / "base" / "nats-users.conf"
    assert "include ./users.conf" in mounts["/etc/nats/nats.conf"].read_text()
    users = mounts["/etc/nats/users.conf"].read_text()
    needed = set(re.findall(r"\$(NATS_PASSWORD_\w+)", users))
    assert needed and needed <= set(compose["services"]["nats"]["environment"])
    for target, source in mounts.items():
        (tmp_path / Path(target).name).write_text(source.read_text())
    check_nats_config(tmp_path, compose["services"]["nats"]["environment"])
    check_nats_image(compose["services"]["nats"]["image"])
