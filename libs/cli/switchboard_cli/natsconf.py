"""nats-server configuration from the bus roles (`switchboard_common.permissions`): one user per
service with its publish/subscribe allow lists, plus the operator's `admin`.

Two forms, one derivation:
- embedded (`switchboard up`, tests): a whole server config with the generated passwords
  inline, written 0600 under the data dir;
- deployments (`switchboard nats-config`): only the `authorization` block, with each password
  a reference to an environment variable of the nats-server container
  (`NATS_PASSWORD_<SERVICE>`, filled from a Kubernetes/compose Secret), so the block itself holds
  no secret and can live in a ConfigMap, `include`d from the server's main config.

The nats-server config format is a superset of JSON, so values are written with `json.dumps`;
only environment references are left unquoted (nats-server resolves `$NAME` from the
environment when the config does not define it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from switchboard_common.permissions import ADMIN, ROLES


def password_env(user: str) -> str:
    """The nats-server container's variable holding `user`'s password (deployments)."""
    return f"NATS_PASSWORD_{user.upper()}"


def authorization(passwords: Mapping[str, str] | None = None) -> str:
    """The `authorization { users = [...] }` block. With `passwords` (user -> password) they
    are inline; without, each is `$NATS_PASSWORD_<USER>`."""
    users = []
    for name in (*ROLES, ADMIN):
        password = (json.dumps(passwords[name]) if passwords is not None
                    else "$" + password_env(name))
        entry = f'    {{user: {json.dumps(name)}, password: {password}'
        if name != ADMIN:
            entry += ", permissions: " + json.dumps(ROLES[name].permissions())
        users.append(entry + "}")
    return "authorization {\n  users: [\n" + ",\n".join(users) + "\n  ]\n}\n"


def embedded_config(port: int, store_dir: Path, passwords: Mapping[str, str]) -> str:
    return (f"listen: \"127.0.0.1:{port}\"\n"
            f"jetstream {{ store_dir: {json.dumps(str(store_dir))} }}\n"
            + authorization(passwords))
