"""A tiny random LLaVA (SigLIP or CLIP vision tower, 2-layer MLP projector, tiny Llama) saved as a Hugging Face
folder that ``AutoModelForImageTextToText`` / ``AutoProcessor`` load: the model the vlm training tests start from.

Kept in tests/ because composing vision-language models belongs to ``clinforge.models.vlm``; this only builds the
LLaVA format that transformers defines itself, with the same forward contract (image placeholders in input_ids,
``pixel_values``, ``labels``, ``position_ids``).
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_llava(out: Path, *, vision: str = "siglip", image_size: int = 32, patch_size: int = 8,
                     hidden: int = 32, seed: int = 0) -> Path:
    """Write a tiny LLaVA to ``out``: (image_size / patch_size)^2 visual tokens per image, vocab from the tiny BPE."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    from clinforge.models.tiny import train_tokenizer

    tok = train_tokenizer(vocab_size=512)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_id = tok.convert_tokens_to_ids("<image>")
    vkw = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
               image_size=image_size, patch_size=patch_size)
    if vision == "siglip":
        vcfg, strategy, extra = SiglipVisionConfig(**vkw), "full", 0
        improc = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    else:
        vcfg, strategy, extra = CLIPVisionConfig(**vkw, projection_dim=hidden), "default", 1
        improc = CLIPImageProcessor(size={"shortest_edge": image_size},
                                    crop_size={"height": image_size, "width": image_size})
    tcfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    cfg = LlavaConfig(vision_config=vcfg, text_config=tcfg, image_token_index=image_id,
                      vision_feature_select_strategy=strategy, vision_feature_layer=-1,
                      projector_hidden_act="gelu")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg)
    proc = LlavaProcessor(image_processor=improc, tokenizer=tok, patch_size=patch_size,
                          vision_feature_select_strategy=strategy, image_token="<image>",
                          num_additional_image_tokens=extra, chat_template=tok.chat_template)
    model.save_pretrained(out, safe_serialization=True)
    proc.save_pretrained(out)
    return Path(out)
