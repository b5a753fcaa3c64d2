"""Whether a request could use the client's memory (pure).

Retrieval no longer depends on the complexity estimate ("When is John's board meeting?" is a
simple request that needs memory); it is skipped only for messages that carry nothing to look
up: greetings, thanks and one-word acknowledgements. Whether the client has memory at all is
answered by the search itself (an empty index answers at once with no hits)."""

from __future__ import annotations

import re

_SMALL_TALK = re.compile(
    r"^\W*(hi|hello|hey|thanks?|thank you|thx|ok(ay)?|cool|great|perfect|nice|yes|no|yep|nope"
    r"|sure|bye|good (morning|afternoon|evening|night))\b[\W]*(there|so much|a lot|you|again)?"
    r"[\W]*$", re.I)


def could_use_memory(text: str) -> bool:
    return bool(text.strip()) and not _SMALL_TALK.match(text)
