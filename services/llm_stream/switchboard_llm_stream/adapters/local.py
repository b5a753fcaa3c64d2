"""The embedded local model, run in-process with llama-cpp-python when no Anthropic key is
configured: Qwen2.5-Coder-1.5B-Instruct by default, 0.5B or SmolLM2-135M by setting
(`domain.local_models`; files from `adapters.model_files`).

llama.cpp generates synchronously, so each generation runs on the one thread of a private
executor: that thread owns the single model instance, which serializes generations (a queue,
not a lock held across awaits) and keeps them off the default executor. Pieces cross to the
event loop with `call_soon_threadsafe` into an asyncio.Queue. While a request waits for the
thread its stream yields `Queued` notices (position, repeated every `queue_notice_s`), so the
client knows why nothing arrives yet. When the consumer stops early (deadline, shutdown) the
generation sees `stop` at its next token and ends, freeing the model.

Tools (`domain.local_tools`): with tools offered, one generation first routes the request (a
tool name or none, each tool by its margin over none), then either writes one call's arguments
under the tool's JSON schema grammar (the completion ends with `tool_use`, nothing is
streamed) or streams a normal answer. A tool needing an e-mail address is offered only when
the turn names one; addresses nobody gave are dropped from the arguments, and a call left
without its recipient becomes an answer in words. All steps share one prompt prefix, which
llama.cpp evaluates once (`local_tools.layout`); each step is measured (`Step`, logged per
turn).
Answers use a repetition penalty and stop when the text repeats itself (`LoopGuard`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchboard_common.errors import ErrorCode
from switchboard_common.model import (
    ChatMessage,
    ModelRequest,
    ProviderFailure,
    ToolCall,
    ToolDef,
    ToolUseBlock,
)
from switchboard_common.turns import Usage
from switchboard_llm_stream.adapters.model_files import model_file
from switchboard_llm_stream.domain import local_tools
from switchboard_llm_stream.domain.errors import ProviderError
from switchboard_llm_stream.domain.local_models import LocalModel
from switchboard_llm_stream.domain.provider import Completion, Queued
from switchboard_llm_stream.domain.repetition import LoopGuard

log = logging.getLogger(__name__)

_CHARS_PER_TOKEN = 3  # conservative for English; only used to keep prompts inside n_ctx
_STOP = {"stop": "end_turn", "length": "max_tokens"}


def fit_window(messages: list[ChatMessage], budget_chars: int) -> list[ChatMessage]:
    """Drop the oldest messages until the rest fits, keeping the window starting on a user
    message; the newest message is always kept."""
    kept = list(messages)
    while len(kept) > 1 and sum(len(m.text) for m in kept) > budget_chars:
        kept.pop(0)
        while len(kept) > 1 and kept[0].role != "user":
            kept.pop(0)
    return kept


_DONE = object()
_STARTED = object()


class _LocalText:
    def __init__(self, queue: asyncio.Queue[object], completion: Completion,
                 position: Callable[[], int], notice_s: float) -> None:
        self._queue = queue
        self.completion = completion
        self._position = position
        self._notice_s = notice_s

    async def __aiter__(self) -> AsyncIterator[str | Queued]:
        started = False
        if (ahead := self._position()) > 0:
            yield Queued(ahead)
        while True:
            if started:
                item = await self._queue.get()
            else:
                try:
                    item = await asyncio.wait_for(self._queue.get(), self._notice_s)
                except TimeoutError:
                    yield Queued(max(self._position(), 1))
                    continue
            if item is _STARTED:
                started = True
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, str)
            self.completion.text_parts.append(item)
            yield item


class LocalProvider:
    name = "local"

    def __init__(self, model: LocalModel, *, path: str | None, models_dir: Path, n_ctx: int,
                 n_threads: int, max_tokens_cap: int, repeat_penalty: float = 1.15,
                 temperature: float = 0.3, queue_notice_s: float = 5.0,
                 route_margin: float = 0.0,
                 route_margins: dict[str, float] | None = None) -> None:
        self.model = model
        self._path = path
        self._models_dir = models_dir
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._max_tokens_cap = max_tokens_cap
        self._repeat_penalty = repeat_penalty
        self._temperature = temperature
        self._notice_s = queue_notice_s
        self._route_margin = route_margin
        self._route_margins = route_margins or {}
        self.steps: list[Step] = []
        """The steps of the latest generation, measured (logged per turn; read by the bench)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self._llm: Any = None
        self._jobs: list[object] = []
        """Requests submitted and not finished, oldest (running) first: queue positions."""

    def _load(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama  # heavy native import: only when the local model is used

            path = self._path or str(model_file(self.model, self._models_dir))
            self._llm = Llama(model_path=path, n_ctx=self._n_ctx, verbose=False,
                              n_threads=self._n_threads)
        return self._llm

    async def start(self) -> None:
        """Provide the file (joined and verified once), load the model and run one tiny
        generation, so the first turn is not slow."""
        loop = asyncio.get_running_loop()

        def warm() -> None:
            llm = self._load()
            llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=1)

        await loop.run_in_executor(self._executor, warm)
        log.info("local model ready: %s", self.model.name)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _position(self, ticket: object) -> int:
        return self._jobs.index(ticket) if ticket in self._jobs else 0

    def _forget(self, ticket: object) -> None:
        if ticket in self._jobs:
            self._jobs.remove(ticket)

    @asynccontextmanager
    async def stream(self, request: ModelRequest) -> AsyncIterator[_LocalText]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        completion = Completion(model=self.model.name)
        ticket = object()

        def put(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def finish(item: object) -> None:
            # Leave the line before the consumer hears the end (callbacks run in order), so a
            # request sent right after never counts a finished generation ahead of it.
            loop.call_soon_threadsafe(self._forget, ticket)
            put(item)

        def generate() -> None:
            put(_STARTED)
            if stop.is_set():
                loop.call_soon_threadsafe(self._forget, ticket)
                return
            try:
                self._generate(request, completion, put, stop)
                finish(_DONE)
            except ValueError as exc:  # llama-cpp: prompt does not fit the context window
                finish(ProviderError(ProviderFailure(code=ErrorCode.PROVIDER_BAD_REQUEST,
                                                     message=f"local model: {exc}",
                                                     retryable=False)))
            except Exception as exc:
                log.exception("local model failed")
                finish(ProviderError(ProviderFailure(
                    code=ErrorCode.PROVIDER_ERROR, message=f"local model: {type(exc).__name__}",
                    retryable=False)))

        self._jobs.append(ticket)
        job = loop.run_in_executor(self._executor, generate)
        job.add_done_callback(lambda _: self._forget(ticket))  # also when never started
        try:
            yield _LocalText(queue, completion, lambda: self._position(ticket), self._notice_s)
        finally:
            # Ends a generation the consumer abandoned; a queued one then never starts.
            stop.set()
            job.add_done_callback(lambda f: f.cancelled() or f.exception())

    # ---- on the model's thread ----

    def _generate(self, request: ModelRequest, completion: Completion,
                  put: Callable[[object], None], stop: threading.Event) -> None:
        llm = self._load()
        usage = Usage()
        base = self._base(request)
        looked_up = local_tools.recall(request.recall)
        own, said = _told(request)
        tools = self._routable(request, own, said)
        if tools:
            route, usage = self._route(llm, tools, base, usage)
            if route.name != local_tools.NONE and not stop.is_set():
                tool = next(t for t in tools if t.name == route.name)
                raw, usage = self._arguments(llm, tool, base, looked_up, usage)
                arguments, made_up = local_tools.ground(tool, raw, f"{own}\n{request.recall}")
                if made_up:
                    log.info("turn %s: %s addresses nobody gave dropped: %s", request.turn_id,
                             tool.name, made_up)
                if arguments is None:
                    # Never propose mail to an address nobody gave: answer in words instead.
                    log.info("turn %s: %s not proposed, no recipient", request.turn_id,
                             tool.name)
                else:
                    completion.tool_calls.append(ToolCall(
                        id=f"local-{request.iteration}-0", name=route.name, input=arguments))
                    completion.stop_reason = "tool_use"
                    completion.usage = usage
                    self._log_steps(request)
                    return
        completion.usage = self._answer(llm, request, [*base, *looked_up], completion, put, stop,
                                        usage)
        self._log_steps(request)

    def route(self, request: ModelRequest) -> Route:
        """The route step alone, on the calling thread (bench/va_router.py measures the
        router with it; the service routes inside `stream`)."""
        llm = self._load()
        tools = self._routable(request, *_told(request))
        return self._route(llm, tools, self._base(request), Usage())[0] if tools else Route(
            local_tools.NONE, None)

    def arguments(self, request: ModelRequest, tool: ToolDef) -> dict[str, Any]:
        """The argument step alone, as `stream` runs it (before grounding), on the calling
        thread (bench/va_router.py --args)."""
        return self._arguments(self._load(), tool, self._base(request),
                               local_tools.recall(request.recall), Usage())[0]

    def _base(self, request: ModelRequest) -> list[dict[str, str]]:
        """Everything the steps of this generation share (`local_tools.layout`), with the
        window sized once for the longest step, so every step's prompt starts the same."""
        self.steps = []
        system = self._system(request)
        longest = max(local_tools.ARGS_MAX_TOKENS, self._answer_tokens(request))
        stable = local_tools.stable_block(request.tools)
        budget = (self._n_ctx - longest) * _CHARS_PER_TOKEN - len(system) - len(stable)
        plain = local_tools.as_plain(fit_window(request.messages, max(budget, 1)))
        return local_tools.layout(stable, request.system, request.context, plain)

    def _routable(self, request: ModelRequest, own: str, said: str) -> list[ToolDef]:
        """Tools the router may pick now: all of them for the user's request; after lookups,
        those not called yet in this turn (the model acts on what it found); none after an
        action (the model reports on it). Never one needing an address when the turn names
        none (`local_tools.grounded`)."""
        phase = local_tools.after_lookups(request.messages)
        if not request.tools or phase is False:
            return []
        called = set() if phase is None else {
            b.name for m in request.messages if not isinstance(m.content, str)
            for b in m.content if isinstance(b, ToolUseBlock)}
        return local_tools.grounded([t for t in request.tools if t.name not in called], own,
                                    said, request.recall)

    def _route(self, llm: Any, tools: list[ToolDef], base: list[dict[str, str]],
               usage: Usage) -> tuple[Route, Usage]:
        """Which tool, or none: one of the names under a grammar that admits nothing else,
        greedily, where a tool must beat `none` by its margin (`_Margin`)."""
        from llama_cpp import LogitsProcessorList
        from llama_cpp.llama_grammar import LlamaGrammar

        names = [t.name for t in tools]
        grammar = LlamaGrammar.from_string(local_tools.route_grammar(names), verbose=False)
        bias = _Margin(llm, {n: self._route_margins.get(n, self._route_margin) for n in names},
                       local_tools.NONE)
        with self._step(llm, "route"):
            out = llm.create_chat_completion(
                messages=[*base, local_tools.step(local_tools.ROUTE_STEP)], grammar=grammar,
                max_tokens=local_tools.ROUTE_MAX_TOKENS, temperature=0.0,
                logits_processor=LogitsProcessorList([bias]))
        name = (out["choices"][0]["message"]["content"] or "").strip()
        return (Route(name if name in names else local_tools.NONE, bias.gap),
                _add(usage, out["usage"]))

    def _arguments(self, llm: Any, tool: ToolDef, base: list[dict[str, str]],
                   looked_up: list[dict[str, str]], usage: Usage) -> tuple[dict[str, Any], Usage]:
        """An action's arguments read what was looked up; a lookup's are the request's own
        terms (`local_tools.lookup`)."""
        from llama_cpp.llama_grammar import LlamaGrammar

        grammar = LlamaGrammar.from_string(local_tools.args_grammar(tool), verbose=False)
        prompt = base if local_tools.lookup(tool.name) else [*base, *looked_up]
        with self._step(llm, "arguments"):
            out = llm.create_chat_completion(
                messages=[*prompt, local_tools.step(local_tools.args_step(tool))],
                grammar=grammar, max_tokens=local_tools.ARGS_MAX_TOKENS, temperature=0.0)
        text = out["choices"][0]["message"]["content"] or ""
        return local_tools.parse_args(text), _add(usage, out["usage"])

    @staticmethod
    def _system(request: ModelRequest) -> str:
        return "\n\n".join(part for part in (request.system, request.context, request.recall)
                           if part)

    def _answer_tokens(self, request: ModelRequest) -> int:
        return min(request.max_tokens, self._max_tokens_cap, self._n_ctx // 2)

    def _answer(self, llm: Any, request: ModelRequest, base: list[dict[str, str]],
                completion: Completion, put: Callable[[object], None], stop: threading.Event,
                usage: Usage) -> Usage:
        messages = list(base)
        if local_tools.after_lookups(request.messages) is not None:
            messages.append(local_tools.step(local_tools.REPORT))
        guard = LoopGuard()
        produced = 0
        with self._step(llm, "answer"):
            for chunk in llm.create_chat_completion(
                    messages=messages, stream=True, max_tokens=self._answer_tokens(request),
                    temperature=self._temperature, repeat_penalty=self._repeat_penalty):
                if stop.is_set():
                    break
                choice = chunk["choices"][0]
                if text := choice["delta"].get("content"):
                    produced += 1
                    put(text)
                    if guard.looping(text):
                        log.info("turn %s: local answer stopped, it repeats itself",
                                 request.turn_id)
                        completion.stop_reason = "repetition"
                        break
                if choice.get("finish_reason"):
                    completion.stop_reason = _STOP.get(choice["finish_reason"], "end_turn")
        return _add(usage, {"prompt_tokens": max(llm.n_tokens - produced, 0),
                            "completion_tokens": produced})

    @contextmanager
    def _step(self, llm: Any, name: str) -> Iterator[None]:
        """Measures one step with llama.cpp's own counters: how many prompt tokens it had to
        evaluate (the rest came from the reused prefix) and how long that took."""
        import llama_cpp

        ctx = llm._ctx.ctx  # the binding exposes the counters only on the raw context
        llama_cpp.llama_perf_context_reset(ctx)
        began = time.perf_counter()
        try:
            yield
        finally:
            perf = llama_cpp.llama_perf_context(ctx)
            self.steps.append(Step(name, llm.n_tokens, perf.n_p_eval, perf.t_p_eval_ms,
                                   perf.n_eval, (time.perf_counter() - began) * 1000))

    def _log_steps(self, request: ModelRequest) -> None:
        log.info("turn %s iteration %d: %s", request.turn_id, request.iteration,
                 "; ".join(str(s) for s in self.steps))


@dataclass(frozen=True)
class Route:
    name: str
    gap: float | None
    """First-token logit of the best tool minus that of `none`, before the margins: how
    strongly the router wanted a tool (None when nothing was routed)."""


@dataclass(frozen=True)
class Step:
    name: str
    tokens: int
    """Prompt and generated tokens in the context after the step."""
    evaluated: int
    """Prompt tokens evaluated in batches; the rest of the prompt was the reused prefix."""
    prompt_ms: float
    generated: int
    ms: float

    def __str__(self) -> str:
        return (f"{self.name} {self.tokens} tokens, {self.evaluated} evaluated in "
                f"{self.prompt_ms:.0f} ms, {self.generated} generated, {self.ms:.0f} ms")


class _Margin:
    """A llama.cpp logits processor for the route's first token: a tool is chosen only when
    its first token's logit beats that of `none` by the tool's margin (a difference of logits
    is one of log-probabilities). Asked to name a tool or `none`, a small model names a tool
    as soon as one word of the request fits it; the margin makes `none` win unless the tool
    clearly does. Tools sharing a first token (calendar_create, calendar_list) share the
    larger of their margins. Records the gap (for the bench)."""

    def __init__(self, llm: Any, margins: dict[str, float], default: str) -> None:
        def first(text: str) -> int:
            return int(llm.tokenize(text.encode(), add_bos=False, special=False)[0])

        self._margins: dict[int, float] = {}
        for name, margin in margins.items():
            token = first(name)
            self._margins[token] = max(margin, self._margins.get(token, margin))
        self._tokens = sorted(self._margins)
        self._default = first(default)
        self.gap: float | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.gap is None:
            self.gap = float(scores[self._tokens].max() - scores[self._default])
            for token, margin in self._margins.items():
                scores[token] -= margin
        return scores


def _told(request: ModelRequest) -> tuple[str, str]:
    """What the turn itself told the model (system, date lines, conversation) and the
    conversation alone, read once per generation by `grounded` and `ground`."""
    plain = local_tools.as_plain(request.messages)
    said = "\n".join(m["content"] for m in plain)
    return local_tools.known_text(request.system, request.context, plain), said


def _add(usage: Usage, more: dict[str, Any]) -> Usage:
    return Usage(input_tokens=usage.input_tokens + int(more.get("prompt_tokens") or 0),
                 output_tokens=usage.output_tokens + int(more.get("completion_tokens") or 0))
