"""The canary watch on a streamed answer (pure): context places a marker in the system prompt;
an answer that repeats it, or the start of any sentence of our fixed instructions
(`ModelRequest.leak_markers`), is reciting the prompt (LLM07, system prompt leakage), so nothing
from there on reaches the client.

The watch holds back only the end of what it has seen that could still grow into a marker (the
longest suffix that is a marker's prefix), so a marker split over several pieces is caught before
any of it is forwarded while ordinary text goes out at once, token by token; the held text goes
out with the next piece (or when the answer ends). The comparison ignores case, so a model asked to
"shout" the prompt is caught as well, and the canary's random part is also found spelled out
(split by spaces, dashes, dots or one character per line, full-width): then only what came
before its first character is shown. An answer that carries the prompt base64- or hex-encoded
is caught too: a long run of that alphabet is held until it ends and then decoded."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import lru_cache

from switchboard_common.disguise import PromptFinder, canary_secret
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


@lru_cache(maxsize=16)
def _fixed_pattern(markers: tuple[str, ...]) -> re.Pattern[str] | None:
    """One search for all the fixed markers: its match starts where the leftmost of them
    does (the same in every request, so compiled once)."""
    return re.compile("|".join(map(re.escape, markers))) if markers else None


class CanaryWatch:
    def __init__(self, canary: str, *more: str) -> None:
        self._canary = canary.lower()
        fixed = tuple(m.lower() for m in more if m)
        self._keep = max((len(m) for m in (self._canary, *fixed) if m), default=1) - 1
        self._fixed = _fixed_prefixes(fixed)
        self._find_fixed = _fixed_pattern(fixed)
        self._firsts = frozenset(m[0] for m in (self._canary, *fixed) if m)
        self._own = _prefixes((self._canary,)) if canary else frozenset()
        # The canary's random part (its longest run of letters and digits) is also matched with
        # everything else removed: an answer told to spell it out with spaces, dashes or one
        # character per line. Random, so this costs no false positive; the words of the
        # instructions are not matched that way (they would be ordinary phrases).
        self._secret = canary_secret(canary)
        self._runs = EncodedRuns(PromptFinder(canary, (canary, *more)))
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
        found = []
        if self._canary and (at := lowered.find(self._canary)) >= 0:
            found.append(at)
        if self._find_fixed is not None and (fixed := self._find_fixed.search(lowered)):
            found.append(fixed.start())
        cut = len(text) - self._open_tail(lowered)
        # The letters and digits alone; where each is in `text` only when needed (rarely).
        if self._secret and (self._secret in (flat := _letters(text))
                             or self._open_spelled(flat)):
            flat, where = _spelled(text)
            if (k := flat.find(self._secret)) >= 0:
                found.append(where[k])
            if n := self._open_spelled(flat):
                cut = min(cut, where[len(flat) - n])
        encoded, open_run = self._runs.check(text)
        found.extend(encoded)
        cut = min(cut, open_run)
        if found:
            self.hit = True
            self._held = ""
            return self._show(text[:min(found)])
        self._held = text[cut:]
        return self._show(text[:cut])

    def _open_spelled(self, flat: str) -> int:
        """Length of the longest tail of `flat` that starts the secret (held, since the next
        piece may complete it)."""
        # Only where the secret's first character occurs can such a tail start (rarely).
        start = flat.find(self._secret[0], max(len(flat) - len(self._secret) + 1, 0))
        while start >= 0:
            if self._secret.startswith(flat[start:]):
                return len(flat) - start
            start = flat.find(self._secret[0], start + 1)
        return 0

    def _open_tail(self, lowered: str) -> int:
        """Length of the longest suffix of `lowered` that is a proper prefix of a marker."""
        firsts = self._firsts
        for n in range(min(self._keep, len(lowered)), 0, -1):
            if lowered[-n] in firsts:  # a marker's prefix starts with a marker's first character
                tail = lowered[-n:]
                if tail in self._own or tail in self._fixed:
                    return n
        return 0

    def flush(self) -> str:
        """At the end of the answer: the held tail (it cannot start a canary any more), unless
        it ends an encoded run that carries the prompt."""
        tail, self._held = ("" if self.hit else self._held), ""
        if tail and self._runs.check(tail, ended=True)[0]:
            self.hit = True
            return ""
        return self._show(tail)

    def _show(self, text: str) -> str:
        if text:
            self.shown.append(text)
            self._runs.shown(text)
        return text

    @property
    def text(self) -> str:
        """The answer to keep: what was shown, plus a notice when the rest was withheld."""
        return "".join(self.shown) + (WITHHELD_NOTICE if self.hit else "")


class EncodedRuns:
    """Runs of the base64 alphabet (hex included) in the answer: a model told to answer with
    its prompt encoded. A run is judged when it ends (decoded by `switchboard_common.disguise`);
    from `HOLD_FROM` characters on, an open run is held until then. The few characters shown
    before that decode to at most a few bytes: never a whole marker or the canary."""

    HOLD_FROM = 8
    JUDGE_FROM = 16

    def __init__(self, finder: PromptFinder) -> None:
        self._finder = finder
        self._shown_run = ""
        """The open run's characters already shown (fewer than HOLD_FROM)."""

    def check(self, text: str, ended: bool = False) -> tuple[list[int], int]:
        """Where finished runs carrying the prompt start in `text`, and where the open run
        that must be held starts (`len(text)` when none)."""
        context = self._shown_run + text
        offset = len(self._shown_run)
        found: list[int] = []
        hold = len(text)
        if not _LONG_RUN.search(context):  # the common case: words, numbers, short ids
            return found, hold
        for run in _RUN.finditer(context):
            start = max(run.start() - offset, 0)
            if run.end() == len(context) and not ended:
                if len(run.group()) >= self.HOLD_FROM:
                    hold = start
            elif len(run.group()) >= self.JUDGE_FROM and self._finder.found_in(run.group()):
                found.append(start)
        return found, hold

    def shown(self, text: str) -> None:
        trailing = _TRAILING_RUN.search(text) if _RUN.match(text[-1]) else None
        if trailing is None:
            self._shown_run = ""
        elif trailing.start() == 0:
            self._shown_run += text
        else:
            self._shown_run = trailing.group()


_ALPHABET = "[A-Za-z0-9+/=_-]"
"""base64's, both variants (hex is a part of it)."""
_RUN = re.compile(_ALPHABET + "+")
_TRAILING_RUN = re.compile(_ALPHABET + "+$")
_LONG_RUN = re.compile(_ALPHABET + f"{{{EncodedRuns.HOLD_FROM},}}")


def _letters(text: str) -> str:
    if text.isascii():
        return _NOT_ALNUM.sub("", text.lower())
    return _spelled(text)[0]


_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _spelled(text: str) -> tuple[str, list[int]]:
    """The letters and digits of `text` (lower case, full-width and other compatibility forms
    folded), and where each one is in `text`."""
    flat: list[str] = []
    where: list[int] = []
    for i, char in enumerate(text):
        folded = char.lower() if char.isascii() else unicodedata.normalize("NFKC", char).lower()
        for c in folded:
            if c.isascii() and c.isalnum():
                flat.append(c)
                where.append(i)
    return "".join(flat), where


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
