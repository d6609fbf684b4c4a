"""clinforge's own composed multimodal model: ``vision encoder + connector + any HF causal LM``, one PreTrainedModel.

Used for every combination transformers' LLaVA class cannot hold exactly (other connectors, register tokens, Swin,
3D volumes). ``ClinforgeVlmConfig`` (``model_type="clinforge_vlm"``) keeps the vision and text configs as sub-configs
plus the encoder's ``vision_meta`` and the ``connector`` options; both classes are registered with ``AutoConfig``,
``AutoModel`` and ``AutoModelForImageTextToText`` when ``clinforge.models.vlm`` is imported, so a saved folder
reloads offline in a fresh process with plain transformers calls after that import.

Forward contract (same as LLaVA's): ``input_ids`` hold ``image_token_id`` placeholders, exactly
``num_image_tokens`` per image, replaced by the connector's outputs; ``gated_xattn`` uses one marker token per image
and feeds the visual latents through gated cross-attention instead; ``prompt_augment`` has no visual input here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec

from clinforge.models.vlm.connectors import build_connector
from clinforge.models.vlm.vision_encoders import VisionEncoder, vision_model_from_config


class ClinforgeVlmConfig(PreTrainedConfig):
    """Config of a composed model: ``vision_config`` / ``text_config`` (transformers configs), ``vision_meta``
    (encoder family, feature layer and strategy, token count), ``connector`` (type and options),
    ``image_token_id`` and ``num_image_tokens`` (placeholders per image)."""

    model_type = "clinforge_vlm"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="siglip_vision_model", optional=True),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    vision_meta: dict | None = None
    connector: dict | None = None
    image_token_id: int | None = None
    num_image_tokens: int = 0
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # the tie lives in the text model; the composite must not tie (or untie) anything on top of it
        self.tie_word_embeddings = False


class ClinforgeVlmForConditionalGeneration(PreTrainedModel, GenerationMixin):
    """Vision encoder, connector and causal LM; ``forward`` merges visual features at the placeholder tokens.

    Example:
        >>> from clinforge.models.vlm import build_vlm
        >>> model, proc = build_vlm({"vision": {"tiny": "siglip"}, "connector": {"type": "qformer", "queries": 4},
        ...                          "llm": {"tiny": "llama"}})
        >>> type(model).__name__, proc.num_image_tokens
        ('ClinforgeVlmForConditionalGeneration', 4)
    """

    config: ClinforgeVlmConfig
    config_class = ClinforgeVlmConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def __init__(self, config: ClinforgeVlmConfig):
        super().__init__(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        text_hidden = int(config.text_config.hidden_size)
        ctype = (config.connector or {}).get("type")
        if ctype == "prompt_augment":
            from clinforge.models.vlm.prompt_augment import PromptAugmentConnector

            self.vision = nn.Module()  # the experts run in the processor: no visual tensors reach this model
            self.connector = PromptAugmentConnector(config.connector)
        else:
            meta = dict(config.vision_meta or {})
            self.vision = VisionEncoder(vision_model_from_config(config.vision_config), meta)
            self.connector = build_connector(dict(config.connector or {"type": "mlp"}), int(meta["hidden_size"]),
                                             int(meta["num_tokens"]), text_hidden)
            if getattr(self.connector, "placeholder", "") == "marker":
                self.connector.attach(self.language_model, config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Sub-models were initialised by their own classes in from_config, and connectors by PyTorch (gated_xattn's
        # zero gates must stay zero): re-initialising here would overwrite both.
        return

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    @property
    def placeholder(self) -> str:
        """``tokens`` (``num_image_tokens`` per image), ``marker`` (one per image) or ``none``."""
        return getattr(self.connector, "placeholder", "tokens")

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Connector outputs ``(n_images, num_image_tokens, text_hidden)`` for ``pixel_values``."""
        return self.connector(self.vision(pixel_values.to(self.dtype)))

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                position_ids: torch.LongTensor | None = None, inputs_embeds: torch.Tensor | None = None,
                **kwargs: Any):
        """Causal-LM outputs (``loss`` when ``labels`` are given) for text with images merged at the placeholders."""
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("forward needs input_ids or inputs_embeds")
            token_id = self.config.image_token_id
            if self.placeholder == "tokens" and token_id is not None:
                mask = input_ids == token_id
                inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(mask, 0))
                n_tokens = int(mask.sum())
                if pixel_values is not None:
                    feats = self.image_features(pixel_values).to(inputs_embeds.dtype)
                    if n_tokens != feats.shape[0] * feats.shape[1]:
                        raise ValueError(f"image placeholders and image features do not match: {n_tokens} "
                                         f"<image> tokens in input_ids, {feats.shape[0]} images x {feats.shape[1]} "
                                         "features each")
                    inputs_embeds = inputs_embeds.masked_scatter(mask.unsqueeze(-1), feats.flatten(0, 1))
                elif n_tokens:
                    raise ValueError(f"input_ids hold {n_tokens} <image> tokens but no pixel_values were given")
            else:
                inputs_embeds = self.get_input_embeddings()(input_ids)
        if self.placeholder == "marker":
            latents = None if pixel_values is None else self.connector.resample(self.vision(pixel_values.to(self.dtype)))
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            decoding = pixel_values is None and cache is not None and cache.get_seq_length() > 0
            with self.connector.media(input_ids, latents, decoding=decoding, position_ids=position_ids):
                return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels,
                                           position_ids=position_ids, **kwargs)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels,
                                   position_ids=position_ids, **kwargs)


def register_auto_classes() -> None:
    """Register the composed classes with transformers' Auto classes (idempotent)."""
    from transformers import AutoModelForImageTextToText

    try:
        AutoConfig.register(ClinforgeVlmConfig.model_type, ClinforgeVlmConfig)
    except ValueError:
        return  # registered already in this process
    AutoModel.register(ClinforgeVlmConfig, ClinforgeVlmForConditionalGeneration)
    AutoModelForImageTextToText.register(ClinforgeVlmConfig, ClinforgeVlmForConditionalGeneration)


register_auto_classes()
