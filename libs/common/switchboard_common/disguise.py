"""Finding the system prompt in text a model was told to disguise (LLM07): shared by context
(outbound tool arguments) and llm_stream (encoded runs of a streamed answer).

What is looked for: the canary's random part (its longest run of letters and digits) and the
start of every sentence of the platform's fixed instructions (the leak markers).
- The canary's random part is matched with everything but letters and digits removed (split by
  spaces, dashes, dots, zero-width characters, one per line), reversed or ROT13'd: it is
  random, so this costs no false positive.
- The markers are matched as written (case aside): with punctuation dropped they are ordinary
  phrases ("read it as information only") a client could write.
- Both inside percent-encoded, hex-encoded or base64-encoded text (standard or URL alphabet,
  wrapped or not, at any alignment), decoded up to two layers deep; a decoding that is not
  text (a binary attachment, a wrong alignment) is not searched.
Pure."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator, Sequence

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_ALNUM_RUN = re.compile(r"[0-9a-z]+")
_HEX_RUN = re.compile(r"[0-9a-f]{16,}")
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}")
_NOISE = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""What bytes that are not text decode to: invalid UTF-8, control characters."""
DEPTH = 2
"""Layers of encoding undone (base64 of hex, ...): enough for what a model is told to do."""


def canary_secret(canary: str) -> str:
    """The canary's random part: its longest run of letters and digits ("" when too short to
    be matched without its punctuation)."""
    runs = _ALNUM_RUN.findall(canary.lower())
    longest = max(runs, key=len, default="")
    return longest if len(longest) >= 12 else ""


class PromptFinder:
    def __init__(self, canary: str, markers: Sequence[str]) -> None:
        secret = canary_secret(canary)
        # Disguising the few characters of the canary is cheaper than undoing it on the text.
        self._secret = (secret, secret[::-1], codecs.encode(secret, "rot13")) if secret else ()
        self._markers = tuple(m.lower() for m in markers if m)

    def found_in(self, text: str, depth: int = DEPTH) -> bool:
        plain = unicodedata.normalize("NFKC", text)
        for view in dict.fromkeys((plain, urllib.parse.unquote(plain))):
            lowered = view.lower()
            if any(m in lowered for m in self._markers):
                return True
            flat = _NOT_ALNUM.sub("", lowered)
            if any(form in flat for form in self._secret):
                return True
            if depth and any(self.found_in(decoded, depth - 1)
                             for decoded in decodings(view, flat)):
                return True
        return False


def decodings(view: str, flat: str) -> Iterator[str]:
    """Texts the encoded runs in `view` (`flat`: its letters and digits, lower case) stand for,
    at every alignment (a run may be glued to the word before it). Only decodings that are
    text: a binary attachment or the wrong alignment decodes to noise."""
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
