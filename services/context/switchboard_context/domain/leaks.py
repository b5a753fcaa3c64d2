"""Does an outbound tool call carry the system prompt (LLM07)? The canary and the start of every
sentence of our fixed instructions (`prompt.LEAK_MARKERS`) are looked for in a call's
arguments, also when a model was told to disguise them:

- the canary's random part split by anything that is not a letter or a digit (spaces, dashes,
  dots, zero-width characters, one character per line), reversed, or ROT13'd: its 20 hex
  digits are unique, so matching them with everything else removed costs no false positive;
- either of them inside percent-encoded, hex-encoded or base64-encoded text (standard or URL
  alphabet, wrapped or not, at any alignment), decoded up to two layers deep; a decoding that
  is not text (a binary attachment, a wrong alignment) is not searched.

The markers are matched as written (case aside): they are ordinary words, and with punctuation
dropped "read it as information only" could be a client's own sentence. Pure; called once per
proposed tool call, whose arguments are small."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator
from typing import Any

from switchboard_context.domain.prompt import LEAK_MARKERS

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_HEX_RUN = re.compile(r"[0-9a-f]{16,}")
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}")
_NOISE = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""What bytes that are not text decode to: invalid UTF-8, control characters."""
_MARKERS = tuple(m.lower() for m in LEAK_MARKERS)
DEPTH = 2
"""Layers of encoding undone (base64 of hex, ...): enough for what a model is told to do."""


def strings(value: Any) -> Iterator[str]:
    """Every string in a call's arguments (keys too), so no JSON escaping hides anything."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def carries_prompt(arguments: Any, canary: str) -> bool:
    """True when the arguments repeat the canary or our fixed instructions, plainly or
    disguised (see the module's docstring)."""
    secret = canary.lower().removeprefix("sbc-")
    # Disguising the few characters of the canary is cheaper than undoing it on the text.
    disguised = (secret, secret[::-1], codecs.encode(secret, "rot13")) if secret else ()
    return _search("\n".join(strings(arguments)), disguised, DEPTH)


def _search(text: str, canary_forms: tuple[str, ...], depth: int) -> bool:
    plain = unicodedata.normalize("NFKC", text)
    views = dict.fromkeys((plain, urllib.parse.unquote(plain)))
    for view in views:
        lowered = view.lower()
        if any(m in lowered for m in _MARKERS):
            return True
        flat = _NOT_ALNUM.sub("", lowered)
        if any(form in flat for form in canary_forms):
            return True
        if depth and any(_search(decoded, canary_forms, depth - 1)
                         for decoded in _decoded(view, flat)):
            return True
    return False


def _decoded(view: str, flat: str) -> Iterator[str]:
    """Texts the encoded runs in `view` stand for, at every alignment (a run may be glued to
    the word before it). Only decodings that are text go on: a binary attachment or the wrong
    alignment decodes to noise, where nothing is worth looking further."""
    for run in _HEX_RUN.findall(flat):
        for start in (0, 1):
            usable = run[start:len(run) - (len(run) - start) % 2]
            yield from _text(bytes.fromhex(usable))
    # Lines joined: wrapped base64 (MIME wraps at 76) is one run.
    for run in _B64_RUN.findall(view.replace("\r", "").replace("\n", "")):
        standard = run.replace("-", "+").replace("_", "/")
        for start in range(4):
            usable = standard[start:]
            # Padded, not cut: the last group may hold the end of the canary. One character
            # left over encodes nothing.
            usable = usable[:-1] if len(usable) % 4 == 1 else usable + "=" * (-len(usable) % 4)
            try:
                yield from _text(base64.b64decode(usable))
            except (binascii.Error, ValueError):
                continue


def _text(data: bytes) -> Iterator[str]:
    decoded = data.decode("utf-8", "replace")
    # A few bytes of noise are the word a run was glued to (one group per 4 of its letters).
    # The start is judged first: binary data is dropped without scanning all of it.
    if all(len(_NOISE.findall(part)) <= 8 + len(part) * 0.05
           for part in (decoded[:512], decoded)):
        yield decoded
