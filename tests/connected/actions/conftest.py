"""The action_executor in-process over real NATS and Valkey, with real tool servers: Radicale
(CalDAV) and aiosmtpd (SMTP, storing received mail in a Maildir)."""

from __future__ import annotations

import asyncio
import json
import mailbox
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from switchboard_action_executor.main import build_app
from switchboard_action_executor.settings import Settings
from switchboard_cli.embedded import ServerProcess, mail_dir, start_radicale, start_smtp
from switchboard_common.actions import ActionProposed, action_id_for
from switchboard_common.skills import Autonomy, Thresholds
from switchboard_common.tools import CATALOG


@pytest.fixture(scope="session")
def tool_servers(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[ServerProcess, ServerProcess, Path]]:
    data = tmp_path_factory.mktemp("tools")
    caldav = start_radicale(data)
    smtp = start_smtp(data)
    yield caldav, smtp, mail_dir(data)
    smtp.stop()
    caldav.stop()


def executor_settings(nats_url: str, valkey_url: str,
                      servers: tuple[ServerProcess, ServerProcess, Path], **kw: Any
                      ) -> Settings:
    caldav, smtp, _ = servers
    return Settings(nats_url=nats_url, valkey_url=valkey_url, caldav_url=caldav.url,
                    smtp_port=smtp.port, ack_wait_s=2, sweep_interval_s=0.2,
                    retry_backoff_s=0.05, **kw)


@pytest.fixture
async def executor(nats_url: str, valkey_url: str,
                   tool_servers: tuple[ServerProcess, ServerProcess, Path]
                   ) -> AsyncIterator[None]:
    app = build_app(executor_settings(nats_url, valkey_url, tool_servers))
    await app.start()
    yield
    # Stopped from a task of its own: run straight in pytest-asyncio's finalizer, the stop
    # occasionally never returned (not seen in the real process: tests/integration checks
    # that every service exits 0 on SIGTERM).
    await asyncio.wait_for(app.stop(), 15)


def proposal(org: str, tool: str, arguments: dict[str, Any], *, confidence: float | None = 0.95,
             mode: str = "automate", turn: str = "t1", call: str = "toolu_1",
             client: str = "sarah") -> ActionProposed:
    return ActionProposed(
        org_id=org, action_id=action_id_for(turn, 0, call), turn_id=turn, user_id="va1",
        client_id=client, tool_use_id=call, tool=tool, arguments=arguments,
        confidence=confidence, rationale="the user asked",
        autonomy=Autonomy.model_validate({"mode": mode, "default": Thresholds()}),
        enabled_tools=list(CATALOG))


async def propose(nc: Client, p: ActionProposed) -> None:
    await nc.jetstream().publish(f"actions.proposed.{p.org_id}", p.model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": f"action:{p.action_id}"})


def mails(box: Path) -> list[Any]:
    return list(mailbox.Maildir(box)) if box.exists() else []


def event_args(title: str, start: str = "2031-05-06T09:00:00+00:00") -> dict[str, Any]:
    return {"title": title, "start": start, "duration_minutes": 45}


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


SOON = timedelta(seconds=10)
