"""The vision feature cache (each distinct image encoded once while the encoder is frozen) gives exactly the loss
and gradients of encoding every image, on real VQA-RAD images that several questions share, for every connector
family; it steps aside when the encoder trains or is stochastic; a vlm stage records its counters."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

from _tinyvlm import tiny_vlm
from clinforge.data.load import read_records
from clinforge.models.vlm import vlm_components
from clinforge.models.vlm.vision_cache import is_stochastic, vision_feature_cache
from clinforge.train.recipe import MethodSpec
from clinforge.train.vlm_data import (
    PixelCache,
    VlmDataset,
    image_tokens_of,
    record_to_vlm_example,
    tokenize_vlm_chat,
)
from clinforge.train.vlm_methods import apply_vlm_method, load_vlm_for_training
from clinforge.train.vlm_packing import vlm_collator


@pytest.fixture(scope="module", params=["llava-siglip", "llava-clip", "qformer", "avgpool", "gated-xattn"])
def vlm_dir(request, tmp_path_factory):
    return tiny_vlm(tmp_path_factory, request.param)


def _shared_image_batch(data_root, proc, n_images: int = 4, per_image: int = 3):
    """A batch of real VQA-RAD questions, ``per_image`` about each of ``n_images`` images, interleaved so
    duplicates sit in different rows."""
    by_image = defaultdict(list)
    for r in read_records(str(data_root / "vqa-rad"), "vqa_rad", split="train")[0]:
        by_image[r.images[0]].append(r)
    groups = [g[:per_image] for g in by_image.values() if len(g) >= per_image][:n_images]
    records = [g[i] for i in range(per_image) for g in groups]
    image = image_tokens_of(proc)
    examples = [record_to_vlm_example(r, image_token=image.token) for r in records]
    rows, _ = tokenize_vlm_chat(examples, proc.tokenizer, image, 512)
    ds = VlmDataset(rows, PixelCache(proc))
    return [ds[i] for i in range(len(rows))], image


def _loss_and_grads(model, batch):
    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_cached_features_give_identical_loss_and_gradients(vlm_dir, data_root):
    model, proc = load_vlm_for_training(str(vlm_dir))
    model = apply_vlm_method(model, MethodSpec(type="lora", r=4, alpha=8, dropout=0.0))
    model.train()  # Trainer's mode: the cache must hold in train mode when the encoder has no stochastic layer
    feats, image = _shared_image_batch(data_root, proc)
    collator = vlm_collator(model, image.mode, packing=True, max_row_tokens=256,
                            pad_token_id=proc.tokenizer.pad_token_id)
    batch = collator(feats)
    base_loss, base_grads = _loss_and_grads(model, batch)
    vision = vlm_components(model)["vision"]
    with vision_feature_cache(vision, model=model.get_base_model()) as cache:
        first = _loss_and_grads(model, batch)   # 4 distinct images among 12: encoded once each, 8 hits
        after_first = cache.stats()
        second = _loss_and_grads(model, batch)  # every image from the cache
    assert after_first["misses"] == 4 and after_first["hits"] == 8 and after_first["encoded"] == 1
    assert cache.stats()["hits"] == 20 and cache.stats()["encoded"] == 1 and cache.stats()["bypassed"] == 0
    for loss, grads in (first, second):
        assert torch.equal(loss, base_loss)
        assert grads.keys() == base_grads.keys()
        for k, g in base_grads.items():
            assert torch.equal(grads[k], g), k
    assert "forward" not in vision.__dict__  # uninstalled: the module is the plain encoder again


def test_cache_steps_aside_when_the_encoder_trains_or_is_stochastic(data_root, tmp_path_factory):
    model, proc = load_vlm_for_training(str(tiny_vlm(tmp_path_factory, "llava-siglip")))
    feats, _ = _shared_image_batch(data_root, proc, n_images=2, per_image=2)
    pixels = torch.cat([f["pixel_values"] for f in feats])
    vision = vlm_components(model)["vision"]
    for p in vision.parameters():
        p.requires_grad_(True)  # unfreeze_vision: features depend on weights that change every step
    with vision_feature_cache(vision, model=model) as cache:
        vision(pixels, output_hidden_states=True)
    assert cache.stats()["bypassed"] == 1 and cache.stats()["misses"] == 0
    vision.requires_grad_(False)
    assert not is_stochastic(vision)
    vision.config.attention_dropout = 0.1  # a tower with dropout: stochastic in train mode, not in eval mode
    for m in vision.modules():
        if hasattr(m, "dropout") and isinstance(m.dropout, float):
            m.dropout = 0.1
    assert is_stochastic(vision)
    with vision_feature_cache(vision, model=model) as cache:
        vision.train()
        vision(pixels, output_hidden_states=True)
        assert cache.stats()["bypassed"] == 1
        vision.eval()
        vision(pixels, output_hidden_states=True)
        assert cache.stats()["misses"] == 2 and cache.stats()["hits"] == 2


def test_cache_is_bounded_and_evicts_least_recently_used():
    enc = torch.nn.Linear(8, 8).requires_grad_(False)
    per_image = 8 * 4  # one float32 output row
    imgs = torch.eye(8)
    with vision_feature_cache(enc, max_bytes=3 * per_image) as cache:
        want = enc.__class__.forward(enc, imgs)
        got = enc(imgs)  # 8 images into room for 3: the 5 oldest are evicted
        assert torch.equal(got, want)
        assert cache.stats()["cached_images"] == 3 and cache.stats()["evicted"] == 5
        assert cache.stats()["cached_bytes"] == 3 * per_image
        enc(imgs[7:])
        assert cache.stats()["hits"] == 1
        enc(imgs[:1])  # evicted earlier: encoded again
        assert cache.stats()["misses"] == 9
