"""switchboard up | chat | ingest | nats-config"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
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
    chat.add_argument("--org", default="dev")
    chat.add_argument("--user", default="dev")

    ingest = sub.add_parser("ingest", help="upload events (JSON Lines) to a client's memory")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--client", required=True, help="the client (executive) id")
    ingest.add_argument("--url", default="http://127.0.0.1:8080")
    ingest.add_argument("--org", default="dev")
    ingest.add_argument("--user", default="dev")
    ingest.add_argument("--batch", type=int, default=100, help="events per request (<= 500)")

    sub.add_parser("nats-config", help="print nats-server's `authorization` block: one user "
                   "per service with the permissions of its role; passwords are read from "
                   "$NATS_PASSWORD_<USER> by the server")

    args = parser.parse_args(argv)
    if args.command == "up":
        from switchboard_cli.up import default_data_dir, run_up

        return run_up(args.data_dir or default_data_dir(), args.port,
                      restart_crashed=not args.no_restart)
    if args.command == "chat":
        from switchboard_cli.chat import run_chat_cli

        return int(run_chat_cli(args.url, client_id=args.client, org=args.org, user=args.user))
    if args.command == "ingest":
        from switchboard_cli.ingest import run_ingest

        return run_ingest(args.url, args.client, args.file, org=args.org, user=args.user,
                          batch=args.batch)
    if args.command == "nats-config":
        from switchboard_cli.natsconf import authorization

        sys.stdout.write(authorization())
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
