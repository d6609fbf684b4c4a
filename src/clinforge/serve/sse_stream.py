"""Streamed answers as server-sent events, in OpenAI's chunk format.

Chat: a role chunk, one chunk per guarded text delta, a chunk with ``finish_reason``, a usage chunk (empty
``choices``) when ``stream_options.include_usage`` is set, then ``data: [DONE]``. Completions: text chunks, the
finish chunk, usage, ``[DONE]``. The first delta is awaited before the response starts, so a backend that fails
or hangs at once still gets a proper HTTP status (500/504); a failure after that goes out as an error chunk in the
OpenAI error shape, followed by ``[DONE]``.

The slot is given back exactly once, whichever way the response ends: completed, failed, or cut by the client
(Starlette cancels the response when the client disconnects; ``_ClosingStreamingResponse`` releases even when that
happens before the first byte). Cancelling also closes the backend's stream, which stops generation.

Example (what a client reads)::

    data: {"id":"chatcmpl-…","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],…}
    data: {"id":"chatcmpl-…","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],…}
    data: {"id":"chatcmpl-…","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],…}
    data: [DONE]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from clinforge.serve.api_errors import ApiError
from clinforge.serve.guarded_generation import Outcome, Prepared
from clinforge.serve.thread_stream import ThreadedIterator

DONE = "data: [DONE]\n\n"


def _event(obj: dict[str, Any]) -> str:
    from clinforge.serve.serve_app import dumps

    return f"data: {dumps(obj)}\n\n"


class _Chunks:
    """Builds the chunks of one stream (same id and creation time in every chunk, as OpenAI sends them)."""

    def __init__(self, endpoint: str, rid: str, model: str):
        self.chat = endpoint == "chat"
        self.base = {"id": ("chatcmpl-" if self.chat else "cmpl-") + rid,
                     "object": "chat.completion.chunk" if self.chat else "text_completion",
                     "created": int(time.time()), "model": model}

    def role(self) -> str:
        return _event({**self.base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                 "finish_reason": None, "logprobs": None}]})

    def delta(self, text: str) -> str:
        choice = {"index": 0, "delta": {"content": text}} if self.chat else {"index": 0, "text": text}
        return _event({**self.base, "choices": [{**choice, "finish_reason": None, "logprobs": None}]})

    def finish(self, reason: str, extra: dict[str, Any]) -> str:
        choice = {"index": 0, "delta": {}} if self.chat else {"index": 0, "text": ""}
        obj = {**self.base, "choices": [{**choice, "finish_reason": reason, "logprobs": None}]}
        if extra:
            obj["clinforge"] = extra
        return _event(obj)

    def usage(self, usage: dict[str, int]) -> str:
        return _event({**self.base, "choices": [], "usage": usage})


def _closing_response_class() -> type:
    from starlette.responses import StreamingResponse

    class _ClosingStreamingResponse(StreamingResponse):
        """Calls ``on_close`` however the response ends (an async generator cancelled before its first step never
        runs its ``finally``)."""

        def __init__(self, content: Any, *, on_close: Callable[[], None], **kwargs: Any):
            super().__init__(content, **kwargs)
            self.on_close = on_close

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                self.on_close()

    return _ClosingStreamingResponse


async def stream_response(state: Any, entry: Any, prepared: Prepared, body: Any, endpoint: str,
                          release: Callable[[], None], record: Callable[..., None], watcher: Any) -> Any:
    """The streaming response of one request that already holds a slot (see the module docstring); ``watcher``
    is a task that ends when the client disconnects (cancelled here once the response starts, from which point
    Starlette watches the connection itself)."""
    import asyncio

    from starlette.responses import Response

    from clinforge.serve.serve_app import _backend_error, _usage, client_decisions

    name, timeout, rid = entry.settings.name, entry.settings.timeout_s, prepared.request_id
    outcome = Outcome()
    it = ThreadedIterator(lambda: entry.guarded.stream_deltas(prepared, outcome))
    started = time.perf_counter()
    waiting = asyncio.ensure_future(it.next(timeout))
    try:
        # a client that leaves before the first delta (prompt evaluation, a hung backend) frees the slot now, not
        # after timeout_s: nobody reads this response yet, so Starlette would not notice
        await asyncio.wait({waiting, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if watcher.done():
            waiting.cancel()
            it.cancel()
            release()
            state.metrics.cancelled.labels(model=name).inc()
            record("cancelled", None, prepared, "client_disconnected")
            return Response(status_code=499)
        first = waiting.result()
    except (TimeoutError, asyncio.TimeoutError):
        it.cancel()
        release()
        record(504, None, prepared, "backend_timeout")
        raise ApiError(504, f"the model produced nothing for {timeout:g} s", code="backend_timeout") from None
    except BaseException:
        waiting.cancel()
        it.cancel()
        release()
        record("cancelled", None, prepared, "client_disconnected")
        raise
    finally:
        watcher.cancel()
    if first[0] == "error":
        it.cancel()
        release()
        err = _backend_error(first[1], rid)
        record(err.status, None, prepared, err.code)
        raise err
    state.metrics.first_token.labels(model=name).observe(time.perf_counter() - started)
    chunks = _Chunks(endpoint, rid, name)
    ended = threading.Event()

    def finish(status: int | str, error: str | None) -> None:
        if ended.is_set():
            return
        ended.set()
        it.cancel()
        release()  # the slot is free now; the generation thread stops within one token
        if status == "cancelled":
            state.metrics.cancelled.labels(model=name).inc()

        def write() -> None:
            it.finished.wait(30)  # token counts and guard decisions are final once the thread has ended
            record(status, outcome, prepared, error)

        if it.finished.is_set():
            write()
        else:
            threading.Thread(target=write, name="clinforge-serve-audit", daemon=True).start()

    async def events() -> Any:
        status: int | str = "cancelled"
        error: str | None = "client_disconnected"
        try:
            if chunks.chat:
                yield chunks.role()
            kind, value = first
            while kind == "item":
                yield chunks.delta(value)
                try:
                    kind, value = await it.next(timeout)
                except (TimeoutError, asyncio.TimeoutError):
                    kind, value = "error", ApiError(504, f"the model produced nothing for {timeout:g} s",
                                                    code="backend_timeout")
            if kind == "error":
                err = _backend_error(value, rid)
                status, error = err.status, err.code
                yield _event(err.body())
                yield DONE
                return
            yield chunks.finish(outcome.finish_reason, client_decisions(outcome.decisions))
            if body.include_usage():
                yield chunks.usage(_usage(prepared, outcome))
            yield DONE
            status, error = 200, None
        finally:
            finish(status, error)

    response_class = _closing_response_class()
    return response_class(events(), media_type="text/event-stream",
                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                          on_close=lambda: finish("cancelled", "client_disconnected"))
