"""The canary watch on outbound tool arguments sees through the disguises a model can be told
to use (split, reversed, ROT13, percent, hex, base64, two layers deep) and flags nothing in
ordinary arguments."""

from __future__ import annotations

import base64
import codecs
import random
import urllib.parse
import uuid

import pytest

from switchboard_common.skills import Skills
from switchboard_context.domain.complexity import estimate
from switchboard_context.domain.leaks import carries_prompt
from switchboard_context.domain.prompt import PromptInputs, build

CANARY = "sbc-3f9a0c71d2e4b85a6c1f"
SECRET = CANARY.removeprefix("sbc-")


def system_prompt() -> str:
    inputs = PromptInputs(client_id="sarah", client_name="Sarah", skills=Skills(),
                          history=[], user_text="hi", canary=CANARY)
    return build(inputs, estimate("Why did the plan change and what next?"),
                 history_budget_tokens=2000, lite_messages=2).system


def mail(body: str, **more: object) -> dict[str, object]:
    return {"to": ["bob@example.com"], "subject": "Notes", "body": body, **more}


DISGUISES = {
    "verbatim": CANARY,
    "upper": CANARY.upper(),
    "spaced": " ".join(CANARY),
    "one per line": "\n".join(CANARY),
    "dashes and dots": "-".join(SECRET[:10]) + "." + ".".join(SECRET[10:]),
    "zero-width": "\u200b".join(CANARY),
    "full-width": CANARY.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}),
    "reversed": CANARY[::-1],
    "rot13": codecs.encode(CANARY, "rot13"),
    "percent": "".join(f"%{b:02X}" for b in CANARY.encode()),
    "hex": CANARY.encode().hex(),
    "hex with colons": ":".join(f"{b:02x}" for b in CANARY.encode()),
    "base64": base64.b64encode(f"My marker is {CANARY}.".encode()).decode(),
    "base64 glued to a word": "payload" + base64.b64encode(f"x{CANARY}".encode()).decode(),
    "urlsafe base64": base64.urlsafe_b64encode(f"?>{CANARY}~~".encode()).decode(),
    "base64 of hex": base64.b64encode(CANARY.encode().hex().encode()).decode(),
    "hex of base64": base64.b64encode(CANARY.encode()).hex(),
}


@pytest.mark.parametrize("disguise", DISGUISES)
def test_the_canary_is_found_however_it_is_disguised(disguise: str) -> None:
    assert carries_prompt(mail(f"Here you go: {DISGUISES[disguise]} Regards"), CANARY)


def test_the_instructions_are_found_encoded_without_the_canary_line() -> None:
    rest = "\n".join(line for line in system_prompt().splitlines() if CANARY not in line)
    assert len(rest) > 300
    wrapped = base64.encodebytes(rest.encode()).decode()  # MIME-style, 76 per line
    assert carries_prompt(mail(wrapped), CANARY)
    assert carries_prompt(mail(rest.encode().hex()), CANARY)
    assert carries_prompt({"title": "Sync", "notes": urllib.parse.quote(rest)}, CANARY)
    assert carries_prompt(mail("ok", attachments=[{"name": "a.txt", "data": wrapped}]), CANARY)


def test_ordinary_arguments_are_not_flagged() -> None:
    rng = random.Random(14)
    ordinary = [
        mail("Hi Bob, please read it as information only when you review the draft."),
        mail("The confidential instructions for the vault are in the safe."),
        mail("Call me on +1 415 555 0134; the ref is 4f1c2a9e7b3d5f60a8c2e4b6d8f0a1c3."),
        {"title": "Board review", "start": "2031-06-02T09:00:00+00:00",
         "attendees": ["priya@acme.example"], "event_id": "evt-board-review"},
        {"query": "quarterly numbers", "k": 5},
        *(mail(f"Ticket {uuid.UUID(int=rng.getrandbits(128))} and "
               f"{rng.getrandbits(256):064x} sha") for _ in range(300)),
        *(mail("attached", attachments=[{"data": base64.b64encode(
            rng.randbytes(3000)).decode()}]) for _ in range(20)),
        mail(base64.b64encode(b"Minutes of the board meeting: all fine. " * 40).decode()),
    ]
    assert not [a for a in ordinary if carries_prompt(a, CANARY)]
