"""The embedded default's secrets: a NATS password per bus role, the Valkey password and the
key that encrypts client connection secrets, generated on first start into
`<data dir>/secrets/credentials.json` (directory 0700, file 0600) and reused afterwards, so
what was encrypted stays readable and restarted services keep their identity.

Each service process gets only its own NATS user in its environment (`service_env`)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from switchboard_common.permissions import ADMIN, ROLES

SECRET_READERS = ("gateway", "action_executor")
"""The services that encrypt (gateway, on REST writes) or decrypt (action_executor, to connect)
client connection secrets; no other process gets the key."""


@dataclass(frozen=True)
class EmbeddedSecrets:
    nats: dict[str, str]
    """user -> password, for every bus role and the admin."""
    valkey: str
    secrets_keys: list[str]
    """Fernet keys, newest first (SECRETS_KEYS)."""

    def service_env(self, service: str) -> dict[str, str]:
        env = {"NATS_USER": service, "NATS_PASSWORD": self.nats[service],
               "VALKEY_PASSWORD": self.valkey}
        if service in SECRET_READERS:
            env["SECRETS_KEYS"] = ",".join(self.secrets_keys)
        return env


def secrets_dir(data_dir: Path) -> Path:
    return data_dir / "secrets"


def write_private(path: Path, text: str) -> None:
    """Create (or replace) a file only its owner can read: opened 0600, never world-readable
    for an instant."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def add_secrets_key(data_dir: Path) -> EmbeddedSecrets:
    """Put a fresh key first in SECRETS_KEYS (the old ones keep decrypting): the next
    `switchboard up` encrypts with it; `switchboard rotate-secrets --data-dir` moves what is
    stored to it."""
    current = load_or_create(data_dir)
    out = EmbeddedSecrets(current.nats, current.valkey,
                          [Fernet.generate_key().decode(), *current.secrets_keys])
    write_private(secrets_dir(data_dir) / "credentials.json", json.dumps(
        {"nats": out.nats, "valkey": out.valkey, "secrets_keys": out.secrets_keys}, indent=2))
    return out


def load_or_create(data_dir: Path) -> EmbeddedSecrets:
    path = secrets_dir(data_dir) / "credentials.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    nats = dict(stored.get("nats", {}))
    # A role added in a later version gets a password; existing ones are kept.
    for user in (*ROLES, ADMIN):
        nats.setdefault(user, secrets.token_urlsafe(24))
    out = EmbeddedSecrets(
        nats=nats,
        valkey=stored.get("valkey") or secrets.token_urlsafe(24),
        secrets_keys=stored.get("secrets_keys") or [Fernet.generate_key().decode()],
    )
    fresh = {"nats": out.nats, "valkey": out.valkey, "secrets_keys": out.secrets_keys}
    if fresh != stored:
        write_private(path, json.dumps(fresh, indent=2))
    return out
