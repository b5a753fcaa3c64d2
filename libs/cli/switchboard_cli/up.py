"""`switchboard up`: run the whole system on embedded servers until Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from types import FrameType

from switchboard_cli.bootstrap import bootstrap
from switchboard_cli.stack import SERVICES, start_stack

log = logging.getLogger("switchboard")


def default_data_dir() -> Path:
    return Path(os.environ.get("SWITCHBOARD_DATA_DIR", ".switchboard/data")).resolve()


def run_up(data_dir: Path, gateway_port: int | None, restart_crashed: bool = True) -> int:
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    stack = start_stack(data_dir, gateway_port=gateway_port)
    try:
        stack.wait_ready(timeout_s=180)
        first = bootstrap(stack.store_url, data_dir, stack.gateway_url)
    except Exception as exc:
        print(f"Switchboard failed to start: {exc}", flush=True)
        stack.stop()
        return 1
    model = ("Anthropic Claude (ANTHROPIC_API_KEY is set)" if os.environ.get("ANTHROPIC_API_KEY")
             else "local " + os.environ.get("LLM_STREAM_LOCAL_MODEL", "qwen2.5-coder-1.5b")
             + " (set ANTHROPIC_API_KEY to use Claude)")
    print(
        f"\nSwitchboard is up.\n"
        f"  sign in   : {first.link}\n"
        f"              (one-time link for {first.admin!r} of org {first.org!r}"
        f"{', created now' if first.created else ''}; a new one: switchboard signin-link)\n"
        f"  web app   : {stack.gateway_url}/\n"
        f"  terminal  : switchboard chat --url {stack.gateway_url.replace('http', 'ws')}/ws"
        f"   (API key in {first.key_file})\n"
        f"  API docs  : {stack.gateway_url}/docs\n"
        f"  NATS      : {stack.env['NATS_URL']}   Valkey: {stack.env['VALKEY_URL']}"
        f"   (one NATS user per service; passwords in {data_dir / 'secrets'})\n"
        f"  tools     : CalDAV {stack.env.get('ACTION_EXECUTOR_CALDAV_URL', '(configured)')}"
        f"   SMTP port {stack.env.get('ACTION_EXECUTOR_SMTP_PORT', '(configured)')}"
        f" (mail kept in {data_dir / 'mail'})\n"
        f"  model     : {model}\n"
        f"  probes    : /healthz /readyz /metrics on "
        f"{'  '.join(f'{n} {u}' for n, u in stack.probe_urls.items())}\n"
        f"  data, logs: {data_dir}\n"
        f"Press Ctrl-C to stop.\n", flush=True,
    )
    restarts: dict[str, float] = {}
    while not stopping:
        time.sleep(0.2)
        for name in SERVICES:
            proc = stack.procs[name]
            if proc.poll() is None or stopping or not restart_crashed:
                continue
            # Back off so a service that cannot start does not spin.
            if time.monotonic() - restarts.get(name, 0.0) < 2.0:
                continue
            print(f"{name} exited with {proc.returncode}; restarting "
                  f"(log: {stack.log_dir / (name + '.log')})", flush=True)
            restarts[name] = time.monotonic()
            stack.start_service(name)
    print("Stopping: draining services, then Valkey and NATS ...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return 0
