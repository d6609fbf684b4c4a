"""OpenAI-compatible HTTP backend (vLLM, Ollama, llama.cpp server, TGI, OpenAI itself) over httpx.

SPEC: ``openai:BASE_URL#MODEL``, e.g. ``openai:http://127.0.0.1:8000/v1#medllm``. The API key is read from the
environment variable named by ``api_key_env`` (default ``OPENAI_API_KEY``) and never logged.

* ``generate``: a request with ``messages`` goes to ``/chat/completions``, one with a plain ``prompt`` to
  ``/completions`` (so a base model sees exactly the prompt text, as with the hf backend). A request with
  ``images`` always goes to ``/chat/completions`` with ``image_url`` content parts (``data:`` URIs); see
  :func:`with_image_parts`.
* ``loglikelihood``: ``/completions`` with ``prompt = context + continuation``, ``echo=true``, ``logprobs=1`` and
  ``max_tokens=0`` (``max_tokens=1`` for servers that reject 0); the continuation tokens are those whose
  ``text_offset`` is at or after the end of the context without its trailing whitespace (lm-eval moves that
  whitespace to the continuation) (the server's own tokenisation decides the split, as with
  lm-eval's ``local-completions`` backend), their ``token_logprobs`` are summed, and ``is_greedy`` is whether every
  one of them is the top entry of ``top_logprobs``. A server that does not return echoed prompt log-probs (chat-only
  APIs, Ollama) raises a clear error instead of a made-up number.
* ``stream``: the same call with ``stream: true``; the server's server-sent events are read as they arrive and
  their text deltas passed on (closing the iterator closes the HTTP response, so the server sees the client go).
* Transient failures (read/write errors, timeouts, 408/409/429/5xx) are retried with exponential backoff; every
  call has a timeout. A refused connection (nothing listens at the URL) fails at once with a message naming the URL
  and what to start: retrying it would only hide the mistake behind minutes of backoff. httpx is used rather than the ``openai`` SDK so no extra dependency is needed and ``echo`` + ``logprobs``
  (which the SDK types drop for some servers) pass through unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from clinforge.core.errors import ClinforgeError
from clinforge.models.backends.base import (
    BACKENDS,
    Backend,
    GenerationRequest,
    LoglikelihoodRequest,
    cut_stream_at_stop,
)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class BackendHTTPError(ClinforgeError):
    """The server answered with an error or an answer clinforge cannot use."""


class OpenAIBackend(Backend):
    """Client of an OpenAI-compatible server.

    Args:
        target: ``BASE_URL#MODEL`` (``BASE_URL`` usually ends in ``/v1``).
        timeout: seconds per HTTP call.
        max_retries: retries of a transient failure (backoff 1, 2, 4... seconds, capped at 30).
        api_key_env: environment variable holding the bearer token (optional).
        concurrency: parallel HTTP calls for a list of requests.
        prompts_per_call: log-likelihood requests per /completions call (list ``prompt``; vLLM, llama.cpp).

    Example:
        >>> be = OpenAIBackend("http://127.0.0.1:8000/v1#medllm")  # doctest: +SKIP
        >>> be.chat([{"role": "user", "content": "Define ECG."}], max_new_tokens=32)  # doctest: +SKIP
        'An electrocardiogram ...'
    """

    scheme = "openai"

    def __init__(self, target: str, *, timeout: float = 120.0, max_retries: int = 5, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 4, backoff: float = 1.0, batch_size: int | None = None,
                 prompts_per_call: int = 1):
        import httpx

        base_url, sep, model = target.partition("#")
        if not sep or not model or not base_url.startswith(("http://", "https://")):
            raise ClinforgeError(f"openai SPEC must be openai:BASE_URL#MODEL (e.g. openai:http://127.0.0.1:8000/v1#med), "
                                 f"got openai:{target}")
        self.base_url = base_url.rstrip("/")
        self.model_name = model
        self.max_retries = max_retries
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        # log-likelihood prompts sent in one /completions call (a list prompt, as lm-eval's local-completions
        # batches); 1 keeps one call per request for servers that reject list prompts
        self.prompts_per_call = max(1, int(prompts_per_call))
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._max_tokens_zero_ok: bool | None = None

    def fingerprint(self) -> str:
        """Server URL and model name (a remote model cannot be hashed; change the name when the weights change)."""
        return f"openai|{self.base_url}|{self.model_name}"

    # ---------------------------------------------------------------- HTTP
    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        delay = self.backoff
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._client.post(path, json=payload)
            except httpx.ConnectError as exc:
                # nothing listens there (connection refused, unknown host): waiting and retrying cannot help
                raise BackendHTTPError(
                    f"cannot connect to {self.base_url} ({exc or type(exc).__name__}): no OpenAI-compatible server "
                    f"is running there. Start one first (e.g. `vllm serve MODEL --port PORT`, `llama-server -m "
                    f"FILE.gguf --port PORT`, `ollama serve`) or point the SPEC at a running server; for a local "
                    f"model without a server use hf:PATH_OR_NAME") from exc
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if attempt == self.max_retries:
                    raise BackendHTTPError(f"{self.base_url}{path}: {type(exc).__name__} after "
                                           f"{self.max_retries + 1} attempts") from exc
            else:
                if resp.status_code < 400:
                    try:
                        return resp.json()
                    except ValueError as exc:
                        raise BackendHTTPError(f"{self.base_url}{path}: the answer is not JSON") from exc
                if resp.status_code not in RETRY_STATUS or attempt == self.max_retries:
                    raise BackendHTTPError(f"{self.base_url}{path}: HTTP {resp.status_code}: {resp.text[:300]}")
            time.sleep(min(delay, 30.0))
            delay *= 2
        raise AssertionError("unreachable")

    def _map(self, fn: Any, items: list[Any], progress: Any = None) -> list[Any]:
        if self.concurrency == 1 or len(items) <= 1:
            out = []
            for item in items:
                out.append(fn(item))
                if progress:
                    progress(1)
            return out
        from concurrent.futures import ThreadPoolExecutor

        results: list[Any] = [None] * len(items)
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for fut, i in futures.items():
                results[i] = fut.result()
                if progress:
                    progress(1)
        return results

    # ---------------------------------------------------------------- generation
    def _payload(self, r: GenerationRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for a generation request."""
        if r.images:
            r = with_image_parts(r)
        payload: dict[str, Any] = {"model": self.model_name, "max_tokens": r.max_new_tokens,
                                   "temperature": r.temperature, "top_p": r.top_p}
        if r.stop:
            payload["stop"] = list(r.stop)
        if r.seed is not None:
            payload["seed"] = r.seed
        if r.messages is not None:
            payload["messages"] = r.messages
            return "/chat/completions", payload
        if r.prompt is None:
            raise ClinforgeError("a generation request needs a prompt or messages")
        payload["prompt"] = r.prompt
        return "/completions", payload

    def _generate_one(self, r: GenerationRequest) -> str:
        path, payload = self._payload(r)
        data = self._post(path, payload)
        chat = path == "/chat/completions"  # a prompt with images went as a chat message
        try:
            text = data["choices"][0]["message"]["content"] if chat else data["choices"][0]["text"]
        except (KeyError, IndexError, TypeError) as exc:
            what = "choices[0].message.content" if chat else "choices[0].text"
            raise BackendHTTPError(f"{self.base_url}{path}: no {what}") from exc
        text = text or ""
        # servers differ on whether the stop string is kept; cut it the same way for all
        for s in r.stop:
            if s and s in text:
                text = text[:text.index(s)]
        return text

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Text deltas of one request, read from the server's event stream as they arrive (no retries: a stream
        that broke half-way cannot be replayed without repeating text).

        Example:
            >>> "".join(be.stream(GenerationRequest(prompt="ECG means", max_new_tokens=8)))  # doctest: +SKIP
            ' electrocardiogram'
        """
        return cut_stream_at_stop(self._stream_events(request), request.stop)

    def _stream_events(self, r: GenerationRequest) -> Iterator[str]:
        import httpx

        path, payload = self._payload(r)
        payload["stream"] = True
        try:
            with self._client.stream("POST", path, json=payload) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise BackendHTTPError(f"{self.base_url}{path}: HTTP {resp.status_code}: {resp.text[:300]}")
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue  # comments, event names, keep-alive blank lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    text = _event_text(data, chat=path == "/chat/completions", where=f"{self.base_url}{path}")
                    if text:
                        yield text
            # every OpenAI-compatible server ends a stream with [DONE]; a body that ends without it (a server that
            # died mid-answer, its connection-delimited body cut) is a broken answer, never a complete one
            raise BackendHTTPError(f"{self.base_url}{path}: the stream ended without [DONE] (the server stopped "
                                   "mid-answer)")
        except httpx.ConnectError as exc:
            raise BackendHTTPError(f"cannot connect to {self.base_url} ({exc or type(exc).__name__}): no "
                                   "OpenAI-compatible server is running there") from exc
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise BackendHTTPError(f"{self.base_url}{path}: the stream broke ({type(exc).__name__})") from exc

    def generate(self, requests: list[GenerationRequest], progress: Any = None) -> list[str]:
        """One HTTP call per request (``concurrency`` at a time); chat messages use /chat/completions."""
        return self._map(self._generate_one, requests, progress)

    # ---------------------------------------------------------------- scoring
    def _completions_echo(self, prompts: list[str]) -> list[dict[str, Any]]:
        """choices[i].logprobs of each prompt, echoed with max_tokens 0 (or 1 where the server rejects 0)."""
        payload: dict[str, Any] = {"model": self.model_name, "prompt": prompts if len(prompts) > 1 else prompts[0],
                                   "echo": True, "logprobs": 1, "temperature": 0.0,
                                   "max_tokens": 0 if self._max_tokens_zero_ok is not False else 1}
        try:
            data = self._post("/completions", payload)
            if self._max_tokens_zero_ok is None:
                self._max_tokens_zero_ok = True
        except BackendHTTPError:
            if self._max_tokens_zero_ok is not None:
                raise
            self._max_tokens_zero_ok = False
            payload["max_tokens"] = 1
            data = self._post("/completions", payload)
        try:
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            if len(choices) != len(prompts):
                raise ValueError("choice count")
            out = []
            for choice in choices:
                lp = choice["logprobs"]
                out.append({"tokens": lp["tokens"], "token_logprobs": lp["token_logprobs"],
                            "text_offset": lp["text_offset"], "top_logprobs": lp.get("top_logprobs")})
            return out
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendHTTPError(f"{self.base_url}/completions did not return echoed prompt logprobs "
                                   "(choices[i].logprobs.tokens/token_logprobs/text_offset for every prompt); this "
                                   "server cannot score log-likelihoods, use --mode generate") from exc

    def _score_echo(self, r: LoglikelihoodRequest, lp: dict[str, Any]) -> tuple[float, bool]:
        tokens, token_lps, offsets = lp["tokens"], lp["token_logprobs"], lp["text_offset"]
        tops = lp["top_logprobs"] or [None] * len(tokens)
        # as lm-eval's _encode_pair: trailing whitespace of the context belongs to the continuation
        ctx_len, full_len = len(r.context.rstrip()), len(r.context) + len(r.continuation)
        total, greedy, n = 0.0, True, 0
        for tok, tok_lp, off, top in zip(tokens, token_lps, offsets, tops, strict=False):
            if off < ctx_len or off >= full_len:  # context tokens, and generated tokens past the prompt
                continue
            if tok_lp is None:
                raise BackendHTTPError(f"{self.base_url}/completions returned no logprob for a continuation token")
            total += float(tok_lp)
            n += 1
            if top:
                best = max(top.items(), key=lambda kv: kv[1])[0]
                greedy = greedy and best == tok
        if n == 0:
            raise BackendHTTPError("the server's tokenisation put no token after the context; cannot score "
                                   "this continuation")
        return total, greedy

    def _loglikelihood_batch(self, batch: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        echoed = self._completions_echo([r.context + r.continuation for r in batch])
        return [self._score_echo(r, lp) for r, lp in zip(batch, echoed, strict=True)]

    def loglikelihood(self, requests: list[LoglikelihoodRequest], progress: Any = None) -> list[tuple[float, bool]]:
        """Summed continuation log-prob and greediness via /completions with echo (see the module docstring)."""
        k = self.prompts_per_call
        batches = [requests[i:i + k] for i in range(0, len(requests), k)]

        def run(batch: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
            scores = self._loglikelihood_batch(batch)
            if progress:
                progress(len(batch))  # progress counts requests, not HTTP calls
            return scores

        return [score for batch in self._map(run, batches) for score in batch]

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _event_text(data: str, *, chat: bool, where: str) -> str:
    """The text delta of one server-sent event's JSON (``choices[0].delta.content`` or ``choices[0].text``).

    Example:
        >>> _event_text('{"choices": [{"delta": {"content": "Hi"}}]}', chat=True, where="x")
        'Hi'
    """
    import json

    try:
        event = json.loads(data)
    except ValueError as exc:
        raise BackendHTTPError(f"{where}: a stream event is not JSON") from exc
    if isinstance(event, dict) and event.get("error"):
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise BackendHTTPError(f"{where}: the server reported an error mid-stream: {str(message)[:300]}")
    choices = event.get("choices") if isinstance(event, dict) else None
    if not choices:
        return ""  # usage-only or keep-alive events
    choice = choices[0]
    text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
    return text or ""


def with_image_parts(r: GenerationRequest) -> GenerationRequest:
    """A chat request whose first user turn carries the images as ``image_url`` parts holding ``data:`` URIs.

    OpenAI's chat format (which vLLM, llama.cpp's server and Ollama's OpenAI endpoint accept) takes images only in
    chat messages, so a plain ``prompt`` with images becomes one user message: image parts first, then the text.
    Local files are sent inline as base64 ``data:`` URIs (a server cannot read this machine's paths, and clinforge
    never uploads to a third-party URL); a corrupt or missing file is an error naming it.

    Example:
        >>> r = with_image_parts(GenerationRequest(prompt="Any effusion?", images=["data:image/png;base64,AAAA"]))
        >>> [p["type"] for p in r.messages[0]["content"]], r.prompt
        (['image_url', 'text'], None)
    """
    from dataclasses import replace

    from clinforge.data.images.image_files import image_data_uri

    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": image_data_uri(src)}} for src in r.images]
    if r.messages is None:
        if r.prompt is None:
            raise ClinforgeError("a generation request needs a prompt or messages")
        messages = [{"role": "user", "content": parts + [{"type": "text", "text": r.prompt}]}]
    else:
        messages = [dict(m) for m in r.messages]
        first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
        if first_user is None:
            raise ClinforgeError("a request with images needs a user message to carry them")
        content = messages[first_user]["content"]
        text_parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        messages[first_user]["content"] = parts + text_parts
    return replace(r, messages=messages, prompt=None, images=[])


BACKENDS.register("openai", OpenAIBackend)
