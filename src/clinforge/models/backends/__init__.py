"""Model backends: ``hf`` (in-process transformers), ``openai`` (OpenAI-compatible HTTP), ``vllm`` (optional),
``llamacpp`` (a GGUF file in-process through llama-cpp-python; optional extra ``edge``).

Each is a lazy built-in of ``BACKENDS``: importing this package does not import torch, httpx or vllm.
"""

from clinforge.models.backends.base import (
    BACKENDS,
    Backend,
    GenerationRequest,
    LoglikelihoodRequest,
    load_backend,
    parse_spec,
)

BACKENDS.add_builtin("hf", "clinforge.models.backends.hf_inprocess")
BACKENDS.add_builtin("openai", "clinforge.models.backends.openai")
BACKENDS.add_builtin("vllm", "clinforge.models.backends.vllm")
BACKENDS.add_builtin("llamacpp", "clinforge.models.backends.llamacpp")

__all__ = ["BACKENDS", "Backend", "GenerationRequest", "LoglikelihoodRequest", "load_backend", "parse_spec"]
