"""In-process vLLM backend (optional extra ``clinforge[vllm]``, needs a GPU).

SPEC: ``vllm:PATH_OR_ID``. Generation uses ``vllm.LLM.generate`` (chat through the tokenizer's chat template, as the
hf backend does); log-likelihoods use ``prompt_logprobs`` on ``context + continuation`` token ids split the way
lm-eval's ``_encode_pair`` splits them (the same helper as the hf backend), the way lm-eval's own vLLM backend scores.

Not exercised by clinforge's tests: vLLM is not installable on the CPU-only CI machines. Without vllm installed,
building this backend raises a ClinforgeError that says how to install it.
"""

from __future__ import annotations

from typing import Any

from clinforge.core.errors import ClinforgeError
from clinforge.models.backends.base import BACKENDS, Backend, GenerationRequest, LoglikelihoodRequest
from clinforge.models.backends.hf_inprocess import apply_stop


class VLLMBackend(Backend):
    """A vLLM engine in this process.

    Example:
        >>> be = VLLMBackend("meta-llama/Llama-3.1-8B-Instruct", tensor_parallel_size=1)  # doctest: +SKIP
        >>> be.generate([GenerationRequest(prompt="Q: define sepsis\\nA:", max_new_tokens=32)])  # doctest: +SKIP
    """

    scheme = "vllm"

    def __init__(self, target: str, *, batch_size: int | None = None, dtype: str = "auto", max_length: int | None = None,
                 add_bos_token: bool | None = None, gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1,
                 seed: int = 0, **engine_options: Any):
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ClinforgeError("the vllm backend needs the vllm package (a CUDA machine): "
                                 "pip install 'clinforge[vllm]'; or serve the model with `vllm serve` and use "
                                 "openai:http://HOST:PORT/v1#MODEL") from exc
        from clinforge.models.offline_models import resolve_model_ref

        self.model_name = target
        target = resolve_model_ref(target)  # a registered offline model name means its fetched folder
        self.add_bos_token = add_bos_token
        self.llm = LLM(model=target, dtype=dtype, max_model_len=max_length, seed=seed,
                       gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                       **engine_options)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_length = max_length or self.llm.llm_engine.model_config.max_model_len

    def fingerprint(self) -> str:
        """Model path/id and the settings that change scores."""
        return f"vllm|{self.model_name}|{self.add_bos_token}|{self.max_length}"

    # lm-eval's tokenisation rules, shared with the hf backend
    @property
    def prefix_token_id(self) -> int:
        return self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id

    def tok_encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        from clinforge.models.backends.hf_inprocess import HFBackend

        return HFBackend.tok_encode(self, text, add_special_tokens)  # type: ignore[arg-type]

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        from clinforge.models.backends.hf_inprocess import HFBackend

        return HFBackend.encode_pair(self, context, continuation)  # type: ignore[arg-type]

    def generate(self, requests: list[GenerationRequest], progress: Any = None) -> list[str]:
        """Generate with vLLM's own batching; chat messages go through the chat template."""
        from vllm import SamplingParams

        prompts, params = [], []
        for r in requests:
            if r.images:
                raise ClinforgeError("image inputs are not wired for the vllm backend yet")
            if r.messages is not None:
                text = self.tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
            else:
                text = r.prompt or ""
            prompts.append(text)
            params.append(SamplingParams(max_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p,
                                         stop=list(r.stop) or None, seed=r.seed))
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        if progress:
            progress(len(requests))
        return [apply_stop(o.outputs[0].text, r.stop) for o, r in zip(outs, requests, strict=True)]

    def loglikelihood(self, requests: list[LoglikelihoodRequest], progress: Any = None) -> list[tuple[float, bool]]:
        """Sum of prompt log-probs over the continuation tokens; greedy when each is the top-ranked token."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        encoded = [self.encode_pair(r.context, r.continuation) for r in requests]
        prompts = [TokensPrompt(prompt_token_ids=(ctx + cont)[-self.max_length:]) for ctx, cont in encoded]
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for (_ctx, cont), out in zip(encoded, outs, strict=True):
            ids = out.prompt_token_ids
            lps = out.prompt_logprobs
            total, greedy = 0.0, True
            for pos in range(len(ids) - len(cont), len(ids)):
                entry = lps[pos]
                token_lp = entry[ids[pos]]
                total += token_lp.logprob
                greedy = greedy and token_lp.rank == 1
            results.append((total, greedy))
        if progress:
            progress(len(requests))
        return results

    def close(self) -> None:
        """Drop the engine."""
        self.llm = None


BACKENDS.register("vllm", VLLMBackend)
