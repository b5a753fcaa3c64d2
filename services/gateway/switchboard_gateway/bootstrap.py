"""The first admin of a deployment where `switchboard up` does not run (Kubernetes, compose):

    kubectl -n switchboard exec deploy/gateway -- \
        python -m switchboard_gateway.bootstrap --org acme --admin alice
    docker compose exec gateway python -m switchboard_gateway.bootstrap --org acme --admin alice

It runs in the gateway's container with the gateway's own settings (Valkey URL and password,
GATEWAY_PUBLIC_URL), adds the admin if the org has no such user yet, and prints a one-time
sign-in link; run it again for a fresh link. It writes to Valkey directly because nobody can
call the gateway before someone exists. Whoever can exec into the gateway can read its secrets
anyway, so this opens nothing new."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import TypeAdapter

from switchboard_common.credentials import SigninLinks
from switchboard_common.directory import Directory, User
from switchboard_common.envelope import Id
from switchboard_common.valkey import connect_valkey
from switchboard_gateway.settings import Settings


class BootstrapError(Exception):
    """Nothing was changed; the message says why."""


async def first_admin(settings: Settings, org: str, admin: str) -> str:
    """A one-time sign-in link for `admin` of `org`, created as an admin if absent."""
    if not settings.public_url:
        raise BootstrapError("set GATEWAY_PUBLIC_URL: the link must point where people "
                             "reach the gateway")
    org = TypeAdapter(Id).validate_python(org)
    client = await connect_valkey(settings.valkey_url, settings.connect_timeout_s,
                                  settings.valkey_password)
    try:
        directory = Directory(client)
        user = await directory.get_user(org, admin)
        if user is None:
            await directory.add_user(org, User(id=admin, display_name="Administrator",
                                                role="admin"))
        elif user.role != "admin":
            # Promoting someone is an admin's decision in the API, not this tool's.
            raise BootstrapError(f"{admin!r} is a member of {org!r}, not an admin")
        token = await SigninLinks(client).issue(org, admin, settings.signin_link_ttl_s)
    finally:
        await client.aclose()
    return f"{settings.public_url.rstrip('/')}/#signin={token}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switchboard_gateway.bootstrap",
                                     description="Print a one-time sign-in link for an org's "
                                                 "admin, creating the admin if needed.")
    parser.add_argument("--org", required=True, help="org id, e.g. acme")
    parser.add_argument("--admin", required=True, help="the admin's user id, e.g. alice")
    args = parser.parse_args(argv)
    try:
        link = asyncio.run(first_admin(Settings(), args.org, args.admin))
    except BootstrapError as exc:
        sys.stderr.write(f"bootstrap: {exc}\n")
        return 2
    sys.stdout.write(f"{link}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
