"""switchboard up | chat | ingest | signin-link | invite | keys | nats-config | nats-streams |
rotate-secrets"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from switchboard_cli.apikey import add_credential_args

_URL = "http://127.0.0.1:8080"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run NATS, Valkey and the five services on loopback")
    up.add_argument("--data-dir", type=Path, default=None,
                    help="JetStream store, Valkey data and logs (default .switchboard/data, "
                         "or $SWITCHBOARD_DATA_DIR)")
    up.add_argument("--port", type=int, default=None, help="gateway port (default 8080)")
    up.add_argument("--no-restart", action="store_true",
                    help="do not restart a service that exits")

    chat = sub.add_parser("chat", help="chat with the assistant in the terminal")
    chat.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    chat.add_argument("--client", default="demo-client", help="the client (executive) id")
    add_credential_args(chat)

    ingest = sub.add_parser("ingest", help="upload events (JSON Lines) to a client's memory")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--client", required=True, help="the client (executive) id")
    ingest.add_argument("--url", default=_URL)
    ingest.add_argument("--batch", type=int, default=100, help="events per request (<= 500)")
    ingest.add_argument("--no-wait", action="store_true",
                        help="return after the upload, without waiting until searchable")
    add_credential_args(ingest)

    link = sub.add_parser("signin-link", help="print a new one-time sign-in link (admin)")
    link.add_argument("--user", default=None, help="whose link (default: the key's own user)")
    invite = sub.add_parser("invite", help="add a user and print their one-time sign-in link")
    invite.add_argument("user", help="the new user's id")
    invite.add_argument("--admin", action="store_true", help="make them an org admin")
    invite.add_argument("--name", default="", help="display name")

    keys = sub.add_parser("keys", help="create, list or revoke API keys (admin)")
    key_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = key_sub.add_parser("create", help="create a key; its secret is shown once")
    create.add_argument("--scope", dest="scopes", action="append",
                        choices=["chat", "ingest", "admin"], required=True,
                        help="repeat for several scopes")
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument("--user", default=None, help="the user it acts as (default: you)")
    key_sub.add_parser("list", help="the org's keys (no secrets)")
    revoke = key_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    sub.add_parser("nats-config", help="print nats-server's `authorization` block: one user "
                   "per service with the permissions of its role; passwords are read from "
                   "$NATS_PASSWORD_<USER> by the server")
    sub.add_parser("nats-streams", help="declare (create or update) every JetStream stream as "
                   "the NATS admin user ($NATS_URL, $NATS_USER, $NATS_PASSWORD)")
    rotate = sub.add_parser("rotate-secrets", help="re-encrypt stored client connection "
                            "passwords under the newest key of SECRETS_KEYS")
    rotate.add_argument("--new-key", action="store_true",
                        help="only print a freshly generated key (to put first in SECRETS_KEYS); "
                        "with --data-dir, put it first in the embedded default's keys")
    rotate.add_argument("--data-dir", type=Path, default=None,
                        help="use the embedded default's generated Valkey password and keys")
    rotate.add_argument("--valkey-url", default=None, help="default: $VALKEY_URL")
    for admin_command in (link, invite, create, key_sub.choices["list"], revoke):
        admin_command.add_argument("--url", default=_URL)
        admin_command.add_argument("--api-key", default=None,
                                   help="an admin API key (else found like `chat` finds one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        from switchboard_cli.up import default_data_dir, run_up

        return run_up(args.data_dir or default_data_dir(), args.port,
                      restart_crashed=not args.no_restart)
    if args.command == "chat":
        from switchboard_cli.chat import run_chat_cli

        return int(run_chat_cli(args.url, client_id=args.client, org=args.org, user=args.user,
                                api_key=args.api_key))
    if args.command == "ingest":
        return _ingest(args)
    if args.command == "nats-config":
        from switchboard_cli.natsconf import authorization

        sys.stdout.write(authorization())
        return 0
    if args.command == "nats-streams":
        from switchboard_cli.nats_streams import run_nats_streams

        return run_nats_streams()
    if args.command == "rotate-secrets":
        from switchboard_cli.rotate import run_rotate
        from switchboard_common.secretbox import SecretBox

        if args.new_key and args.data_dir is not None:
            from switchboard_cli.embedded_secrets import add_secrets_key

            add_secrets_key(args.data_dir)
            print(f"a new key is first in {args.data_dir}/secrets/credentials.json: restart, "
                  "then run rotate-secrets --data-dir again to re-encrypt")
            return 0
        if args.new_key:
            print(SecretBox.generate_key())
            return 0
        return run_rotate(args.data_dir, args.valkey_url)
    from switchboard_cli.admin import run_admin

    command = f"keys-{args.keys_command}" if args.command == "keys" else args.command
    options = {k: v for k, v in vars(args).items() if k not in ("command", "url", "api_key")}
    return run_admin(command, args.url, args.api_key, **options)


def _ingest(args: argparse.Namespace) -> int:
    from switchboard_cli.apikey import find_api_key, missing_key_message
    from switchboard_cli.ingest import run_ingest

    dev = bool(args.org and args.user)
    key = None if dev else find_api_key(args.api_key)
    if key is None and not dev:
        print(missing_key_message(), file=sys.stderr)
        return 2
    return run_ingest(args.url, args.client, args.file, api_key=key, org=args.org,
                      user=args.user, batch=args.batch, wait=not args.no_wait)


if __name__ == "__main__":
    sys.exit(main())
