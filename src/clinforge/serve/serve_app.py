"""The OpenAI-compatible FastAPI app: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/health`` and ``/metrics``.

Every request passes a gate first (request id, 503 while draining, in-flight count), then authentication (hashed
keys), the per-key rate limit and the body-size cap, in that order. Generation holds one of the model's slots
(an ``asyncio.Semaphore`` of ``slots``, capped by the backend's ``max_parallel_streams``: a request queued inside
the backend would look hung to the timeout below). A request waits for a slot in a queue of at most ``max_queue``
(a full queue is 503 at once) for at most ``queue_timeout_s`` (then 503); a client that leaves while queued is
dropped without generating. The slot is given back the moment the request ends, including when the client
disconnects, which also cancels generation (the backend's stream is closed). A backend that produces nothing for
``timeout_s`` seconds once it holds a slot is answered with 504 (or, once a stream has started, an error chunk then
``[DONE]``).

Example:
    >>> app = create_app(config_from_flags(model="hf:runs/tiny/model"))  # doctest: +SKIP
    >>> uvicorn.run(app, port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from clinforge.core.errors import ClinforgeError
from clinforge.models.backends import GenerationRequest
from clinforge.serve.api_errors import ApiError, install_error_handlers
from clinforge.serve.api_keys import KeyStore, RateLimiter, retry_after_header
from clinforge.serve.audit_log import AuditLog
from clinforge.serve.guarded_generation import GuardedModel, Outcome, Prepared
from clinforge.serve.openai_schemas import ChatRequest, CompletionRequest, EmbeddingRequest, parse_body
from clinforge.serve.serve_config import ModelSettings, ServeSettings
from clinforge.serve.serve_metrics import CONTENT_TYPE, ServeMetrics
from clinforge.serve.thread_stream import ThreadedIterator

OPEN_PATHS = ("/health",)  # answered without a key


@dataclass
class ModelEntry:
    """A configured model and its load state (``loading`` -> ``ready`` or ``failed``)."""

    settings: ModelSettings
    slots: asyncio.Semaphore
    status: str = "loading"
    guarded: GuardedModel | None = None
    slot_count: int = 0  # the effective number of slots (see ``set_ready``)
    waiting: int = 0  # requests queued for a slot

    def set_ready(self, guarded: GuardedModel) -> None:
        """Serve ``guarded``, with ``slots`` capped by what its backend can generate at once.

        More slots than the backend runs in parallel would only move the queue into the backend (llama.cpp's lock),
        where a waiting request's ``timeout_s`` clock runs: measured, 19 of 32 healthy requests answered 504 with 4
        slots on the one-sequence llama.cpp backend and ``timeout_s`` 3 (docs/serve.md)."""
        limit = getattr(guarded.backend, "max_parallel_streams", None)
        count = self.settings.slots if not limit else min(self.settings.slots, int(limit))
        if count < self.settings.slots:
            print(f"clinforge serve: model {self.settings.name!r}: slots {self.settings.slots} capped to {count}, "
                  f"what its backend generates at once (the others queue, max_queue {self.settings.max_queue})",
                  file=sys.stderr, flush=True)
        # replaced before the status says ready: no request can hold the old semaphore
        self.slots, self.slot_count = asyncio.Semaphore(count), count
        self.guarded, self.status = guarded, "ready"


@dataclass
class ServerState:
    settings: ServeSettings
    keys: KeyStore
    limiter: RateLimiter
    audit: AuditLog
    metrics: ServeMetrics
    models: dict[str, ModelEntry]
    draining: bool = False
    in_flight: int = 0
    created: int = field(default_factory=lambda: int(time.time()))


def load_models(state: ServerState) -> None:
    """Build every model that is still loading (blocking; the server answers 503 for it meanwhile)."""
    for name, entry in state.models.items():
        if entry.status != "loading":
            continue
        try:
            entry.set_ready(GuardedModel.build(entry.settings))
            print(f"clinforge serve: model {name!r} ready", file=sys.stderr, flush=True)
        except Exception as exc:  # the server keeps serving the other models; /health says which failed
            entry.status = "failed"
            print(f"clinforge serve: model {name!r} failed to load: {exc}", file=sys.stderr, flush=True)


def create_app(settings: ServeSettings, *, keys: KeyStore | None = None,
               preloaded: dict[str, GuardedModel] | None = None, load_in_background: bool = True) -> Any:
    """The FastAPI app serving ``settings.models``; models not in ``preloaded`` load in a background thread at
    start-up (or not at all with ``load_in_background=False``, for a caller that calls ``load_models`` itself)."""
    entries = {m.name: ModelEntry(m, asyncio.Semaphore(m.slots), slot_count=m.slots) for m in settings.models}
    for name, gm in (preloaded or {}).items():
        entries[name].set_ready(gm)
    state = ServerState(settings, keys if keys is not None else KeyStore.from_env(settings.api_key_env),
                        RateLimiter(settings.rate_limit.requests_per_minute, settings.rate_limit.burst),
                        AuditLog(settings.audit_log), ServeMetrics(), entries)

    @asynccontextmanager
    async def lifespan(app: Any):
        if load_in_background and any(e.status == "loading" for e in entries.values()):
            threading.Thread(target=load_models, args=(state,), name="clinforge-serve-load", daemon=True).start()
        yield
        state.audit.close()

    app = FastAPI(title="clinforge serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serve = state
    install_error_handlers(app)
    app.add_middleware(_Gate, state=state)

    # ------------------------------------------------------------------ helpers
    async def admit(request: Request) -> str:
        """Authenticate and rate-limit; returns the key id (``anonymous`` without auth)."""
        key = "anonymous"
        if len(state.keys):
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            found = state.keys.check(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
            if found is None:
                raise ApiError(401, "missing or invalid API key (send Authorization: Bearer KEY)",
                               code="invalid_api_key")
            key = found
        wait = state.limiter.take(key)
        if wait > 0:
            raise ApiError(429, f"rate limit of {settings.rate_limit.requests_per_minute:g} requests per minute "
                                "reached for this key", code="rate_limit_exceeded",
                           headers={"Retry-After": retry_after_header(wait)})
        return key

    async def read_body(request: Request) -> bytes:
        cap = settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {cap}", code="body_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise ApiError(413, f"request body exceeds the limit of {cap} bytes", code="body_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    def model_entry(name: str) -> ModelEntry:
        entry = entries.get(name)
        if entry is None:
            raise ApiError(404, f"the model {name!r} does not exist; served: {', '.join(entries)}",
                           code="model_not_found", param="model")
        if entry.status == "loading":
            raise ApiError(503, f"the model {name!r} is still loading", code="model_loading",
                           headers={"Retry-After": "5"})
        if entry.status == "failed":
            raise ApiError(503, f"the model {name!r} failed to load (see the server's log)", code="model_unavailable")
        return entry

    def max_tokens_of(entry: ModelEntry, requested: int | None) -> int:
        if requested is None:
            return entry.settings.default_max_tokens
        if requested > entry.settings.max_tokens:
            raise ApiError(400, f"max_tokens {requested} exceeds this server's limit of {entry.settings.max_tokens}",
                           code="max_tokens_exceeded", param="max_tokens")
        return requested

    # ------------------------------------------------------------------ routes
    @app.get("/health")
    async def health() -> Any:
        statuses = {name: e.status for name, e in entries.items()}
        if state.draining:
            status = "draining"
        elif "loading" in statuses.values():
            status = "loading"
        elif "failed" in statuses.values():
            status = "degraded" if "ready" in statuses.values() else "failed"
        else:
            status = "ok"
        return JSONResponse({"status": status, "models": statuses}, status_code=200 if status == "ok" else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Any:
        await admit(request)
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def list_models(request: Request) -> Any:
        await admit(request)
        return {"object": "list", "data": [_model_card(name, state.created) for name in entries]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str, request: Request) -> Any:
        await admit(request)
        if name not in entries:
            raise ApiError(404, f"the model {name!r} does not exist", code="model_not_found", param="model")
        return _model_card(name, state.created)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        key = await admit(request)
        body = parse_body(ChatRequest, await read_body(request))
        entry = model_entry(body.model)
        images = [url for i, m in enumerate(body.messages) for url in m.images(i)]
        if body.stream and entry.guarded.cove is not None:
            raise ApiError(400, "Chain-of-Verification is on for this model and needs the whole answer before it "
                                "can verify it: send stream=false", code="cove_needs_no_stream", param="stream")
        gen = GenerationRequest(messages=[{"role": m.role, "content": m.text()} for m in body.messages],
                                max_new_tokens=max_tokens_of(entry, body.requested_max_tokens()),
                                temperature=body.temperature, top_p=body.top_p, stop=body.stop_list(),
                                seed=body.seed, images=images)
        return await _generate(request, state, entry, gen, body, key, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        key = await admit(request)
        body = parse_body(CompletionRequest, await read_body(request))
        entry = model_entry(body.model)
        gen = GenerationRequest(prompt=body.prompt_text(), max_new_tokens=max_tokens_of(entry, body.max_tokens),
                                temperature=body.temperature, top_p=body.top_p, stop=body.stop_list(),
                                seed=body.seed)
        return await _generate(request, state, entry, gen, body, key, "completions")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Any:
        key = await admit(request)
        body = parse_body(EmbeddingRequest, await read_body(request))
        entry = model_entry(body.model)
        kb = entry.guarded.kb
        if kb is None:
            raise ApiError(404, f"the model {body.model!r} has no embedder (no knowledge base is configured for it)",
                           code="embeddings_not_available", param="model")
        texts = body.texts()
        if not texts or any(not isinstance(t, str) or not t for t in texts):
            raise ApiError(400, "input must be a non-empty string or list of non-empty strings", param="input",
                           code="invalid_request")
        vectors = await asyncio.to_thread(kb.embedder.encode, texts)
        n_tokens = sum(entry.guarded.backend.count_tokens(t) for t in texts)
        state.metrics.requests.labels(model=body.model, endpoint="embeddings", status="200").inc()
        state.audit.write({"request_id": request.state.request_id, "key": key, "model": body.model,
                           "endpoint": "embeddings", "status": 200, "inputs": len(texts)})
        return {"object": "list", "model": body.model,
                "data": [{"object": "embedding", "index": i, "embedding": _encode_vector(v, body.encoding_format)}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}

    return app


def _encode_vector(vector: Any, encoding: str) -> list[float] | str:
    """A vector as a list of floats, or as base64 of its float32 little-endian bytes (what the openai client asks
    for by default and decodes itself).

    Example:
        >>> _encode_vector([1.0, 0.5], "base64")
        'AACAPwAAAD8='
    """
    import base64

    import numpy as np

    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def _model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "clinforge"}


class _Gate:
    """Pure ASGI middleware: request id (``x-request-id``), 503 while draining, in-flight count (a streamed
    response counts until its last byte, which a ``BaseHTTPMiddleware`` could not see)."""

    def __init__(self, app: Any, state: ServerState):
        self.app, self.state = app, state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        if self.state.draining and scope["path"] != "/metrics":
            err = ApiError(503, "the server is shutting down; retry on another instance", code="server_draining",
                           headers={"Retry-After": "5", "Connection": "close"})
            await JSONResponse(err.body(), status_code=503, headers=err.response_headers())(scope, receive,
                                                                                            send_with_id)
            return
        self.state.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.state.in_flight -= 1


async def _acquire_slot(state: ServerState, entry: ModelEntry, watcher: asyncio.Future) -> bool:
    """Wait for one of ``entry``'s slots: True once held, False when the client left first (``watcher`` done);
    503 ``server_busy`` at once when ``max_queue`` requests already wait, or after ``queue_timeout_s``."""
    settings, name = entry.settings, entry.settings.name
    if entry.slots.locked() and entry.waiting >= settings.max_queue:
        raise ApiError(503, f"all {entry.slot_count} generation slot(s) of {name!r} are busy and {entry.waiting} "
                            f"request(s) already queue for them (max_queue {settings.max_queue})", code="server_busy",
                       headers={"Retry-After": "2"})
    acquire = asyncio.ensure_future(entry.slots.acquire())
    entry.waiting += 1
    state.metrics.queued.labels(model=name).inc()

    def give_back() -> None:
        # cancelling a waiting acquire gives nothing up; one granted in the same instant goes back to the next waiter
        acquire.cancel()
        if acquire.done() and not acquire.cancelled():
            entry.slots.release()

    try:
        done, _ = await asyncio.wait({acquire, watcher}, timeout=settings.queue_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this request itself was cancelled (shutdown): its place must not turn into a slot
        give_back()
        raise
    finally:
        entry.waiting -= 1
        state.metrics.queued.labels(model=name).dec()
    if acquire in done and not watcher.done():
        return True
    give_back()
    if watcher.done():
        return False
    raise ApiError(503, f"all {entry.slot_count} generation slot(s) of {name!r} stayed busy for "
                        f"{settings.queue_timeout_s:g} s", code="server_busy", headers={"Retry-After": "2"})


async def _wait_disconnect(request: Any) -> None:
    """Return when the client closes the connection (the body has been read, so only a disconnect can arrive)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _backend_error(exc: BaseException, rid: str) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ClinforgeError) and "image" in str(exc).lower():
        return ApiError(400, "this model does not accept images", code="images_not_supported", param="messages")
    # the type only: messages of backend errors can hold paths or prompt text
    print(f"clinforge serve: request {rid}: backend error {type(exc).__name__}", file=sys.stderr, flush=True)
    return ApiError(500, f"the model backend failed (request id {rid})", code="backend_error")


async def _generate(request: Any, state: ServerState, entry: ModelEntry, gen: GenerationRequest, body: Any,
                    key: str, endpoint: str) -> Any:
    """Prepare (guards, retrieval, length check), take a slot, generate; streamed or not."""
    rid = request.state.request_id
    name = entry.settings.name
    started = time.perf_counter()
    audit: dict[str, Any] = {"request_id": rid, "key": key, "model": name, "endpoint": endpoint,
                             "stream": bool(body.stream)}

    def record(status: int | str, outcome: Outcome | None, prepared: Prepared | None, error: str | None = None):
        latency = time.perf_counter() - started
        state.metrics.requests.labels(model=name, endpoint=endpoint, status=str(status)).inc()
        state.metrics.latency.labels(model=name, endpoint=endpoint).observe(latency)
        event = dict(audit, status=status, latency_ms=round(latency * 1000, 1), error=error)
        if prepared is not None:
            event.update(prompt_sha256=prepared.prompt_sha256, prompt_tokens=prepared.prompt_tokens)
            state.metrics.tokens.labels(model=name, kind="prompt").inc(prepared.prompt_tokens)
            decisions = dict(prepared.decisions)
            event["output_sha256"] = decisions.pop("output_sha256", None)
            event["guards"] = decisions
            for guard in ("crisis", "phi"):
                d = decisions.get(guard)
                if d and (d.get("changed") or d.get("action") not in (None, "continue")):
                    state.metrics.guard_events.labels(guard=guard, action=str(d.get("action", "mask"))).inc()
        if outcome is not None:
            event.update(completion_tokens=outcome.completion_tokens, finish_reason=outcome.finish_reason)
            state.metrics.tokens.labels(model=name, kind="completion").inc(outcome.completion_tokens)
        state.audit.write(event)

    try:
        prepared = await asyncio.to_thread(entry.guarded.prepare, gen, rid)
    except Exception as exc:
        err = _backend_error(exc, rid)
        record(err.status, None, None, err.code)
        raise err from None
    # watches the connection from here on: a client that leaves while queued never reaches the backend
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        got = await _acquire_slot(state, entry, watcher)
    except ApiError as err:
        watcher.cancel()
        record(err.status, None, prepared, "queue_full" if "queue" in err.message else "slots_busy")
        raise
    if not got:
        state.metrics.cancelled.labels(model=name).inc()
        record("cancelled", None, prepared, "client_disconnected_queued")
        return Response(status_code=499)
    state.metrics.in_flight.labels(model=name).inc()
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            entry.slots.release()
            state.metrics.in_flight.labels(model=name).dec()

    if body.stream:
        from clinforge.serve.sse_stream import stream_response

        return await stream_response(state, entry, prepared, body, endpoint, release, record, watcher)
    outcome = Outcome()
    # progress marks at most 5 a second (a quarter of the timeout when shorter): the hang timeout and the
    # disconnect check keep working, without waking the event loop for every token of a long answer
    it = ThreadedIterator(lambda: entry.guarded.complete_steps(prepared),
                          progress_every=min(0.2, entry.settings.timeout_s / 4))
    try:
        while True:
            step = asyncio.ensure_future(it.next(entry.settings.timeout_s))
            done, _ = await asyncio.wait({step, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if step not in done:  # the client went away: stop generating and free the slot now
                step.cancel()
                it.cancel()
                state.metrics.cancelled.labels(model=name).inc()
                record("cancelled", None, prepared, "client_disconnected")
                return Response(status_code=499)
            try:
                kind, value = step.result()
            except (TimeoutError, asyncio.TimeoutError):
                it.cancel()
                record(504, None, prepared, "backend_timeout")
                raise ApiError(504, f"the model produced nothing for {entry.settings.timeout_s:g} s",
                               code="backend_timeout") from None
            if kind == "error":
                err = _backend_error(value, rid)
                record(err.status, None, prepared, err.code)
                raise err
            if kind == "end":
                raise RuntimeError("generation ended without an outcome")
            if value is not None:
                outcome = value
                break
    finally:
        watcher.cancel()
        it.cancel()
        release()
    record(200, outcome, prepared)
    return _full_response(body, endpoint, rid, state.created, entry.settings.name, prepared, outcome)


def _usage(prepared: Prepared, outcome: Outcome) -> dict[str, int]:
    return {"prompt_tokens": prepared.prompt_tokens, "completion_tokens": outcome.completion_tokens,
            "total_tokens": prepared.prompt_tokens + outcome.completion_tokens}


def client_decisions(decisions: dict[str, Any]) -> dict[str, Any]:
    """What the client may see of the guards: citations and the crisis level/action (no hashes, no spans)."""
    out: dict[str, Any] = {}
    if "rag" in decisions:
        rag = decisions["rag"]
        out["citations"] = rag.get("cited", [])
        out["citations_out_of_range"] = rag.get("out_of_range", [])
        out["snippets"] = rag.get("snippets", [])
    if "crisis" in decisions:
        out["crisis"] = {k: decisions["crisis"][k] for k in ("level", "level_name", "action")}
    if "cove" in decisions:
        out["cove"] = {k: decisions["cove"][k] for k in ("variant", "calls", "questions")}
    return out


def _full_response(body: Any, endpoint: str, rid: str, created: int, model: str, prepared: Prepared,
                   outcome: Outcome) -> dict[str, Any]:
    if endpoint == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": outcome.text},
                  "finish_reason": outcome.finish_reason, "logprobs": None}
        obj, prefix = "chat.completion", "chatcmpl-"
    else:
        choice = {"index": 0, "text": outcome.text, "finish_reason": outcome.finish_reason, "logprobs": None}
        obj, prefix = "text_completion", "cmpl-"
    response = {"id": prefix + rid, "object": obj, "created": int(time.time()), "model": model,
                "choices": [choice], "usage": _usage(prepared, outcome)}
    extra = client_decisions(outcome.decisions)
    if extra:
        response["clinforge"] = extra
    return response


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
