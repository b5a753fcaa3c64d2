"""Where the CLI finds its API key, in order: `--api-key`, the environment variable
SWITCHBOARD_API_KEY, the config file `~/.config/switchboard/api-key` (or under
$XDG_CONFIG_HOME), and the admin key `switchboard up` wrote for this machine
(`<data dir>/cli-key`). The development credential (`--org`/`--user`) is separate and only
works against a gateway started with GATEWAY_DEV_CREDENTIAL=true."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV_VAR = "SWITCHBOARD_API_KEY"


def config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "switchboard" / "api-key"


def data_dir_key() -> Path:
    data_dir = Path(os.environ.get("SWITCHBOARD_DATA_DIR", ".switchboard/data"))
    return data_dir.resolve() / "cli-key"


def find_api_key(flag: str | None) -> str | None:
    if flag:
        return flag.strip()
    if value := os.environ.get(ENV_VAR, "").strip():
        return value
    for path in (config_file(), data_dir_key()):
        if path.is_file() and (text := path.read_text().strip()):
            return text
    return None


def missing_key_message() -> str:
    return (f"No API key found. Pass --api-key, set {ENV_VAR}, write the key to "
            f"{config_file()}, or run `switchboard up` on this machine (it writes "
            f"{data_dir_key()}). An admin creates keys with `switchboard keys create`.")


def auth_headers(api_key: str | None, org: str | None = None, user: str | None = None
                 ) -> dict[str, str]:
    if api_key:
        return {"Authorization": f"Bearer {api_key}"}
    return {k: v for k, v in (("X-Org", org), ("X-User", user)) if v}


def http_base(url: str) -> str:
    """`ws://host:8080/ws` -> `http://host:8080` (also accepts an http URL)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def add_credential_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-key", default=None,
                        help="API key (else $SWITCHBOARD_API_KEY, ~/.config/switchboard/api-key "
                             "or the key `switchboard up` wrote)")
    parser.add_argument("--org", default=None,
                        help="development credential: org id (needs --user and a gateway "
                             "with GATEWAY_DEV_CREDENTIAL=true)")
    parser.add_argument("--user", default=None, help="development credential: user id")

