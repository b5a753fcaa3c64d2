"""Loop stop for the local model (pure). A repetition penalty makes loops rarer but small
models still fall into them (an e-mail draft that ended in ~130 lines of "[Your Position]"),
so the generated text is also watched: the answer stops as soon as it repeats itself.

Two signals, both cheap per token:
- the tail of the text is the same block of 8..`max_period` characters three times over;
- one non-trivial line (12+ characters) has appeared `max_line_repeats` times.
"""

from __future__ import annotations

from collections import Counter


class LoopGuard:
    def __init__(self, max_period: int = 160, max_line_repeats: int = 3) -> None:
        self._max_period = max_period
        self._max_lines = max_line_repeats
        self._text = ""
        self._lines: Counter[str] = Counter()
        self._line_start = 0

    def looping(self, piece: str) -> bool:
        """Add a piece of text; True when the text now repeats itself."""
        self._text += piece
        text = self._text
        if "\n" in piece:
            *done, _ = text[self._line_start:].split("\n")
            for line in done:
                if len(key := line.strip()) >= 12:
                    self._lines[key] += 1
                    if self._lines[key] >= self._max_lines:
                        return True
            self._line_start = text.rfind("\n") + 1
        n = len(text)
        for period in range(8, min(self._max_period, n // 3) + 1):
            tail = text[n - period:]
            if (text[n - 2 * period:n - period] == tail
                    and text[n - 3 * period:n - 2 * period] == tail):
                return True
        return False
