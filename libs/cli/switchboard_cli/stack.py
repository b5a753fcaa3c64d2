"""The whole system as local processes: NATS, Valkey and the five services, each its own OS
process, all on loopback, all data under one directory. Used by `switchboard up` and by the
integration tests (which kill and restart single services)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from switchboard_cli.bootstrap import session_secret
from switchboard_cli.embedded import (
    ServerProcess,
    free_port,
    start_nats,
    start_radicale,
    start_smtp,
    start_valkey,
)
from switchboard_cli.embedded_secrets import EmbeddedSecrets, load_or_create
from switchboard_cli.nats_streams import declare_streams_now
from switchboard_common.permissions import ADMIN

log = logging.getLogger(__name__)

SERVICES = ("memory_indexer", "action_executor", "llm_stream", "context", "gateway")
"""Start order: consumers first, the edge last, so the gateway is ready when it is reachable."""

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If the supervisor is killed (even with SIGKILL) its children get SIGTERM: no orphans.
    # The kernel ties this to the *thread* that forked: start services from a long-lived
    # thread (the main one), never from a pool thread that may exit.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    gateway_url: str
    nats: ServerProcess | None = None
    valkey: ServerProcess | None = None
    tool_servers: list[ServerProcess] = field(default_factory=list)
    """Embedded CalDAV and SMTP servers the action_executor's tools talk to."""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    probe_urls: dict[str, str] = field(default_factory=dict)
    persist: bool = True
    """Whether the embedded Valkey keeps its data on disk (restarts keep the same choice)."""
    """Where each service answers /healthz, /readyz and /metrics (the gateway on its port)."""
    secrets: EmbeddedSecrets | None = None
    """Generated credentials when this stack started its own NATS and Valkey: each service
    process gets only its own NATS user."""
    log_dir: Path = field(init=False)

    @property
    def store_url(self) -> str:
        """VALKEY_URL with the generated password in it, for tools and tests that seed data
        (the services get the password separately, in VALKEY_PASSWORD)."""
        url = self.env["VALKEY_URL"]
        if self.secrets is None:
            return url
        return url.replace("redis://", f"redis://:{quote(self.secrets.valkey, safe='')}@", 1)

    def __post_init__(self) -> None:
        self.log_dir = self.data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def start_service(self, name: str) -> subprocess.Popen[bytes]:
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        env = {**self.env, **(self.secrets.service_env(name) if self.secrets else {})}
        proc = subprocess.Popen(
            [sys.executable, "-m", f"switchboard_{name}"], env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )
        out.close()
        self.procs[name] = proc
        return proc

    def kill_service(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(30)

    def permission_violations(self) -> list[str]:
        """Lines of the services' logs where NATS refused something a service tried: each
        means its role (switchboard_common.permissions) lacks a subject it uses."""
        found = []
        for name in self.procs:
            log_file = self.log_dir / f"{name}.log"
            if log_file.exists():
                found += [f"{name}: {line.strip()}" for line in
                          log_file.read_text(errors="replace").splitlines()
                          if "permissions violation" in line.lower()]
        return found

    def restart_valkey(self, down_s: float = 2.0) -> None:
        """Stop Valkey (it writes its data), wait `down_s`, start it again on the same port
        and data: an outage the services must ride out (recovery tests, operators' drills)."""
        assert self.valkey is not None, "Valkey was given by URL, not started here"
        self.valkey.stop()
        time.sleep(down_s)
        self.valkey = start_valkey(self.data_dir, self.valkey.port,
                                   self.log_dir / "valkey.log", persist=self.persist,
                                   password=self.secrets.valkey if self.secrets else None)

    def restart_nats(self, down_s: float = 2.0, *, wipe: bool = False) -> None:
        """The same for NATS (JetStream keeps its file store; memory streams start empty).
        `wipe`: it comes back with no store at all (a server without a persistent volume)."""
        assert self.nats is not None, "NATS was given by URL, not started here"
        self.nats.stop()
        time.sleep(down_s)
        if wipe:
            shutil.rmtree(self.data_dir / "nats", ignore_errors=True)
        self.nats = start_nats(self.data_dir, self.nats.port, self.log_dir / "nats.log",
                               passwords=self.secrets.nats if self.secrets else None)

    def not_ready(self) -> list[str]:
        """The services whose /readyz does not answer 200 now."""
        down = []
        for name, url in self.probe_urls.items():
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        continue
            except OSError:
                pass
            down.append(name)
        return down

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every service is alive and says ready on /readyz: then a turn can be
        served, memory search included (memory_indexer is ready once its model and index
        are loaded)."""
        deadline = time.monotonic() + timeout_s
        down = list(self.probe_urls)
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see "
                                       f"{self.log_dir / (name + '.log')}")
            down = self.not_ready()
            if not down:
                return
            time.sleep(0.1)
        raise TimeoutError(f"not ready within {timeout_s}s: {', '.join(down)}")

    def stop(self, grace_s: float = 15.0) -> None:
        """Services first (SIGTERM: they drain NATS and finish in-flight work), then Valkey
        (writes its dump) and NATS."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace_s
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs, killing it", name, grace_s)
                proc.kill()
                proc.wait()
        for server in (*self.tool_servers, self.valkey, self.nats):
            if server is not None:
                server.stop()


def start_stack(data_dir: Path, *, gateway_port: int | None = None, nats_url: str | None = None,
                valkey_url: str | None = None, env: dict[str, str] | None = None,
                services: tuple[str, ...] = SERVICES, persist: bool = True,
                well_known_ports: bool = True) -> Stack:
    """Start servers (unless URLs are given) and the services; does not wait for readiness.
    `well_known_ports` tries 4222/6379/8080 first (a laptop); tests pass False. Servers it
    starts require the credentials generated under `<data_dir>/secrets`; with URLs given,
    the caller passes credentials in `env` (or none, for open servers)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    nats = valkey = None
    secrets = load_or_create(data_dir) if nats_url is None and valkey_url is None else None
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if nats_url is None:
        port = 4222 if well_known_ports and port_free(4222) else None
        nats = start_nats(data_dir, port, log_dir / "nats.log",
                          passwords=secrets.nats if secrets else None)
        nats_url = nats.url
        if secrets is not None:
            # The services may create streams but not update them: an upgrade's changed
            # declarations are applied here, as the admin.
            declare_streams_now(nats_url, ADMIN, secrets.nats[ADMIN])
    if valkey_url is None:
        port = 6379 if well_known_ports and port_free(6379) else None
        valkey = start_valkey(data_dir, port, log_dir / "valkey.log", persist=persist,
                              password=secrets.valkey if secrets else None)
        valkey_url = valkey.url
    gateway_port = gateway_port or (8080 if well_known_ports and port_free(8080) else free_port())
    tool_servers, tool_env = _start_tool_servers(data_dir, log_dir, env or {})
    probe_env, probe_urls = _probe_ports(services, gateway_port)
    # The session secret lives in the data dir, so sign-ins survive a restart of the stack.
    child_env = {"GATEWAY_SESSION_SECRET": session_secret(data_dir),
                 **os.environ, **tool_env, **probe_env, "NATS_URL": nats_url,
                 "VALKEY_URL": valkey_url, "GATEWAY_PORT": str(gateway_port),
                 "PYTHONUNBUFFERED": "1", **(env or {})}
    if "OUTBOUND_ALLOW" in tool_env:  # already holds the caller's entries
        child_env["OUTBOUND_ALLOW"] = tool_env["OUTBOUND_ALLOW"]
    stack = Stack(data_dir, child_env, f"http://127.0.0.1:{gateway_port}", nats, valkey,
                  tool_servers=tool_servers, probe_urls=probe_urls, secrets=secrets,
                  persist=persist)
    try:
        for name in services:
            stack.start_service(name)
    except Exception:
        stack.stop()
        raise
    return stack


def _probe_ports(services: tuple[str, ...], gateway_port: int
                 ) -> tuple[dict[str, str], dict[str, str]]:
    """A free loopback port for each worker's probes server (they all default to 8081,
    which only works with one service per host, as in Kubernetes)."""
    env: dict[str, str] = {}
    urls: dict[str, str] = {}
    for name in services:
        if name == "gateway":
            urls[name] = f"http://127.0.0.1:{gateway_port}"
            continue
        port = free_port()
        env[f"{name.upper()}_HTTP_PORT"] = str(port)
        env[f"{name.upper()}_HTTP_HOST"] = "127.0.0.1"
        urls[name] = f"http://127.0.0.1:{port}"
    return env, urls


def _start_tool_servers(data_dir: Path, log_dir: Path, env: dict[str, str]
                        ) -> tuple[list[ServerProcess], dict[str, str]]:
    """CalDAV (Radicale) and SMTP (aiosmtpd, mail kept in `<data_dir>/mail`) on free loopback
    ports, unless the caller points the action_executor at servers of its own."""
    servers: list[ServerProcess] = []
    out: dict[str, str] = {}
    if "ACTION_EXECUTOR_CALDAV_URL" not in env and "ACTION_EXECUTOR_CALDAV_URL" not in os.environ:
        caldav = start_radicale(data_dir, log_file=log_dir / "caldav.log")
        servers.append(caldav)
        out["ACTION_EXECUTOR_CALDAV_URL"] = caldav.url
    if "ACTION_EXECUTOR_SMTP_PORT" not in env and "ACTION_EXECUTOR_SMTP_PORT" not in os.environ:
        smtp = start_smtp(data_dir, log_file=log_dir / "smtp.log")
        servers.append(smtp)
        out.update(ACTION_EXECUTOR_SMTP_HOST="127.0.0.1", ACTION_EXECUTOR_SMTP_PORT=str(smtp.port))
    if servers:
        # A client's connections may point at these loopback servers (nothing else on
        # loopback: not NATS, not Valkey); the operator's own entries are kept.
        own = [f"127.0.0.1:{s.port}" for s in servers]
        given = env.get("OUTBOUND_ALLOW", os.environ.get("OUTBOUND_ALLOW", ""))
        out["OUTBOUND_ALLOW"] = ",".join([e for e in given.split(",") if e.strip()] + own)
    return servers, out
