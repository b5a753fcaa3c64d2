"""The canary watch on a streamed answer (pure): context places a marker in the system prompt;
an answer that repeats it, or the start of any sentence of our fixed instructions
(`ModelRequest.leak_markers`), is reciting the prompt (LLM07, system prompt leakage), so nothing
from there on reaches the client.

The watch holds back only the end of what it has seen that could still grow into a marker (the
longest suffix that is a marker's prefix), so a marker split over several pieces is caught before
any of it is forwarded while ordinary text goes out at once, token by token; the held text goes
out with the next piece (or when the answer ends). The comparison ignores case, so a model asked to
"shout" the prompt is caught as well."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import lru_cache

from switchboard_common.model import ModelRequest
from switchboard_llm_stream.domain.images import ImageFilter
from switchboard_llm_stream.domain.provider import Completion, Provider, Queued, TextStream

WITHHELD_NOTICE = "\n\n(Part of this answer was withheld: it repeated confidential instructions.)"


def _prefixes(markers: tuple[str, ...]) -> frozenset[str]:
    """Every proper prefix of every marker: a tail in this set may still become a marker. The
    fixed instructions' markers are the same in every request, so their set is built once; only
    the per-request canary's few prefixes are built per turn."""
    return frozenset(m[:n] for m in markers for n in range(1, len(m)))


_fixed_prefixes = lru_cache(maxsize=16)(_prefixes)


class CanaryWatch:
    def __init__(self, canary: str, *more: str) -> None:
        self._markers = [m.lower() for m in (canary, *more) if m]
        self._keep = max((len(m) for m in self._markers), default=1) - 1
        self._fixed = _fixed_prefixes(tuple(m.lower() for m in more if m))
        self._own = _prefixes((canary.lower(),)) if canary else frozenset()
        self._held = ""
        self.shown: list[str] = []
        """Everything forwarded so far (the answer as the client saw it)."""
        self.hit = False

    def feed(self, piece: str) -> str:
        """What of `piece` may be forwarded now ("" once the canary was seen)."""
        if self.hit:
            return ""
        text = self._held + piece
        lowered = text.lower()
        found = min((i for m in self._markers if (i := lowered.find(m)) >= 0), default=-1)
        if found >= 0:
            self.hit = True
            self._held = ""
            return self._show(text[:found])
        cut = len(text) - self._open_tail(lowered)
        self._held = text[cut:]
        return self._show(text[:cut])

    def _open_tail(self, lowered: str) -> int:
        """Length of the longest suffix of `lowered` that is a proper prefix of a marker."""
        for n in range(min(self._keep, len(lowered)), 0, -1):
            tail = lowered[-n:]
            if tail in self._own or tail in self._fixed:
                return n
        return 0

    def flush(self) -> str:
        """At the end of the answer: the held tail (it cannot start a canary any more)."""
        tail, self._held = ("" if self.hit else self._held), ""
        return self._show(tail)

    def _show(self, text: str) -> str:
        if text:
            self.shown.append(text)
        return text

    @property
    def text(self) -> str:
        """The answer to keep: what was shown, plus a notice when the rest was withheld."""
        return "".join(self.shown) + (WITHHELD_NOTICE if self.hit else "")


class _Watched:
    """A provider's text stream seen through the canary watch (when the request has a canary),
    then the image filter. The completion's text becomes what the client was shown."""

    def __init__(self, inner: TextStream, watch: CanaryWatch | None) -> None:
        self._inner = inner
        self._watch = watch
        self._images = ImageFilter()
        self._shown: list[str] = []
        self.completion: Completion = inner.completion

    def _out(self, text: str) -> str:
        shown = self._images.feed(text) if text else ""
        if shown:
            self._shown.append(shown)
        return shown

    async def __aiter__(self) -> AsyncIterator[str | Queued]:
        watch = self._watch
        async for piece in self._inner:
            if isinstance(piece, Queued):  # no text: nothing to watch
                yield piece
            elif shown := self._out(watch.feed(piece) if watch else piece):
                yield shown
        tail = self._out(watch.flush() if watch else "")
        for last in (self._images.flush(), WITHHELD_NOTICE if watch and watch.hit else ""):
            if last:
                self._shown.append(last)
                tail += last
        if tail:
            yield tail
        hit = watch is not None and watch.hit
        # The provider fills its completion while streaming: take it (and correct it) last.
        self.completion = self._inner.completion
        if hit or self._images.removed:
            self.completion.text_parts = ["".join(self._shown)]
            self.completion.flagged = hit


def watched(provider: Provider, request: ModelRequest
            ) -> AbstractAsyncContextManager[TextStream]:
    """`provider.stream(request)` as the client may see it: watched for the request's canary
    when it has one, remote images removed; only for answers (a summary streams nothing)."""
    if request.purpose != "answer":
        return provider.stream(request)

    @asynccontextmanager
    async def run() -> AsyncIterator[TextStream]:
        async with provider.stream(request) as text:
            yield _Watched(text, CanaryWatch(request.canary, *request.leak_markers)
                           if request.canary or request.leak_markers else None)

    return run()
