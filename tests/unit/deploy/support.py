"""What the deploy tests share: the example credentials and building a service's settings
from a rendered environment."""

from __future__ import annotations

import base64
import importlib
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from switchboard_cli.embedded import nats_server_binary
from switchboard_common.settings import ServiceSettings, WorkerSettings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
# Environment a service's settings could read: cleared so only the rendered env counts.
SETTINGS_ENV = re.compile(r"^(NATS_|VALKEY_|SWITCHBOARD_|LOG_LEVEL|GATEWAY_|CONTEXT_|LLM_STREAM_|"
                          r"ACTION_EXECUTOR_|MEMORY_INDEXER_|ANTHROPIC_|SECRETS_KEYS|OTEL_)")


def example_secrets() -> dict[str, str]:
    """The keys of deploy/secrets.example.env, filled as an operator would: random values."""
    text = (DEPLOY / "secrets.example.env").read_text()
    keys = [line.split("=", 1)[0] for line in text.splitlines()
            if line and not line.startswith("#")]
    fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    values = {key: secrets.token_urlsafe(32) for key in keys}
    values["SECRETS_KEYS"] = fernet_key
    for key in keys:
        if key.startswith("NATS_PASSWORD_"):  # the recipe secrets.example.env gives for them
            values[key] = "n" + secrets.token_hex(24)
    return values


def build_settings(env: dict[str, str], service: str, monkeypatch: pytest.MonkeyPatch
                   ) -> ServiceSettings:
    """The service's own Settings class, built from exactly `env` (as at start-up)."""
    for name in list(os.environ):
        if SETTINGS_ENV.match(name):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings_class = importlib.import_module(f"switchboard_{service}.settings").Settings
    settings: ServiceSettings = settings_class()
    return settings


def http_port(settings: ServiceSettings) -> int:
    """Where the service serves /healthz, /readyz and /metrics."""
    if isinstance(settings, WorkerSettings):
        return settings.http_port
    port: int = settings.port  # type: ignore[attr-defined]  # the gateway's own
    return port


def check_nats_config(directory: Path, env: dict[str, str]) -> None:
    """nats-server itself parses `directory/nats.conf` (and what it includes) with `env`, as the
    container would: syntax, options, and every `$VARIABLE` the config reads."""
    done = subprocess.run([str(nats_server_binary()), "-t", "-c", str(directory / "nats.conf")],
                          env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def check_nats_image(image: str) -> None:
    """The NATS image runs the same minor release as the nats-server the deploy tests parse its
    configuration with (and the embedded stack runs): a config option the tested server accepts
    must not be one an older image refuses at start-up."""
    found = re.fullmatch(r"nats:(\d+)\.(\d+)(?:\.\d+)?(?:-alpine)?", image)
    assert found, f"the NATS image {image!r} is not pinned to a release"
    done = subprocess.run([str(nats_server_binary()), "--version"], capture_output=True,
                          text=True, timeout=30, check=True)
    tested = re.search(r"v(\d+)\.(\d+)\.", done.stdout)
    assert tested, done.stdout
    assert found.groups() == tested.groups(), (
        f"deploy runs {image}, the tests parse its config with nats-server {done.stdout.strip()}")
