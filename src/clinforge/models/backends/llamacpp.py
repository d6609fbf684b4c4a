"""In-process llama.cpp backend through llama-cpp-python: the edge path (a GGUF file, CPU, no server, no network).

SPEC: ``llamacpp:FILE.gguf`` or ``llamacpp:FILE.gguf#n_ctx=4096,n_threads=4,seed=0`` (options after ``#``,
comma-separated ``key=value``; the same keys can be passed to ``load_backend`` as keyword arguments).

* Chat messages are rendered with the chat template stored in the GGUF (``tokenizer.chat_template``), with the
  same Jinja environment llama-cpp-python's own server uses (which mirrors transformers'), so a request renders to
  the same text here, in ``llama_cpp.server`` and in the ``hf`` backend on the converted folder.
* ``generate`` / ``stream``: greedy when ``temperature == 0``; otherwise temperature + top-p sampling only (top-k
  and min-p off, as in the hf backend) with the request's seed. Stop strings are never emitted (llama-cpp-python
  holds back a partial match). ``stream`` yields text deltas; closing the iterator stops generation at the next
  token and frees the model for the next request.
* ``count_tokens``: exact, with the GGUF's own tokenizer. ``context_length``: the context the model was loaded with.
* ``loglikelihood``: lm-evaluation-harness semantics (as the hf backend: trailing context spaces move to the
  continuation, an empty context becomes BOS/EOS), scored from full logits. Those need ``logits_all``, which makes
  every prompt evaluation project all positions onto the vocabulary, so a second llama.cpp context with
  ``logits_all`` is created on first use only; requests are sorted so that options of one question share their
  evaluated context (the KV cache of the common prefix is kept).

One llama.cpp context is not re-entrant: calls are serialised by a lock (a streaming request holds it until the
stream ends or is closed). Prompts that do not fit the context raise ``ContextLengthError`` rather than being cut.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError, ConfigError, ContextLengthError
from clinforge.models.backends.base import (
    BACKENDS,
    Backend,
    GenerationRequest,
    LoglikelihoodRequest,
    lmeval_encode_pair,
)

DEFAULT_N_CTX = 4096  # capped by the model's trained context; a bigger window costs KV-cache memory on small devices
INSTALL_HINT = ("the llamacpp backend needs llama-cpp-python: pip install 'clinforge[edge]' (it builds llama.cpp from "
                "source, ~12 minutes on 2 cores; scripts/install.sh sets the CMAKE_ARGS it needs, docs/edge.md)")

# options accepted in the SPEC fragment, with the type each value is parsed to
OPTION_TYPES: dict[str, type] = {"n_ctx": int, "n_threads": int, "n_threads_batch": int, "n_batch": int, "seed": int,
                                 "n_gpu_layers": int, "flash_attn": bool, "use_mmap": bool, "verbose": bool}


def parse_target(target: str) -> tuple[str, dict[str, Any]]:
    """Split ``FILE.gguf#key=value,...`` into the path and typed options.

    Example:
        >>> parse_target("models/smol.gguf#n_ctx=2048,flash_attn=true")
        ('models/smol.gguf', {'n_ctx': 2048, 'flash_attn': True})
        >>> parse_target("m.gguf#ctx=1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: llamacpp:m.gguf#ctx=1: unknown option 'ctx'...
    """
    path, _, fragment = target.partition("#")
    options: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in fragment.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if key not in OPTION_TYPES:
            from clinforge.core.errors import did_you_mean

            raise ConfigError(f"llamacpp:{target}: unknown option {key!r}{did_you_mean(key, OPTION_TYPES)}; valid: "
                              f"{', '.join(OPTION_TYPES)}")
        if not sep:
            raise ConfigError(f"llamacpp:{target}: option {key!r} needs a value (key=value)")
        kind = OPTION_TYPES[key]
        try:
            if kind is bool:
                if value.strip().lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                options[key] = value.strip().lower() in ("1", "true", "yes")
            else:
                options[key] = kind(value)
        except ValueError:
            raise ConfigError(f"llamacpp:{target}: option {key}={value!r} is not a valid {kind.__name__}") from None
    return path, options


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise ClinforgeError(INSTALL_HINT) from exc
    warn_if_amx_build(llama_cpp)
    return llama_cpp


AMX_WARNING = ("warning: this llama-cpp-python was built with llama.cpp's AMX backend (AMX_INT8 = 1), which "
               "segfaults on some Intel Sapphire Rapids machines and VMs (llama.cpp#20824). If this process dies "
               "with a segmentation fault, rebuild without AMX: docs/edge.md (scripts/install.sh does it).")
_amx_warned = False


def warn_if_amx_build(llama_cpp) -> bool:
    """Print :data:`AMX_WARNING` to stderr once per process when ``llama_cpp`` reports ``AMX_INT8 = 1``; returns
    whether it does. A crash in native code kills the process without a Python error, so the hint must come first.

    Example:
        >>> import types
        >>> fake = types.SimpleNamespace(llama_print_system_info=lambda: b"CPU : AVX2 = 1 | REPACK = 1 |")
        >>> warn_if_amx_build(fake)
        False
    """
    global _amx_warned
    try:
        info = llama_cpp.llama_print_system_info()
    except Exception:  # an older or different binding: nothing to report
        return False
    amx = "AMX_INT8 = 1" in (info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info))
    if amx and not _amx_warned:
        _amx_warned = True
        import sys

        print(AMX_WARNING, file=sys.stderr)
    return amx


class LlamaCppBackend(Backend):
    """A GGUF model run in this process by llama.cpp (CPU by default; ``n_gpu_layers`` offloads when built for it).

    Args:
        target: ``FILE.gguf`` with optional ``#key=value,...`` options (see ``OPTION_TYPES``).
        n_ctx: context window in tokens (default: the model's trained context, at most 4096).
        n_threads: CPU threads of token generation (default: llama-cpp-python's, half the cores).
        n_threads_batch: CPU threads of prompt evaluation (default: ``n_threads``, as llama.cpp's own tools do;
            llama-cpp-python would take every core, which on a shared or busy machine makes its threads wait for
            each other: measured 10-100x slower prompt evaluation at load ~6 on 2 cores, docs/edge.md).
        seed: default sampling seed of requests that give none.
        chat_template: override the GGUF's template (a Jinja string).

    Example:
        >>> from clinforge.models.backends import load_backend  # doctest: +SKIP
        >>> be = load_backend("llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf#n_ctx=2048")  # doctest: +SKIP
        >>> "".join(be.stream(GenerationRequest(messages=[{"role": "user", "content": "Define ECG."}])))  # doctest: +SKIP
        'An electrocardiogram (ECG) is ...'
    """

    scheme = "llamacpp"
    max_parallel_streams = 1  # one llama.cpp context, one sequence: calls are serialised by self._lock

    def __init__(self, target: str, *, n_ctx: int | None = None, n_threads: int | None = None,
                 n_threads_batch: int | None = None, seed: int = 0, n_batch: int = 512, n_gpu_layers: int = 0,
                 flash_attn: bool = False, use_mmap: bool = True, verbose: bool = False,
                 chat_template: str | None = None, batch_size: int | None = None):
        path, options = parse_target(target)
        # options in the SPEC fragment win over keyword defaults: the SPEC is what the user wrote last
        settings = {"n_ctx": n_ctx, "n_threads": n_threads, "n_threads_batch": n_threads_batch, "seed": seed,
                    "n_batch": n_batch, "n_gpu_layers": n_gpu_layers, "flash_attn": flash_attn, "use_mmap": use_mmap,
                    "verbose": verbose}
        settings.update(options)
        self.path = Path(path)
        self.model_name = self.path.name
        if not self.path.is_file():
            raise ClinforgeError(f"{self.path}: GGUF file does not exist (llamacpp SPEC is llamacpp:FILE.gguf)")
        with open(self.path, "rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ClinforgeError(f"{self.path}: not a GGUF file (the first bytes are not 'GGUF')")
        llama_cpp = _import_llama_cpp()
        self._lock = threading.Lock()
        self.seed = int(settings["seed"])
        self._llama_kwargs = {k: settings[k] for k in ("n_threads", "n_batch", "n_gpu_layers", "flash_attn",
                                                       "use_mmap", "verbose")}
        self._llama_kwargs["seed"] = self.seed
        if not self._llama_kwargs["n_threads"]:
            import multiprocessing

            self._llama_kwargs["n_threads"] = max(multiprocessing.cpu_count() // 2, 1)  # llama-cpp-python's default
        self._llama_kwargs["n_threads_batch"] = settings["n_threads_batch"] or self._llama_kwargs["n_threads"]
        for key in ("n_threads", "n_threads_batch"):
            if int(self._llama_kwargs[key]) < 1:
                raise ConfigError(f"llamacpp:{target}: {key} must be >= 1, got {self._llama_kwargs[key]}")
        # the header alone (gguf package) gives the trained context; llama.cpp would need a context to say it
        from clinforge.models.gguf_import import read_gguf_metadata

        header = read_gguf_metadata(self.path)
        trained = int(header.get(f"{header.get('general.architecture', '')}.context_length", 0) or 0)
        if settings["n_ctx"]:
            self.n_ctx = int(settings["n_ctx"])
        else:
            self.n_ctx = min(trained, DEFAULT_N_CTX) if trained > 0 else DEFAULT_N_CTX
        try:
            self.llm = llama_cpp.Llama(str(self.path), n_ctx=self.n_ctx, **self._llama_kwargs)
        except ValueError as exc:  # llama-cpp-python reports a file llama.cpp cannot load as ValueError
            raise ClinforgeError(f"{self.path}: llama.cpp cannot load this GGUF: {exc}") from exc
        self.metadata = dict(self.llm.metadata)
        self._scorer: Any = None
        self._template = chat_template or self.metadata.get("tokenizer.chat_template")
        self._formatter: Any = None
        self._fingerprint: str | None = None

    # ---------------------------------------------------------------- tokens
    @property
    def context_length(self) -> int:
        """The context window (prompt + generated tokens) this backend was loaded with."""
        return self.n_ctx

    def _tokenize(self, text: str, *, add_special: bool) -> list[int]:
        # special=True: "<|im_start|>" in the text is the control token, as transformers' tokenizers parse it
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True))

    def count_tokens(self, text: str) -> int:
        """Exact number of tokens of ``text`` under the GGUF's tokenizer (no BOS added).

        Example:
            >>> be.count_tokens("chest pain")  # doctest: +SKIP
            2
        """
        return len(self._tokenize(text, add_special=False))

    @property
    def prefix_token_id(self) -> int:
        """BOS, else EOS: the token lm-eval uses as context for an empty context."""
        bos = self.llm.token_bos()
        return bos if bos != -1 else self.llm.token_eos()

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation tokens as lm-eval's ``_encode_pair`` makes them (see the hf backend)."""
        return lmeval_encode_pair(context, continuation, lambda text: self._tokenize(text, add_special=True),
                                  lambda text: self._tokenize(text, add_special=False), self.prefix_token_id)

    # ---------------------------------------------------------------- prompts
    def render_prompt(self, request: GenerationRequest) -> str:
        """The text the model sees: the prompt, or the messages through the GGUF's chat template."""
        if request.messages is not None:
            if not self._template:
                raise ClinforgeError(f"{self.path}: the GGUF has no tokenizer.chat_template; send a plain prompt "
                                     "instead")
            if self._formatter is None:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                eos, bos = self.llm.token_eos(), self.llm.token_bos()
                self._formatter = Jinja2ChatFormatter(
                    template=self._template,
                    eos_token=self.llm._model.token_get_text(eos) if eos != -1 else "",
                    bos_token=self.llm._model.token_get_text(bos) if bos != -1 else "",
                    add_generation_prompt=True)
            return self._formatter(messages=request.messages).prompt
        if request.prompt is None:
            raise ClinforgeError("a generation request needs a prompt or messages")
        return request.prompt

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """Token ids of the rendered prompt: a chat template writes its own special tokens; a plain prompt gets
        the model's BOS when its tokenizer adds one (as transformers' ``encode`` does)."""
        return self._tokenize(self.render_prompt(request), add_special=request.messages is None)

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Exact tokens of the rendered prompt (what ``stream`` feeds llama.cpp): the server's length check."""
        return len(self.prompt_tokens(request))

    # ---------------------------------------------------------------- generation
    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Yield the generated text as deltas; closing the iterator stops generation at the next token.

        Raises ``ContextLengthError`` when prompt plus ``max_new_tokens`` exceed the context.
        """
        if request.images:
            raise ClinforgeError("the llamacpp backend serves text models; it cannot take images")
        tokens = self.prompt_tokens(request)
        if len(tokens) + max(0, request.max_new_tokens) > self.n_ctx:
            raise ContextLengthError(f"{self.model_name}: the prompt has {len(tokens)} tokens and "
                                     f"max_new_tokens is {request.max_new_tokens}; together more than the context "
                                     f"of {self.n_ctx} tokens", n_tokens=len(tokens) + request.max_new_tokens,
                                     limit=self.n_ctx)
        return self._stream_tokens(tokens, request)

    def _stream_tokens(self, tokens: list[int], request: GenerationRequest) -> Iterator[str]:
        greedy = not request.temperature or request.temperature <= 0
        settings: dict[str, Any] = {
            "max_tokens": request.max_new_tokens, "stop": list(request.stop) or None, "stream": True,
            "temperature": 0.0 if greedy else float(request.temperature),
            "top_p": 1.0 if greedy else float(request.top_p),
            "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0,
            "seed": self.seed if request.seed is None else int(request.seed)}
        with self._lock:
            chunks = self.llm.create_completion(prompt=tokens, **settings)
            try:
                for chunk in chunks:
                    text = chunk["choices"][0]["text"]
                    if text:
                        yield text
            finally:
                # a consumer that closes us early closes llama-cpp-python's generator too: no more tokens decoded
                chunks.close()

    def generate(self, requests: list[GenerationRequest], progress: Any = None) -> list[str]:
        """Generate each request in turn (one llama.cpp context serves one sequence at a time)."""
        from clinforge.models.backends.hf_inprocess import apply_stop

        out = []
        for request in requests:
            out.append(apply_stop("".join(self.stream(request)), request.stop))
            if progress:
                progress(1)
        return out

    # ---------------------------------------------------------------- scoring
    def _scoring_context(self) -> Any:
        if self._scorer is None:
            llama_cpp = _import_llama_cpp()
            self._scorer = llama_cpp.Llama(str(self.path), n_ctx=self.n_ctx, logits_all=True, **self._llama_kwargs)
        return self._scorer

    def loglikelihood(self, requests: list[LoglikelihoodRequest], progress: Any = None) -> list[tuple[float, bool]]:
        """Summed log-probability of each continuation given its context, and whether it is the greedy one.

        Example:
            >>> be.loglikelihood([LoglikelihoodRequest("The heart has four", " chambers")])  # doctest: +SKIP
            [(-0.41, True)]
        """
        import numpy as np

        encoded = [self.encode_pair(r.context, r.continuation) for r in requests]
        inputs = []
        for i, (ctx, cont) in enumerate(encoded):
            if not ctx or not cont:
                raise ClinforgeError(f"loglikelihood request {i}: empty context or continuation after tokenisation")
            full = (ctx + cont)[-(self.n_ctx + 1):]
            inputs.append(full[:-1])
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        # neighbours in sorted order share their longest prefix: it stays in the KV cache and is not evaluated again
        order = sorted(range(len(requests)), key=lambda i: inputs[i])
        with self._lock:
            scorer = self._scoring_context()
            for done, i in enumerate(order, 1):
                ids, cont = inputs[i], encoded[i][1]
                cached = list(scorer.input_ids[:scorer.n_tokens])
                keep = 0
                for a, b in zip(cached, ids, strict=False):
                    if a != b:
                        break
                    keep += 1
                keep = min(keep, len(ids) - 1)  # re-evaluate at least the last token so its logits are current
                scorer.n_tokens = keep
                scorer.eval(ids[keep:])
                logits = np.asarray(scorer.scores[len(ids) - len(cont):len(ids)], dtype=np.float64)
                peak = logits.max(axis=1, keepdims=True)
                logprobs = logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))
                picked = logprobs[np.arange(len(cont)), cont]
                results[i] = (float(picked.sum()), bool((logprobs.argmax(axis=1) == np.asarray(cont)).all()))
                if progress and done % 16 == 0:
                    progress(16)
        if progress and len(order) % 16:
            progress(len(order) % 16)
        if any(r is None or math.isnan(r[0]) for r in results):
            raise ClinforgeError("internal error: a loglikelihood request was not scored")
        return [r for r in results if r is not None]

    # ---------------------------------------------------------------- bookkeeping
    def fingerprint(self) -> str:
        """The scheme, the GGUF's sha256 and the context size: what decides the outputs (request-cache key)."""
        if self._fingerprint is None:
            from clinforge.core.io import sha256_file

            self._fingerprint = f"llamacpp|{sha256_file(self.path)}|n_ctx={self.n_ctx}"
        return self._fingerprint

    def close(self) -> None:
        """Free the llama.cpp contexts and the model."""
        for llm in (getattr(self, "llm", None), self._scorer):
            if llm is not None:
                llm.close()
        self._scorer = None


BACKENDS.register("llamacpp", LlamaCppBackend)
