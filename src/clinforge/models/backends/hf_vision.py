"""The ``hf:`` backend for vision-language folders: images in, text out, in this process.

``hf:PATH`` picks this class by itself when ``PATH/config.json`` describes an image-text model (it has a
``vision_config``, or its architecture is an ``...ForConditionalGeneration`` / ``...ImageTextToText`` class, or
clinforge's VLM loader recognises it). Loading: a folder clinforge saved (it holds ``clinforge_processor.json``)
through :func:`clinforge.models.vlm.load_vlm` (its own composed classes and LLaVA alike, with clinforge's
``VlmProcessor``); any other folder (a LLaVA checkpoint from elsewhere) through transformers'
``AutoModelForImageTextToText`` + ``AutoProcessor``, exactly as its authors load it. Both give a model driven as
``model.generate(input_ids, attention_mask, pixel_values=...)`` and a processor that expands one image marker per
image into the model's visual placeholder tokens.

Prompts: ``GenerationRequest.images`` holds local paths or ``data:`` URIs (decoded with
:func:`clinforge.data.images.image_files.decode_image`: a corrupt image is an error naming the file). A plain prompt
without the processor's image marker gets one marker per image in front (``<image>\\n`` x n), the layout LLaVA was
trained with; a prompt that already holds markers must hold exactly one per image, else the request is refused
(a silent mismatch is the commonest broken VQA number). For 3D models (a processor with a ``volume`` setting) an
image entry may be a NIfTI file or a DICOM series folder, read with :mod:`clinforge.data.images` (canonical
D x H x W, HU, PHI removed from the header). Chat messages go through the processor's chat template with
``{"type": "image"}`` parts before the first user turn's text. Generation is greedy unless the request samples,
batched with left padding (requests with the same settings and image count share a batch).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError
from clinforge.models.backends.base import GenerationRequest
from clinforge.models.backends.hf_inprocess import HFBackend


def is_vlm_folder(target: str) -> bool:
    """Whether a local model folder holds an image-text model (see the module docstring).

    Example:
        >>> import tempfile, pathlib, json
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text(json.dumps({"vision_config": {}}))
        >>> is_vlm_folder(str(d)), is_vlm_folder("/nonexistent")
        (True, False)
    """
    cfg_file = Path(target) / "config.json"
    if not cfg_file.is_file():
        return False
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    archs = [str(a) for a in cfg.get("architectures") or []]
    return ("vision_config" in cfg or "vision" in cfg
            or any(a.endswith(("ForConditionalGeneration", "ImageTextToText", "VisionText2Text")) for a in archs))


def _load_vision_model(target: str, dtype: Any, trust_remote_code: bool) -> tuple[Any, Any]:
    if (Path(target) / "clinforge_processor.json").is_file():  # saved by clinforge: its own loader and processor
        from clinforge.models.vlm import load_vlm

        return load_vlm(target)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(target, trust_remote_code=trust_remote_code)
        model = AutoModelForImageTextToText.from_pretrained(target, dtype=dtype, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ClinforgeError(f"cannot load the vision-language model in {target}: {exc}") from exc
    return model, processor


class HFVisionBackend(HFBackend):
    """In-process image-text generation (LLaVA-format folders and clinforge's composed VLMs).

    Takes the text backend's options; ``loglikelihood`` is not offered (VQA is scored on generated answers).

    Example:
        >>> be = load_backend("hf:runs/tiny-vlm/model")  # doctest: +SKIP
        >>> be.generate([GenerationRequest(prompt="Is there a fracture?", images=["xray.png"])])  # doctest: +SKIP
        ['no']
    """

    scheme = "hf"

    def __init__(self, target: str, *, batch_size: int = 8, device: str = "auto", dtype: str = "auto",
                 max_length: int | None = None, add_bos_token: bool | None = None, trust_remote_code: bool = False,
                 model: Any = None, tokenizer: Any = None, min_shared_prefix: int = 32, processor: Any = None):
        import torch

        self.model_name = target
        self.batch_size = max(1, int(batch_size))
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        if model is None or processor is None:
            from clinforge.models.offline_models import resolve_model_ref

            torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
            model, processor = _load_vision_model(resolve_model_ref(target), torch_dtype, trust_remote_code)
        self.processor = processor
        self.tokenizer = tokenizer or processor.tokenizer
        self.tokenizer.padding_side = "left"  # generation continues at the right end of every row
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model.to(self.device).eval()
        self.add_bos_token = add_bos_token
        from clinforge.models.backends.hf_inprocess import resolve_max_length

        self.max_length = int(max_length) if max_length else resolve_max_length(self.model.config, self.tokenizer)
        self.image_token = getattr(processor, "image_token", None) or "<image>"

    def loglikelihood(self, requests: list[Any], progress: Any = None) -> list[tuple[float, bool]]:
        raise ClinforgeError(f"{self.model_name} is a vision-language model; it is evaluated by generation "
                             "(--mode generate), not log-likelihood scoring")

    def _text(self, request: GenerationRequest) -> str:
        n = len(request.images)
        if request.messages is not None:
            messages = [dict(m) for m in request.messages]
            first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
            if n and first_user is not None and isinstance(messages[first_user].get("content"), str):
                messages[first_user]["content"] = ([{"type": "image"} for _ in range(n)]
                                                   + [{"type": "text", "text": messages[first_user]["content"]}])
            template = getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)
            if not template:
                raise ClinforgeError(f"model {self.model_name} has no chat template; send a plain prompt instead")
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            if request.prompt is None:
                raise ClinforgeError("a generation request needs a prompt or messages")
            text = request.prompt
            if n and self.image_token not in text:
                text = (self.image_token + "\n") * n + text
        found = text.count(self.image_token)
        if found != n:
            raise ClinforgeError(f"the prompt holds {found} {self.image_token} marker(s) for {n} image(s); put one "
                                 "marker per image, or none to have them placed before the text")
        return text

    def _input(self, src: str, record: str) -> Any:
        """A PIL image, or a D x H x W array for a 3D model's NIfTI file / DICOM series folder."""
        from clinforge.data.images.image_files import decode_image

        if getattr(self.processor, "volume", None) and not src.startswith("data:"):
            from clinforge.data.images.nifti_volumes import NIFTI_SUFFIXES, read_nifti

            if src.endswith(NIFTI_SUFFIXES):
                return read_nifti(src).array
            if os.path.isdir(src):
                from clinforge.data.images.dicom_series import read_dicom_series

                return read_dicom_series(src)[0].array
        return decode_image(src, record=record)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """The whole answer as one delta (image models are not streamed token by token yet).

        Example:
            >>> HFVisionBackend.stream.__doc__.split()[0]
            'The'
        """
        text = self.generate([request])[0]
        if text:
            yield text

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Tokens of the prompt as the model sees it, image placeholders expanded by the processor."""
        kwargs: dict[str, Any] = {"text": [self._text(request)], "return_tensors": "pt"}
        if request.images:
            kwargs["images"] = [self._input(src, "request") for src in request.images]
        return int(self.processor(**kwargs)["input_ids"].shape[1])

    def generate(self, requests: list[GenerationRequest], progress: Any = None) -> list[str]:
        """Greedy or sampled generation with the requests' images (see the module docstring).

        Example:
            >>> HFVisionBackend.generate.__doc__.split()[0]
            'Greedy'
        """
        import torch

        texts = [self._text(r) for r in requests]
        images = [[self._input(src, f"request {i}") for src in r.images] for i, r in enumerate(requests)]
        buckets: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            buckets[(r.max_new_tokens, r.temperature, r.top_p, r.seed, len(r.images))].append(i)
        outputs = [""] * len(requests)
        for (max_new, temperature, top_p, seed, n_images), members in buckets.items():
            for start in range(0, len(members), self.batch_size):
                batch = members[start:start + self.batch_size]
                kwargs: dict[str, Any] = {"text": [texts[i] for i in batch], "return_tensors": "pt", "padding": True}
                if n_images:
                    kwargs["images"] = [img for i in batch for img in images[i]]
                inputs = self.processor(**kwargs)
                inputs = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in inputs.items()}
                if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
                    inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
                settings = self._decoding_settings(max_new, temperature, top_p, seed, self.tokenizer.pad_token_id)
                with torch.inference_mode():
                    out = self.model.generate(**inputs, **settings)
                width = inputs["input_ids"].shape[1]
                self._store_decoded(out, width, batch, requests, outputs)
                if progress:
                    progress(len(batch))
        return outputs


def vlm_target(target: str) -> str | None:
    """The local folder a ``hf:`` target resolves to when it is a vision-language model, else ``None``.

    Example:
        >>> vlm_target("/nonexistent") is None
        True
    """
    if os.path.isdir(target) and is_vlm_folder(target):
        return target
    return None
