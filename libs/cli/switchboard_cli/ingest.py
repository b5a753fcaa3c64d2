"""`switchboard ingest FILE --client ID`: upload events (JSON Lines, one event per line) to a
client's memory in batches, with a progress bar on stderr; then follow the batches
(`GET /v1/clients/<client>/ingest/<batch>`) with a second bar that finishes when every event is
searchable (or failed, or was forgotten meanwhile). `--no-wait` stops after the upload.

Each line: {"event_id": "...", "source": "email|document|calendar|note|crm", "text": "...",
"title": "...", "occurred_at": "2026-10-01T09:00:00Z", "visibility": "client|private"}.
Re-running the same file is safe: event ids make the upload idempotent."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from switchboard_cli.apikey import auth_headers

BAR = 30


POLL_S = 0.5


def _bar(done: int, total: int, started: float, what: str = "events") -> str:
    filled = BAR * done // max(total, 1)
    rate = done / max(time.monotonic() - started, 1e-6)
    return (f"\r[{'#' * filled}{'.' * (BAR - filled)}] {done}/{total} {what} "
            f"({rate:.0f}/s)")


def read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    with path.open() as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
    return events


def run_ingest(url: str, client_id: str, path: Path, *, api_key: str | None = None,
               org: str | None = None, user: str | None = None, batch: int = 100,
               out: TextIO = sys.stderr, wait: bool = True, wait_s: float = 600.0) -> int:
    """Upload, then (with `wait`) follow indexing until every event is searchable. Returns 0
    on success, 1 when the server refused a batch (the reason is shown), an event failed to
    index, or indexing did not finish within `wait_s`."""
    try:
        events = read_events(path)
    except (OSError, ValueError) as exc:
        print(f"cannot read events: {exc}", file=out)
        return 1
    accepted = duplicates = 0
    batches: list[str] = []
    started = time.monotonic()
    headers = auth_headers(api_key, org, user)
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as http:
        for start in range(0, len(events), batch):
            chunk = events[start:start + batch]
            response = http.post(f"/v1/clients/{client_id}/events", json={"events": chunk})
            if response.status_code == 401:
                print(f"\nthe gateway refused the credential: {response.json()['detail']}",
                      file=out)
                return 1
            if response.status_code != 202:
                detail = response.json().get("detail", response.text)
                print(f"\nbatch starting at event {start + 1} refused "
                      f"({response.status_code}): {detail}", file=out)
                return 1
            body = response.json()
            accepted += body["accepted"]
            duplicates += body["duplicates"]
            batches.append(body["batch_id"])
            out.write(_bar(start + len(chunk), len(events), started))
            out.flush()
        print(f"\n{accepted} events queued for indexing, {duplicates} already known.",
              file=out)
        if not wait or not accepted:
            return 0
        return _follow(http, client_id, batches, accepted, out, wait_s)


def _follow(http: httpx.Client, client_id: str, batches: list[str], accepted: int,
            out: TextIO, wait_s: float) -> int:
    """Poll the batches' status until all are done; one bar over every accepted event."""
    started = time.monotonic()
    while True:
        totals = {"indexed": 0, "failed": 0, "forgotten": 0}
        done = True
        for batch in batches:
            response = http.get(f"/v1/clients/{client_id}/ingest/{batch}")
            response.raise_for_status()
            status = response.json()
            done &= status["done"]
            for key in totals:
                totals[key] += status[key]
        out.write(_bar(sum(totals.values()), accepted, started, "searchable"))
        out.flush()
        if done:
            print(f"\n{totals['indexed']} events searchable, {totals['failed']} failed, "
                  f"{totals['forgotten']} forgotten before indexing.", file=out)
            return 1 if totals["failed"] else 0
        if time.monotonic() - started > wait_s:
            print(f"\nindexing not finished after {wait_s:.0f} s; re-run later to check "
                  "(the upload is idempotent).", file=out)
            return 1
        time.sleep(POLL_S)
