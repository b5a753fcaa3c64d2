"""The gateway's own schemas for the web app's generated TypeScript types.

`python -m switchboard_gateway.webtypes web/src/gen` writes `openapi.json` (the REST API, as
served at /openapi.json) and `frames.json` (every WebSocket frame, both directions); the web
app's `npm run gen:types` turns them into `api.ts` and `frames.ts`. A test regenerates all four
and fails when the committed ones differ, so the page and the server cannot drift."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from switchboard_gateway.domain.protocol import ClientMessage, ServerFrame
from switchboard_gateway.main import create_app
from switchboard_gateway.settings import Settings


def openapi() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def frames() -> dict[str, Any]:
    """One document whose `$defs` hold every frame model plus the two unions, so the
    generator names each type after its model."""
    client = TypeAdapter(ClientMessage).json_schema(ref_template="#/$defs/{model}")
    server = TypeAdapter(ServerFrame).json_schema(mode="serialization",
                                                  ref_template="#/$defs/{model}")
    server_defs = server.pop("$defs")
    for schema in server_defs.values():
        # The server writes every field of a frame (defaults included), so the page may rely
        # on all of them being present.
        if "properties" in schema:
            schema["required"] = sorted(schema["properties"])
    defs = {**client.pop("$defs"), **server_defs}
    defs["ClientFrame"] = {"title": "ClientFrame", **client}
    defs["ServerFrame"] = {"title": "ServerFrame", **server}
    return {"title": "Frames", "type": "object", "additionalProperties": False,
            "properties": {"client": {"$ref": "#/$defs/ClientFrame"},
                           "server": {"$ref": "#/$defs/ServerFrame"}},
            "$defs": defs}


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in (("openapi.json", openapi()), ("frames.json", frames())):
        path = out / name
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", "utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written in write(Path(sys.argv[1] if len(sys.argv) > 1 else "web/src/gen")):
        sys.stdout.write(f"{written}\n")
