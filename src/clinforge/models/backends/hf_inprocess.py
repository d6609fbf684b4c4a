"""In-process transformers backend: batched generation, chat templates and lm-evaluation-harness-exact scoring.

``loglikelihood`` reproduces lm-evaluation-harness 0.4.13's ``HFLM`` (causal models) number for number:

* tokenisation as ``LM._encode_pair``: trailing spaces of the context move to the continuation, the whole string
  ``context + continuation`` is encoded, and the continuation tokens are ``whole[len(encode(context)):]``; an empty
  context is replaced by the prefix token (BOS, else EOS) exactly as ``LM.loglikelihood`` does;
* the model input is ``(context_tokens + continuation_tokens)[-(max_length + 1):][:-1]``, right-padded, without an
  attention mask (padding sits after every scored position of a causal model, so it cannot change them);
* the score is the sum of ``log_softmax`` over the continuation tokens and ``is_greedy`` is whether every
  continuation token is the arg-max.

Why this is written by hand and not delegated to ``lm_eval.models.huggingface.HFLM``: it makes lm-eval a hard
runtime dependency and scores each request in full. We share work instead: requests whose model input
``(context + continuation)[:-1]`` is the same token sequence (every option of a multiple-choice question whose
options are one token, such as " A".." D") run ONE forward pass, and only the positions that are scored are
projected onto the vocabulary (``logits_to_keep``), so a question costs about one forward pass of its context.
Continuations longer than one token are scored against a KV cache of their shared context (the context runs once,
then all options of the question run together on top of it; several questions share each batch), still one context
pass per question.
Inputs that start with the same ``min_shared_prefix`` (32) or more tokens -- the few-shot examples and description
that every question of a K-shot run repeats -- run that prefix once (batch of one, KV cache kept); each input then
runs only its own suffix on top of the cache. The scored positions always lie in the suffix, and the suffix sees
the same keys and values at the same positions as a full pass, so the numbers equal the full pass up to float
rounding (~1e-6 on SmolLM2-135M, tested against lm-eval). Models whose cache is not a plain growing key/value cache
(sliding windows, recurrent state) take the full-pass path.
Requests are sorted by length (longest first, as lm-eval does) and batched.
"""

from __future__ import annotations

import inspect
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from clinforge.core.errors import ClinforgeError
from clinforge.models.backends.base import (
    BACKENDS,
    Backend,
    GenerationRequest,
    LoglikelihoodRequest,
    cut_stream_at_stop,
    lmeval_encode_pair,
)

DEFAULT_MAX_LENGTH = 2048  # lm-eval's DEFAULT_MAX_LENGTH when neither config nor tokenizer names one
_TOKENIZER_INFINITY = 1_000_000_000


def resolve_max_length(config: Any, tokenizer: Any, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The model's context length, looked up as lm-eval's ``resolve_max_length`` does.

    Order: ``config.text_config`` then ``config`` attributes ``n_positions``, ``max_position_embeddings``, ``n_ctx``;
    then ``tokenizer.model_max_length`` unless it is the "infinite" sentinel; then ``default``.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> resolve_max_length(NS(max_position_embeddings=512), NS(model_max_length=10**30))
        512
    """
    for cfg in (getattr(config, "text_config", None), config):
        if cfg is None:
            continue
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
    tok_len = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_len, int) and 0 < tok_len < _TOKENIZER_INFINITY:
        return tok_len
    return default


def apply_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first occurrence of any stop string.

    Example:
        >>> apply_stop("Answer: B\\nQuestion: next", ["\\nQuestion:"])
        'Answer: B'
    """
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


class HFBackend(Backend):
    """A transformers causal LM in this process.

    Args:
        target: a local folder or hub id (hub ids need network or a filled HF cache).
        batch_size: requests per forward pass.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda:0"``...
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"``.
        max_length: context length; default as lm-eval resolves it.
        add_bos_token: like lm-eval's option of the same name (None: the tokenizer's default).
        model / tokenizer: pass already-loaded objects instead of loading ``target``.
        min_shared_prefix: inputs that share at least this many leading tokens run them once (KV cache reuse).

    Example:
        >>> from clinforge.models.backends import load_backend  # doctest: +SKIP
        >>> be = load_backend("hf:runs/tiny/model", batch_size=8)  # doctest: +SKIP
        >>> be.loglikelihood([LoglikelihoodRequest("Question: 2+2?\\nAnswer:", " 4")])  # doctest: +SKIP
        [(-3.2, False)]
    """

    scheme = "hf"

    def __new__(cls, target: str = "", *args: Any, **kwargs: Any) -> HFBackend:
        # a vision-language folder gets the image-taking subclass (same SPEC, hf:PATH); its __init__ then runs
        if cls is HFBackend and kwargs.get("model") is None and isinstance(target, str) and target:
            from clinforge.models.backends.hf_vision import HFVisionBackend, vlm_target

            if vlm_target(target) is not None:
                return super().__new__(HFVisionBackend)
        return super().__new__(cls)

    def __init__(self, target: str, *, batch_size: int = 8, device: str = "auto", dtype: str = "auto",
                 max_length: int | None = None, add_bos_token: bool | None = None, trust_remote_code: bool = False,
                 model: Any = None, tokenizer: Any = None, min_shared_prefix: int = 32):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from clinforge.models.offline_models import resolve_model_ref

        self.model_name = target
        if model is None or tokenizer is None:
            target = resolve_model_ref(target)  # hf:smollm2-135m-instruct -> its fetched folder, before any hub id
        self.batch_size = max(1, int(batch_size))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if tokenizer is None:
            tokenizer = self._load(AutoTokenizer.from_pretrained, target, trust_remote_code=trust_remote_code)
        if model is None:
            torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
            model = self._load(AutoModelForCausalLM.from_pretrained, target, dtype=torch_dtype,
                               trust_remote_code=trust_remote_code)
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()
        self.add_bos_token = add_bos_token
        self.min_shared_prefix = max(1, int(min_shared_prefix))
        self.max_length = int(max_length) if max_length else resolve_max_length(self.model.config, tokenizer)
        try:
            params = inspect.signature(self.model.forward).parameters
        except (TypeError, ValueError):
            params = {}
        self._supports_logits_to_keep = "logits_to_keep" in params
        # transformers 5 renamed past_key_values -> cache; use whichever this model's forward takes
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        if self.tokenizer.pad_token_id is None:
            # generation needs a pad id; EOS is the usual choice and is never scored (padding is masked/ignored)
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @staticmethod
    def _load(fn: Any, target: str, **kwargs: Any) -> Any:
        try:
            return fn(target, **kwargs)
        except OSError as exc:
            if not os.path.exists(target):
                from clinforge.models.backends.base import BACKENDS

                raise ClinforgeError(f"cannot load hf model {target!r}: not a local folder and not in the HF cache "
                                     "(clinforge runs offline; pass a local path). A model SPEC is SCHEME:TARGET "
                                     f"with SCHEME one of: {', '.join(BACKENDS.names())}") from exc
            raise ClinforgeError(f"cannot load hf model from {target}: {exc}") from exc

    def fingerprint(self) -> str:
        """A string that changes when the model or tokenizer changes (used as the request-cache key).

        Computed once per loaded backend: the weights in memory are what scores, and hashing a 0.5 GB safetensors
        file again for every evaluation of the same loaded model cost seconds each time."""
        if getattr(self, "_fingerprint", None) is None:
            self._fingerprint = self._hash_files()
        return self._fingerprint

    def _hash_files(self) -> str:
        from clinforge.core.io import sha256_file

        parts = [self.scheme, str(self.add_bos_token), str(self.max_length)]
        target = self.model_name
        if os.path.isdir(target):
            for name in sorted(os.listdir(target)):
                path = os.path.join(target, name)
                if os.path.isfile(path) and (name.endswith((".safetensors", ".bin", ".json", ".model", ".jinja"))):
                    parts.append(f"{name}:{sha256_file(path)}")
        else:
            parts.append(target)
        return "|".join(parts)

    # ---------------------------------------------------------------- tokenisation (lm-eval semantics)
    @property
    def prefix_token_id(self) -> int:
        """BOS, else EOS: the token lm-eval uses as context for an empty context."""
        if self.tokenizer.bos_token_id is not None:
            return self.tokenizer.bos_token_id
        return self.tokenizer.eos_token_id

    def tok_encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        """Encode as lm-eval's ``HFLM.tok_encode`` (no BOS added twice when the text already starts with it)."""
        kwargs: dict[str, Any] = {}
        if add_special_tokens is not None:
            kwargs["add_special_tokens"] = add_special_tokens
        elif self.add_bos_token is not None:
            kwargs["add_special_tokens"] = self.add_bos_token
        if add_special_tokens is None:
            bos = self.tokenizer.decode(self.prefix_token_id)
            if bos and text.startswith(bos):
                kwargs["add_special_tokens"] = False
        return self.tokenizer.encode(text, **kwargs)

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation tokens exactly as lm-eval's ``LM.loglikelihood`` + ``_encode_pair`` make them.

        Example:
            >>> be.encode_pair("Answer:", " A")  # doctest: +SKIP
            ([1, 733, 28747], [330])
        """
        return lmeval_encode_pair(context, continuation, self.tok_encode,
                                  lambda text: self.tok_encode(text, add_special_tokens=False), self.prefix_token_id)

    # ---------------------------------------------------------------- scoring
    def loglikelihood(self, requests: list[LoglikelihoodRequest], progress: Any = None) -> list[tuple[float, bool]]:
        """Summed log-probability of each continuation given its context, and whether it is the greedy one.

        ``progress`` (optional) is called with the number of requests finished after each batch.
        """
        encoded = [self.encode_pair(r.context, r.continuation) for r in requests]
        return self.loglikelihood_tokens(encoded, progress=progress)

    def loglikelihood_tokens(self, encoded: list[tuple[list[int], list[int]]],
                             progress: Any = None) -> list[tuple[float, bool]]:
        """Score already-tokenised ``(context_tokens, continuation_tokens)`` pairs (see the module docstring)."""
        import torch

        results: list[tuple[float, bool] | None] = [None] * len(encoded)
        single: dict[tuple[int, ...], list[tuple[int, list[int]]]] = defaultdict(list)
        multi: dict[tuple[int, ...], list[tuple[int, list[int]]]] = defaultdict(list)
        for i, (ctx, cont) in enumerate(encoded):
            if not ctx or not cont:
                raise ClinforgeError(f"loglikelihood request {i}: empty context or continuation after tokenisation")
            full = (ctx + cont)[-(self.max_length + 1):]
            model_input = tuple(full[:-1])
            if len(cont) == 1 or len(full) < len(ctx) + len(cont):
                # one-token continuation, or truncated into the context: score from its own input sequence
                single[model_input].append((i, cont))
            else:
                multi[tuple(ctx)].append((i, cont))

        # 1) shared inputs: one row per distinct (context + continuation)[:-1]; inputs that share a long prefix
        #    (few-shot examples, an instruction) run that prefix once and only their own suffixes on its KV cache
        singles = list(single.items())
        keeps = [max(len(c) for _, c in members) for _, members in singles]
        clusters, alone = shared_prefix_clusters([inp for inp, _ in singles], keeps, self.min_shared_prefix)
        groups = sorted((singles[i] for i in alone), key=lambda kv: (-len(kv[0]), kv[0]))
        with torch.inference_mode():
            for prefix_len, members_of in clusters:
                cluster = [singles[i] for i in members_of]
                if not self._score_cluster(cluster, prefix_len, results, progress):
                    groups.extend(cluster)  # this model's cache cannot be shared: score these rows in full
            groups.sort(key=lambda kv: (-len(kv[0]), kv[0]))
            for start in range(0, len(groups), self.batch_size):
                batch = groups[start:start + self.batch_size]
                inputs = [list(inp) for inp, _ in batch]
                keep = max(len(c) for _, members in batch for _, c in members)
                logprobs = self._scored_logprobs(inputs, keep)  # [B, keep, V], aligned to each row's end
                for row, (_, members) in enumerate(batch):
                    for index, cont in members:
                        results[index] = self._score(logprobs[row, keep - len(cont):], cont)
                if progress:
                    progress(sum(len(m) for _, m in batch))

            # 2) multi-token continuations: each context runs once, all its options run on its KV cache; several
            #    questions share a batch (about batch_size option rows per forward)
            ctx_groups = sorted(multi.items(), key=lambda kv: (-len(kv[0]), kv[0]))
            batch: list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]] = []
            for group in ctx_groups + [None]:  # None flushes the last batch
                rows = sum(len(m) for _, m in batch)
                if batch and (group is None or rows + len(group[1]) > self.batch_size):
                    scores = self._score_on_prefixes([list(ctx) for ctx, _ in batch],
                                                     [[c for _, c in members] for _, members in batch])
                    for (_, members), group_scores in zip(batch, scores, strict=True):
                        for (index, _cont), score in zip(members, group_scores, strict=True):
                            results[index] = score
                    if progress:
                        progress(rows)
                    batch = []
                if group is not None:
                    batch.append(group)
        return [r for r in results if r is not None] if all(r is not None for r in results) else _missing(results)

    def _score_cluster(self, cluster: list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]], prefix_len: int,
                       results: list[Any], progress: Any) -> bool:
        """Score inputs that share their first ``prefix_len`` tokens: the prefix runs once (batch of one, its KV cache
        kept), then the suffixes run in right-padded batches on top of that cache. Returns False, scoring nothing,
        when the model's cache is not a plain growing key/value cache (sliding windows, recurrent state)."""
        import torch
        import torch.nn.functional as F

        prefix = torch.tensor([list(cluster[0][0][:prefix_len])], dtype=torch.long, device=self.device)
        out = self.model(prefix, use_cache=True, **({"logits_to_keep": 1} if self._supports_logits_to_keep else {}))
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        layers = getattr(cache, "layers", None)
        if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
            return False
        prefix_kv = [(layer.keys, layer.values) for layer in layers]
        pad = self.tokenizer.pad_token_id or 0
        rows = sorted(cluster, key=lambda kv: (-len(kv[0]), kv[0]))
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            suffixes = [inp[prefix_len:] for inp, _ in batch]
            keep = max(len(c) for _, members in batch for _, c in members)
            width = max(len(x) for x in suffixes)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            positions = torch.zeros((len(batch), keep), dtype=torch.long)
            for row, x in enumerate(suffixes):
                ids[row, :len(x)] = torch.tensor(x, dtype=torch.long)
                positions[row] = torch.arange(len(x) - keep, len(x)).clamp(min=0)
            for layer, (k, v) in zip(layers, prefix_kv, strict=True):
                # a view, not a copy: the forward concatenates the suffix keys onto it into new tensors, so the
                # prefix stays intact for the next batch
                layer.keys, layer.values = k.expand(len(batch), -1, -1, -1), v.expand(len(batch), -1, -1, -1)
            logits = self._forward_logits(ids.to(self.device), positions.to(self.device), use_cache=True,
                                          **{self._cache_kwarg: cache})
            logprobs = F.log_softmax(logits.float(), dim=-1).cpu()
            for row, (_, members) in enumerate(batch):
                for index, cont in members:
                    results[index] = self._score(logprobs[row, keep - len(cont):], cont)
            if progress:
                progress(sum(len(m) for _, m in batch))
        return True

    def _forward_logits(self, input_ids: Any, positions: Any, **kwargs: Any) -> Any:
        """Logits at ``positions`` ([B, K] indices) only, when the model supports ``logits_to_keep``."""
        import torch

        if self._supports_logits_to_keep:
            return self.model(input_ids, logits_to_keep=positions, **kwargs).logits
        logits = self.model(input_ids, **kwargs).logits
        return torch.take_along_dim(logits, positions[..., None], dim=1)

    def _scored_logprobs(self, inputs: list[list[int]], keep: int) -> Any:
        """Right-padded batch forward; log-softmax of each row's last ``keep`` positions: [B, keep, V]."""
        import torch
        import torch.nn.functional as F

        width = max(len(x) for x in inputs)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(inputs), width), pad, dtype=torch.long)
        positions = torch.zeros((len(inputs), keep), dtype=torch.long)
        for row, x in enumerate(inputs):
            ids[row, :len(x)] = torch.tensor(x, dtype=torch.long)
            # positions of the last `keep` real tokens; clamp for rows shorter than `keep` (never read then)
            positions[row] = torch.arange(len(x) - keep, len(x)).clamp(min=0)
        logits = self._forward_logits(ids.to(self.device), positions.to(self.device))
        return F.log_softmax(logits.float(), dim=-1).cpu()

    def _score_on_prefixes(self, contexts: list[list[int]],
                           conts: list[list[list[int]]]) -> list[list[tuple[float, bool]]]:
        """Score multi-token continuations of several contexts: each context once (right-padded batch with its KV
        cache kept), then every option on top of its own context's cache rows (attention mask hides the padding,
        position ids continue each context)."""
        import torch
        import torch.nn.functional as F

        n_ctx, width = len(contexts), max(len(c) for c in contexts)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((n_ctx, width), pad, dtype=torch.long)
        mask = torch.zeros((n_ctx, width), dtype=torch.long)
        last = torch.zeros((n_ctx, 1), dtype=torch.long)
        for row, ctx in enumerate(contexts):
            ids[row, :len(ctx)] = torch.tensor(ctx, dtype=torch.long)
            mask[row, :len(ctx)] = 1
            last[row, 0] = len(ctx) - 1
        kwargs = {"attention_mask": mask.to(self.device), "use_cache": True}
        out = self.model(ids.to(self.device), logits_to_keep=last.to(self.device), **kwargs) \
            if self._supports_logits_to_keep else self.model(ids.to(self.device), **kwargs)
        logits = out.logits if self._supports_logits_to_keep else torch.take_along_dim(
            out.logits, last.to(self.device)[..., None], dim=1)
        first = F.log_softmax(logits[:, 0].float(), dim=-1).cpu()  # predicts each continuation's first token
        cache = getattr(out, "cache", None) or out.past_key_values

        owners = [g for g, options in enumerate(conts) for _ in options]
        flat = [c for options in conts for c in options]
        cont_width = max(len(c) for c in flat) - 1
        cont_ids = torch.full((len(flat), cont_width), pad, dtype=torch.long)
        cont_mask = torch.zeros((len(flat), width + cont_width), dtype=torch.long)
        positions = torch.zeros((len(flat), cont_width), dtype=torch.long)
        for row, (g, c) in enumerate(zip(owners, flat, strict=True)):
            cont_ids[row, :len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
            cont_mask[row, :width] = mask[g]
            cont_mask[row, width:width + len(c) - 1] = 1
            positions[row] = torch.arange(len(contexts[g]), len(contexts[g]) + cont_width)
        cache.batch_select_indices(torch.tensor(owners, dtype=torch.long, device=self.device))
        rest = self.model(cont_ids.to(self.device), attention_mask=cont_mask.to(self.device),
                          position_ids=positions.to(self.device), use_cache=True,
                          **{self._cache_kwarg: cache}).logits
        rest = F.log_softmax(rest.float(), dim=-1).cpu()
        scores: list[list[tuple[float, bool]]] = [[] for _ in contexts]
        for row, (g, c) in enumerate(zip(owners, flat, strict=True)):
            lp = torch.cat([first[g].unsqueeze(0), rest[row, :len(c) - 1]], dim=0)
            scores[g].append(self._score(lp, c))
        return scores

    @staticmethod
    def _score(logprobs: Any, cont: list[int]) -> tuple[float, bool]:
        import torch

        target = torch.tensor(cont, dtype=torch.long)
        greedy = bool((logprobs.argmax(dim=-1) == target).all())
        return float(logprobs.gather(1, target.unsqueeze(-1)).sum()), greedy

    # ---------------------------------------------------------------- generation
    def render_prompt(self, request: GenerationRequest) -> str:
        """The text the model sees: the prompt, or the chat messages through the tokenizer's chat template."""
        if request.messages is not None:
            if not getattr(self.tokenizer, "chat_template", None):
                raise ClinforgeError(f"model {self.model_name} has no chat template; send a plain prompt instead")
            return self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        if request.prompt is None:
            raise ClinforgeError("a generation request needs a prompt or messages")
        return request.prompt

    def _encode_request(self, request: GenerationRequest) -> list[int]:
        text = self.render_prompt(request)
        return self.tok_encode(text, add_special_tokens=False if request.messages is not None else None)

    @staticmethod
    def _decoding_settings(max_new: int, temperature: float, top_p: float, seed: int | None, pad: int) -> dict:
        import torch

        settings: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": pad}
        if temperature and temperature > 0:
            settings.update(do_sample=True, temperature=temperature, top_p=top_p)
            if seed is not None:
                torch.manual_seed(seed)
        else:
            settings.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return settings

    def generate(self, requests: list[GenerationRequest], progress: Any = None) -> list[str]:
        """Greedy or sampled generation, batched with left padding; stop strings cut the output.

        Requests with the same decoding settings are batched together, longest prompt first.
        """
        import torch

        if any(r.images for r in requests):
            raise ClinforgeError(f"{self.model_name} is a text-only model and cannot take images; point hf: at a "
                                 "vision-language folder (LLaVA format or one clinforge saved)")
        encoded = [self._encode_request(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: -len(encoded[i]))
        outputs: list[str] = [""] * len(requests)
        buckets: dict[tuple, list[int]] = defaultdict(list)
        for i in order:
            r = requests[i]
            buckets[(r.max_new_tokens, r.temperature, r.top_p, r.seed)].append(i)
        pad = self.tokenizer.pad_token_id
        for (max_new, temperature, top_p, seed), members in buckets.items():
            for start in range(0, len(members), self.batch_size):
                batch = members[start:start + self.batch_size]
                width = max(min(len(encoded[i]), max(1, self.max_length - max_new)) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                room = max(1, self.max_length - max_new)  # keep the prompt's end when it is too long
                for row, i in enumerate(batch):
                    toks = encoded[i][-room:]
                    ids[row, width - len(toks):] = torch.tensor(toks, dtype=torch.long)
                    mask[row, width - len(toks):] = 1
                settings = self._decoding_settings(max_new, temperature, top_p, seed, pad)
                with torch.inference_mode():
                    out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                              **settings)
                self._store_decoded(out, width, batch, requests, outputs)
                if progress:
                    progress(len(batch))
        return outputs

    def _store_decoded(self, out: Any, width: int, batch: list[int], requests: list[GenerationRequest],
                       outputs: list[str]) -> None:
        """Decode the generated part (after ``width`` prompt columns) of each row into ``outputs``, cut at stops."""
        for row, i in enumerate(batch):
            text = self.tokenizer.decode(out[row, width:], skip_special_tokens=True)
            outputs[i] = apply_stop(text, requests[i].stop)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Generate one request token by token, yielding text deltas as they decode (same text as ``generate``).

        ``model.generate`` runs in a worker thread feeding a ``TextIteratorStreamer``; closing this iterator sets an
        event that a stopping criterion checks at every step, so generation stops within one token and the thread
        ends before ``close()`` returns (the slot a server holds is then really free).

        Example:
            >>> "".join(be.stream(GenerationRequest(prompt="ECG means", max_new_tokens=8)))  # doctest: +SKIP
            ' electrocardiogram'
        """
        from clinforge.models.backends.hf_streaming import stream_tokens

        return cut_stream_at_stop(stream_tokens(self, request), request.stop)

    def count_tokens(self, text: str) -> int:
        """Exact token count of ``text`` with this model's tokenizer (no special tokens added)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Tokens of the prompt exactly as ``generate`` feeds it (chat template and BOS included)."""
        return len(self._encode_request(request))

    @property
    def context_length(self) -> int | None:
        return self.max_length

    def close(self) -> None:
        """Drop the model so its memory can be freed."""
        self.model = None


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def shared_prefix_clusters(inputs: Sequence[Sequence[int]], keeps: Sequence[int],
                           min_shared: int = 32) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """Group token sequences that start with the same ``>= min_shared`` tokens (e.g. the same few-shot examples).

    ``keeps[i]`` positions at the end of ``inputs[i]`` are scored and so must stay outside the shared prefix.
    Sequences are sorted so that shared prefixes are neighbours; a run is cut where the common prefix would fall
    below ``min_shared`` or to less than half of what the run shares so far (one stray sequence must not shrink
    the prefix of many). Returns ``([(prefix_len, [indices]), ...], [indices of sequences in no group])``.

    Example:
        >>> shared_prefix_clusters([[1, 2, 3, 4], [1, 2, 3, 5], [9, 9]], [1, 1, 1], min_shared=2)
        ([(3, [0, 1])], [2])
    """
    order = sorted(range(len(inputs)), key=lambda i: tuple(inputs[i]))
    clusters: list[tuple[int, list[int]]] = []
    alone: list[int] = []

    def flush(run: list[int], shared: int) -> None:
        if len(run) >= 2:
            clusters.append((shared, sorted(run)))
        else:
            alone.extend(run)

    run: list[int] = []
    shared = 0
    for i in order:
        own = len(inputs[i]) - keeps[i]
        if run:
            joint = min(shared, own, _common_prefix(inputs[run[-1]], inputs[i]))
            if joint >= min_shared and not (len(run) >= 2 and 2 * joint < shared):
                run.append(i)
                shared = joint
                continue
            flush(run, shared)
        run, shared = [i], own
    flush(run, shared)
    alone.sort()
    return clusters, alone


def _missing(results: list) -> list:
    missing = [i for i, r in enumerate(results) if r is None]
    raise ClinforgeError(f"internal error: {len(missing)} loglikelihood requests were not scored")


BACKENDS.register("hf", HFBackend)
