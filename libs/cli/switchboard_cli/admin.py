"""`switchboard signin-link | invite | keys ...`: the gateway's admin REST operations from a
terminal, with the CLI's API key (see apikey.py). Secrets are printed once, to stdout, and
nowhere else."""

from __future__ import annotations

import sys
from typing import Any, TextIO

import httpx

from switchboard_cli.apikey import auth_headers, find_api_key, missing_key_message


class AdminError(Exception):
    pass


def _call(url: str, api_key: str, method: str, path: str, body: Any = None) -> Any:
    with httpx.Client(base_url=url.rstrip("/"), headers=auth_headers(api_key), timeout=30
                      ) as http:
        try:
            response = http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise AdminError(f"cannot reach {url}: {exc}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise AdminError(f"refused ({response.status_code}): {detail}")
    return response.json() if response.content else None


def signin_link(url: str, key: str, user: str | None, out: TextIO) -> None:
    who = user or _call(url, key, "GET", "/v1/auth/me")["user"]
    link = _call(url, key, "POST", f"/v1/users/{who}/signin-link")
    out.write(f"One-time sign-in link for {who!r} (until {link['expires_at']}):\n"
              f"{link['link']}\n")


def invite(url: str, key: str, user: str, admin: bool, name: str, out: TextIO) -> None:
    body = {"id": user, "display_name": name, "role": "admin" if admin else "member"}
    link = _call(url, key, "POST", "/v1/invites", body)
    out.write(f"Invited {user!r} as {body['role']}. Send them this one-time sign-in link "
              f"(until {link['expires_at']}):\n{link['link']}\n")


def keys_create(url: str, key: str, scopes: list[str], name: str, user: str | None,
                out: TextIO) -> None:
    created = _call(url, key, "POST", "/v1/keys",
                    {"name": name, "scopes": scopes, "user": user})
    record = created["key"]
    out.write(f"API key {record['id']} for {record['user']!r}, scopes "
              f"{', '.join(record['scopes'])}. It is shown only now:\n{created['secret']}\n")


def keys_list(url: str, key: str, out: TextIO) -> None:
    for record in _call(url, key, "GET", "/v1/keys"):
        out.write(f"{record['id']}  {record['prefix']}...  {record['user']:<16} "
                  f"{','.join(record['scopes']):<18} last used {record['last_used_at'] or '-'}"
                  f"  {record['name']}\n")


def keys_revoke(url: str, key: str, key_id: str, out: TextIO) -> None:
    _call(url, key, "DELETE", f"/v1/keys/{key_id}")
    out.write(f"Revoked {key_id}.\n")


def run_admin(command: str, url: str, api_key: str | None, out: TextIO = sys.stdout,
              **options: Any) -> int:
    key = find_api_key(api_key)
    if key is None:
        print(missing_key_message(), file=sys.stderr)
        return 2
    actions = {
        "signin-link": lambda: signin_link(url, key, options.get("user"), out),
        "invite": lambda: invite(url, key, options["user"], options["admin"],
                                 options["name"], out),
        "keys-create": lambda: keys_create(url, key, options["scopes"], options["name"],
                                           options.get("user"), out),
        "keys-list": lambda: keys_list(url, key, out),
        "keys-revoke": lambda: keys_revoke(url, key, options["key_id"], out),
    }
    try:
        actions[command]()
    except AdminError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0
