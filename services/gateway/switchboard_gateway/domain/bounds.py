"""Input bounds checked before parsing (pure): how deeply a JSON document nests.

Python's JSON parser recurses per level, so a small frame nested a thousand levels deep raises
RecursionError inside the reader (which used to drop the socket). The check runs on the raw
text: a fast path counts brackets (C speed; most frames cannot possibly be too deep), otherwise
one regex pass skips string literals and tracks the depth of `[`/`{`."""

from __future__ import annotations

import re

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


def too_deep(raw: str | bytes, limit: int) -> bool:
    """True when arrays/objects in `raw` nest more than `limit` levels (or the text is not
    JSON enough to tell: the parser then says what is wrong)."""
    data = raw.encode() if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    for match in _TOKENS.finditer(data):
        char = match.group()[0]
        if char in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif char != 0x22:  # a closing bracket (0x22 is `"`: a string literal, skipped)
            depth -= 1
    return False
