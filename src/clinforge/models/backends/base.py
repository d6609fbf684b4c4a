"""One interface for every way clinforge talks to a model: in-process transformers, an OpenAI-compatible server
(vLLM, Ollama, llama.cpp), or in-process vLLM. Evaluation, judges, RLAIF and applications all use it.

A model SPEC is ``hf:PATH_OR_ID``, ``openai:BASE_URL#MODEL``, ``vllm:PATH_OR_ID`` or ``llamacpp:FILE.gguf``; a bare
path means ``hf:``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from clinforge.core.registry import Registry


@dataclass
class GenerationRequest:
    """A prompt (plain text or chat messages) and its decoding settings."""

    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    images: list[str] = field(default_factory=list)


@dataclass
class LoglikelihoodRequest:
    """Score ``continuation`` given ``context``, as lm-evaluation-harness does."""

    context: str
    continuation: str


class Backend:
    """Base class of model backends.

    ``loglikelihood`` returns, per request, the summed log-probability of the continuation tokens and whether
    greedy decoding would have produced exactly them (lm-evaluation-harness's ``(logprob, is_greedy)``).
    """

    scheme: str = ""
    model_name: str = ""
    # streams one instance can generate at the same time (None: no limit known); a server gives a backend no more
    # concurrent requests than this, so that a request waiting inside the backend is never mistaken for a hung one
    max_parallel_streams: int | None = None

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        raise NotImplementedError

    def chat(self, messages: list[dict[str, str]], **settings: Any) -> str:
        return self.generate([GenerationRequest(messages=messages, **settings)])[0]

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        raise NotImplementedError(f"the {self.scheme} backend cannot score log-likelihoods")

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Yield the generated text as deltas (their concatenation is what ``generate`` returns).

        The consumer cancels by closing the iterator (``close()``); a backend that streams for real must stop
        generating then. This default has nothing to stream: it generates the whole text and yields it once.

        Example:
            >>> class Echo(Backend):
            ...     def generate(self, requests): return [r.prompt.upper() for r in requests]
            >>> list(Echo().stream(GenerationRequest(prompt="ecg")))
            ['ECG']
        """
        text = self.generate([request])[0]
        if text:
            yield text

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``; backends with a tokenizer count exactly.

        This default is an ESTIMATE (about four characters a token for English), used only where a backend has no
        tokenizer here (a remote server): prompt caps and usage figures are approximate for such backends.

        Example:
            >>> Backend().count_tokens("twelve chars")
            3
        """
        return len(text) // 4

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Tokens the model reads for ``request``: the prompt, or the chat messages (as rendered by a backend that
        knows its chat template; this default counts the message texts).

        Example:
            >>> Backend().count_prompt_tokens(GenerationRequest(messages=[{"role": "user", "content": "12345678"}]))
            2
        """
        if request.messages is not None:
            return sum(self.count_tokens(str(m.get("content") or "")) for m in request.messages)
        return self.count_tokens(request.prompt or "")

    @property
    def context_length(self) -> int | None:
        """The model's context window in tokens, where the backend knows it (None: unknown)."""
        return None

    def close(self) -> None:
        """Release the model (GPU memory, HTTP connections)."""


BACKENDS: Registry[type[Backend]] = Registry("backend")


def cut_stream_at_stop(deltas: Iterator[str], stop: list[str]) -> Iterator[str]:
    """Pass ``deltas`` on, cut before the first stop string even when it is split across deltas.

    The tail that could still grow into a stop string is held back until the next delta decides it; closing this
    iterator closes ``deltas`` (so a backend stops generating).

    Example:
        >>> "".join(cut_stream_at_stop(iter(["Answer: B", "\\nQue", "stion: next"]), ["\\nQuestion:"]))
        'Answer: B'
    """
    stops = [s for s in stop if s]
    if not stops:
        yield from deltas
        return
    hold = max(len(s) for s in stops) - 1
    held = ""
    try:
        for delta in deltas:
            held += delta
            hits = [i for i in (held.find(s) for s in stops) if i != -1]
            if hits:
                if min(hits):
                    yield held[:min(hits)]
                return
            safe = len(held) - hold
            if safe > 0:
                yield held[:safe]
                held = held[safe:]
        if held:
            yield held
    finally:
        close = getattr(deltas, "close", None)
        if close is not None:
            close()


def lmeval_encode_pair(context: str, continuation: str, encode: Callable[[str], list[int]],
                       encode_plain: Callable[[str], list[int]], prefix_token_id: int) -> tuple[list[int], list[int]]:
    """Context and continuation tokens as lm-eval's ``LM.loglikelihood`` + ``_encode_pair`` make them.

    One copy of lm-eval's rule for every backend that scores log-likelihoods (hf, vllm, llamacpp), so their token
    boundaries cannot drift apart: an empty context becomes the prefix token (BOS, else EOS); trailing spaces of the
    context move to the continuation; the continuation is what encoding the whole adds after the context.
    ``encode`` is the backend's usual encoding (BOS as lm-eval adds it), ``encode_plain`` encodes without special
    tokens.

    Example:
        >>> words = {"Answer:": [7, 8], "Answer: A": [7, 8, 9], " A": [9]}
        >>> lmeval_encode_pair("Answer: ", "A", lambda t: [1] + words[t], lambda t: words[t], 1)
        ([1, 7, 8], [9])
    """
    if context == "":
        cont = encode_plain(continuation)
        if not cont or prefix_token_id != cont[0]:
            return [prefix_token_id], cont
        return cont[:1], cont[1:]
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(context + continuation)
    ctx = encode(context)
    return ctx, whole[len(ctx):]


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a model SPEC into scheme and target; a bare path (no ``SCHEME:``) means ``hf``.

    A prefix that looks like a scheme but names no backend (``opnai:http://...``, ``hff:runs/x``) is an error
    listing the valid schemes, not a silent ``hf`` path; a local path that really holds a colon still means ``hf``.

    Example:
        >>> parse_spec("openai:http://127.0.0.1:8000/v1#medllm")
        ('openai', 'http://127.0.0.1:8000/v1#medllm')
        >>> parse_spec("runs/tiny/model")
        ('hf', 'runs/tiny/model')
        >>> parse_spec("opnai:http://127.0.0.1:8000/v1#medllm")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: model SPEC 'opnai:...': unknown scheme 'opnai'; valid: hf, llamacpp, openai, ...vllm ...
    """
    import os
    import re

    from clinforge.core.errors import ConfigError

    scheme, sep, rest = spec.partition(":")
    valid = sorted(set(BACKENDS.names()) | {"hf", "llamacpp", "openai", "vllm"})
    if sep and scheme in valid:
        return scheme, rest
    # "C:\\models\\x" (a drive letter) and existing local paths are paths; any other NAME: prefix is a typo
    if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9_+.-]+", scheme) and not os.path.exists(spec):
        raise ConfigError(f"model SPEC {scheme + ':...'!r}: unknown scheme {scheme!r}; valid: {', '.join(valid)} "
                          "(hf:PATH_OR_ID, openai:BASE_URL#MODEL, vllm:PATH_OR_ID, llamacpp:FILE.gguf; a bare local path means hf)")
    return "hf", spec


def load_backend(spec: str, **options: Any) -> Backend:
    """Build the backend a SPEC names (``options`` go to its constructor)."""
    scheme, target = parse_spec(spec)
    return BACKENDS.get(scheme)(target, **options)
