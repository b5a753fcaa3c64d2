"""`switchboard rotate-secrets`: re-encrypt every stored client connection secret under the
newest key of SECRETS_KEYS (docs/security.md, "Rotating keys").

Reads VALKEY_URL, VALKEY_PASSWORD and SECRETS_KEYS from the environment, like the services;
with `--data-dir` it reads the embedded default's generated password and keys instead."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchboard_cli.embedded_secrets import load_or_create
from switchboard_common.connections import ConnectionStore
from switchboard_common.secretbox import SecretBox
from switchboard_common.valkey import connect_valkey


class RotateSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    valkey_url: str = "redis://127.0.0.1:6379/0"
    valkey_password: SecretStr | None = None
    secrets_keys: SecretStr | None = None


async def rotate(valkey_url: str, password: SecretStr | None, box: SecretBox) -> int:
    client = await connect_valkey(valkey_url, 10.0, password)
    try:
        return await ConnectionStore(client, box).rotate_all()
    finally:
        await client.aclose()


def run_rotate(data_dir: Path | None, valkey_url: str | None) -> int:
    settings = RotateSettings()
    password, keys = settings.valkey_password, settings.secrets_keys
    if data_dir is not None:
        embedded = load_or_create(data_dir)
        password = SecretStr(embedded.valkey)
        keys = SecretStr(",".join(embedded.secrets_keys))
    if keys is None:
        print("SECRETS_KEYS is not set (newest key first, then the keys still in use)")
        return 2
    count = asyncio.run(rotate(valkey_url or settings.valkey_url, password,
                               SecretBox.from_setting(keys, "production")))
    print(f"re-encrypted {count} client connection record(s) under the newest key")
    return 0
