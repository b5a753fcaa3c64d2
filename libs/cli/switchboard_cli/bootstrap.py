"""The first admin of a self-hosted stack, the way Jupyter prints its token URL.

On an empty data dir `switchboard up` creates the org and its admin, writes an admin API key
for the CLI to `<data dir>/cli-key` (mode 0600, so `switchboard chat`, `ingest`, `invite`
and `keys` work on this machine without flags) and prints a one-time sign-in link. Every later
`up` prints a fresh link for the same admin; `switchboard signin-link` prints one on demand.
This writes to Valkey directly because nobody can call the gateway before someone exists."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as redis

from switchboard_cli.embedded_secrets import secrets_dir, write_private
from switchboard_common.credentials import ApiKeys, Scope, SigninLinks
from switchboard_common.directory import Directory, User

LINK_TTL_S = 72 * 3600
CLI_KEY_FILE = "cli-key"
SESSION_SECRET_FILE = "session-secret"


@dataclass(frozen=True)
class Bootstrap:
    org: str
    admin: str
    link: str
    created: bool
    key_file: Path


def session_secret(data_dir: Path) -> str:
    """The gateway's session-signing secret for this data dir, so sessions survive restarts."""
    path = secrets_dir(data_dir) / SESSION_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    write_private(path, secret)
    return secret


def bootstrap(store_url: str, data_dir: Path, gateway_url: str, org: str | None = None,
              admin: str | None = None) -> Bootstrap:
    """`store_url`: Valkey's URL with its password (`Stack.store_url`). The org and admin ids
    default to $SWITCHBOARD_ORG / $SWITCHBOARD_ADMIN, else `default` / `admin`."""
    return asyncio.run(_bootstrap(
        store_url, data_dir, gateway_url, org or os.environ.get("SWITCHBOARD_ORG", "default"),
        admin or os.environ.get("SWITCHBOARD_ADMIN", "admin")))


async def _bootstrap(store_url: str, data_dir: Path, gateway_url: str, org: str, admin: str
                     ) -> Bootstrap:
    client = redis.Redis.from_url(store_url)
    try:
        directory = Directory(client)
        created = await directory.add_user(org, User(id=admin, display_name="Administrator",
                                                     role="admin"))
        key_file = data_dir / CLI_KEY_FILE
        keys = ApiKeys(client)
        if not key_file.exists() or await keys.lookup(key_file.read_text().strip()) is None:
            secret, _ = await keys.create(org, admin, [Scope.CHAT, Scope.INGEST, Scope.ADMIN],
                                          name="switchboard CLI on this machine")
            write_private(key_file, secret + "\n")
        token = await SigninLinks(client).issue(org, admin, LINK_TTL_S)
    finally:
        await client.aclose()
    return Bootstrap(org, admin, f"{gateway_url}/#signin={token}", created, key_file)
