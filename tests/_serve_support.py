"""Shared pieces of the serve tests: a replay backend (a real backend that answers with a given text, piece by
piece, optionally slow, hanging or dying: the model output a test needs, e.g. one holding PHI), a live server
fixture and raw SSE parsing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clinforge.models.backends import BACKENDS, Backend, GenerationRequest


class ReplayBackend(Backend):
    """``replay:FILE``: answers every request with FILE's text, streamed in ``piece``-character deltas (at most
    ``max_new_tokens`` of them: a piece stands for a token).

    ``delay`` sleeps before each delta; ``hang_after`` stops producing after that many deltas until the stream is
    closed or ``release()`` is called (a hung model); ``fail_after`` raises after that many deltas (a dying
    model). ``parallel`` serialises streams as llama.cpp's one context does (at most that many generate at once,
    the others wait inside the backend) and declares it as ``max_parallel_streams``. ``requests`` keeps what the
    backend received and ``closed`` counts streams closed before their end.
    """

    scheme = "replay"

    def __init__(self, target: str, *, piece: int = 3, delay: float = 0.0, hang_after: int | None = None,
                 fail_after: int | None = None, context_length: int | None = None, parallel: int | None = None):
        self.model_name = target
        self.text = Path(target).read_text(encoding="utf-8")
        self.piece, self.delay, self.hang_after, self.fail_after = piece, delay, hang_after, fail_after
        self._context_length = context_length
        self.requests: list[GenerationRequest] = []
        self.closed = 0
        self.pieces = 0
        self._release = threading.Event()
        self.max_parallel_streams = parallel
        self._gate = threading.BoundedSemaphore(parallel) if parallel else None

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        return ["".join(self.stream(r)) for r in requests]

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        if self._gate is None:
            return self._stream(request)
        return self._serialised(request)

    def _serialised(self, request: GenerationRequest) -> Iterator[str]:
        with self._gate:  # held until the stream ends or is closed, as LlamaCppBackend holds its lock
            yield from self._stream(request)

    def _stream(self, request: GenerationRequest) -> Iterator[str]:
        self.requests.append(request)
        n = 0
        finished = False
        try:
            for i in range(0, len(self.text), self.piece):
                if n >= request.max_new_tokens:  # one piece stands for one token
                    break
                if self.hang_after is not None and n >= self.hang_after:
                    self._release.wait(60)
                    return
                if self.fail_after is not None and n >= self.fail_after:
                    raise RuntimeError("/secret/path/model.bin: injected backend failure")
                if self.delay:
                    time.sleep(self.delay)
                n += 1
                self.pieces += 1
                yield self.text[i:i + self.piece]
            finished = True
        finally:
            if not finished:
                self.closed += 1

    def count_tokens(self, text: str) -> int:
        return -(-len(text) // self.piece)  # a piece is a token

    @property
    def context_length(self) -> int | None:
        return self._context_length

    def release(self) -> None:
        self._release.set()


BACKENDS.register("replay", ReplayBackend, override=True)


def sse_events(lines: Iterator[str]) -> list[Any]:
    """Parse server-sent events: the JSON of each ``data:`` line, and the string ``[DONE]``."""
    events: list[Any] = []
    for line in lines:
        if not line.startswith("data:"):
            assert line == "", f"unexpected SSE line {line!r}"
            continue
        data = line[5:].strip()
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def serve_settings(models: list[dict[str, Any]], **top: Any) -> Any:
    from clinforge.serve.serve_config import ServeSettings

    return ServeSettings.model_validate({"models": models, **top})
