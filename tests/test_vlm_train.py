"""vlm_align / vlm_sft building blocks on a tiny LLaVA and the real VQA-RAD images: assistant-only labels, image-safe
truncation, packing proven equal to unpacked training, LoRA kept off the vision tower, connector saved with the
adapter and present after reload, and the recipe checks."""

from __future__ import annotations

import pytest
import torch

from _tinyvlm import tiny_vlm
from clinforge.core.errors import ConfigError, DataError
from clinforge.data.records import Record
from clinforge.train.data import IGNORE_INDEX
from clinforge.train.recipe import DataSpec, MethodSpec, SourceSpec
from clinforge.train.vlm_data import (
    DROP_CUT_IN_IMAGE,
    DROP_NO_ANSWER,
    PixelCache,
    VlmDataset,
    describe_loss_tokens,
    image_tokens_of,
    load_vlm_stage_data,
    record_to_vlm_example,
    tokenize_vlm_chat,
)
from clinforge.train.vlm_methods import apply_vlm_method, load_vlm_for_training, lora_targets, trainable_table
from clinforge.train.vlm_packing import VlmPackingCollator, VlmPaddingCollator


@pytest.fixture(scope="session", params=["llava-siglip", "llava-clip", "qformer", "avgpool"])
def vlm_dir(request, tmp_path_factory):
    return tiny_vlm(tmp_path_factory, request.param)


@pytest.fixture(scope="session")
def siglip_llava(tmp_path_factory):
    return tiny_vlm(tmp_path_factory, "llava-siglip")


def _vqa(data_root, limit=24):
    spec = DataSpec(sources=[SourceSpec(reader="vqa_rad", path=str(data_root / "vqa-rad"), limit=limit,
                                        options={"split": "train"})], shuffle=False)
    return spec


def test_labels_cover_the_answer_only_and_images_expand(siglip_llava, data_root):
    model, proc = load_vlm_for_training(str(siglip_llava))
    image = image_tokens_of(proc)
    assert (image.token, image.per_image) == ("<image>", 16)  # (32 / 8)^2 patches, SigLIP has no CLS
    data = load_vlm_stage_data(_vqa(data_root), image_token=image.token)
    assert data.cards[0]["examples"] == 24 and data.cards[0]["reader"] == "vqa_rad"
    rows, dropped = tokenize_vlm_chat(data.train, proc.tokenizer, image, 512)
    assert not dropped and len(rows) == 24
    for ex, row in zip(data.train, rows, strict=True):
        ids, labels = row["input_ids"], row["labels"]
        assert ids.count(image.token_id) == 16 * len(ex["images"])
        assert all(lab == IGNORE_INDEX for t, lab in zip(ids, labels, strict=True) if t == image.token_id)
        trained = proc.tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX])
        # the answer and the turn's end marker, nothing of the question or the template's user turn
        assert trained == ex["messages"][-1]["content"] + "<|im_end|>\n"
    shown = describe_loss_tokens(rows, proc.tokenizer, image, 2)
    assert shown[0]["masked_context"].startswith("<|im_start|>user\n<image>x16\n")
    assert shown[0]["trained_on"] == data.train[0]["messages"][-1]["content"] + "<|im_end|>\n"


def test_truncation_never_cuts_images_or_answers(siglip_llava, data_root):
    _, proc = load_vlm_for_training(str(siglip_llava))
    image = image_tokens_of(proc)
    data = load_vlm_stage_data(_vqa(data_root, 8), image_token=image.token)
    full, _ = tokenize_vlm_chat(data.train, proc.tokenizer, image, 4096)
    # inside the image block (it starts after "<|im_start|>user\n": 2-3 tokens)
    rows, dropped = tokenize_vlm_chat(data.train, proc.tokenizer, image, 10)
    assert rows == [] and dropped == {DROP_CUT_IN_IMAGE: 8}
    # after the image, before the answer: the prompt fits, not one answer token does
    cut = min(r["labels"].index(next(lab for lab in r["labels"] if lab != IGNORE_INDEX)) for r in full)
    which: list = []
    rows, dropped = tokenize_vlm_chat(data.train, proc.tokenizer, image, cut, which)
    assert rows == [] and dropped == {DROP_NO_ANSWER: 8}
    # each dropped example is handed back with its reason, and counted on the card of its source
    assert [ex for ex, _ in which] == data.train and {r for _, r in which} == {DROP_NO_ANSWER}
    assert data.count_dropped_per_card(which) == [{DROP_NO_ANSWER: 8}]
    # a cut inside the answer keeps the example with the answer tokens that fit
    longest = max(full, key=lambda r: len(r["input_ids"]))
    first = longest["labels"].index(next(lab for lab in longest["labels"] if lab != IGNORE_INDEX))
    rows, _ = tokenize_vlm_chat([data.train[full.index(longest)]], proc.tokenizer, image, first + 1)
    assert len(rows) == 1 and sum(lab != IGNORE_INDEX for lab in rows[0]["labels"]) == 1


def test_bad_examples_are_errors_naming_the_record(siglip_llava):
    _, proc = load_vlm_for_training(str(siglip_llava))
    image = image_tokens_of(proc)
    two_markers = {"id": "r-17", "images": ["a.jpg"], "messages": [
        {"role": "user", "content": "<image>\n<image>\nQ?"}, {"role": "assistant", "content": "yes"}]}
    with pytest.raises(DataError, match=r"record r-17.*2 image placeholder\(s\) '<image>' for 1 image"):
        tokenize_vlm_chat([two_markers], proc.tokenizer, image, 512)
    empty = {"id": "r-18", "images": ["a.jpg"], "messages": [
        {"role": "user", "content": "<image>\nQ?"}, {"role": "assistant", "content": ""}]}
    proc.tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}"
                                    "{% endif %}{% endfor %}")  # a template that drops assistant turns
    with pytest.raises(DataError, match="record r-18.*no assistant token carries a label"):
        tokenize_vlm_chat([empty], proc.tokenizer, image, 512)
    # IU X-ray reports come without pixels: no image-text form, counted by the loader rather than trained on
    assert record_to_vlm_example(Record(id="1", kind="report", text="Clear lungs.", target="Normal."),
                                 image_token="<image>") is None


def test_unreadable_image_names_file_and_record(siglip_llava, tmp_path):
    _, proc = load_vlm_for_training(str(siglip_llava))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    ds = VlmDataset([{"input_ids": [1], "labels": [1], "images": [str(bad)], "id": "vqa-9"}],
                    PixelCache(proc))
    with pytest.raises(DataError, match=r"broken\.jpg, record vqa-9, field images: unreadable image"):
        ds[0]


def _loss_and_grads(model, batch):
    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_packed_batches_equal_unpacked_loss_and_gradients(vlm_dir, data_root):
    """Same loss and gradients (float32; |diff| <= 1e-5 relative to the largest gradient) whether the examples of
    a batch are packed into shared rows (block-diagonal attention from position_ids) or padded one per row."""
    model, proc = load_vlm_for_training(str(vlm_dir))
    model.train(False)  # no dropout: the two forward passes must see the same function
    for p in model.parameters():
        p.requires_grad_(True)
    image = image_tokens_of(proc)
    data = load_vlm_stage_data(_vqa(data_root, 12), image_token=image.token)
    rows, _ = tokenize_vlm_chat(data.train, proc.tokenizer, image, 512)
    ds = VlmDataset(rows, PixelCache(proc))
    feats = [ds[i] for i in range(len(rows))]
    packing = VlmPackingCollator(max_row_tokens=256, pad_token_id=proc.tokenizer.pad_token_id)
    packed = packing(feats)
    padded = VlmPaddingCollator(proc.tokenizer.pad_token_id)(feats)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]  # really packed: several examples a row
    assert packed["input_ids"].numel() < padded["input_ids"].numel()
    lp, gp = _loss_and_grads(model, packed)
    lu, gu = _loss_and_grads(model, padded)
    assert torch.allclose(lp, lu, rtol=1e-6, atol=1e-6)
    assert gp.keys() == gu.keys() and any("vision" in k for k in gp)
    scale = max(g.abs().max().item() for g in gu.values())
    worst = max((gp[k] - gu[k]).abs().max().item() for k in gu)
    assert worst <= 1e-5 * scale, (worst, scale)
    # a block-diagonal mask matters: the same packed rows with attention across examples give another loss
    crossing = {**packed, "position_ids": torch.arange(packed["input_ids"].shape[1]).expand_as(packed["input_ids"])}
    assert not torch.allclose(model(**crossing).loss, lu, atol=1e-4)


def test_lora_stays_in_the_llm_and_connector_trains(siglip_llava):
    model, _ = load_vlm_for_training(str(siglip_llava))
    targets = lora_targets(model, MethodSpec(type="lora", target_modules=["q_proj", "v_proj"]))
    assert targets and all(t.startswith("model.language_model.") for t in targets)
    # the SigLIP tower has q_proj / v_proj too: asking for vision LoRA is the only way there
    with_vision = lora_targets(model, MethodSpec(type="lora", target_modules=["q_proj"]), vision=True)
    assert any(t.startswith("model.vision_tower.") for t in with_vision)
    with pytest.raises(ConfigError, match="match no linear layer of the llm; layers there: .*q_proj"):
        lora_targets(model, MethodSpec(type="lora", target_modules=["qkv"]))
    peft_model = apply_vlm_method(model, MethodSpec(type="lora", r=4))
    table = trainable_table(peft_model)
    assert table["vision"]["trainable"] == 0
    assert table["connector"]["trainable"] == table["connector"]["total"] > 0
    assert 0 < table["llm"]["trainable"] < table["llm"]["total"]
    lora_names = [n for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" in n]
    assert lora_names and not any("vision_tower" in n for n in lora_names)


def test_align_freezes_everything_but_the_connector(siglip_llava):
    model, _ = load_vlm_for_training(str(siglip_llava))
    model = apply_vlm_method(model, MethodSpec(type="full"), train_llm=False)
    table = trainable_table(model)
    assert table["vision"]["trainable"] == table["llm"]["trainable"] == 0
    assert table["connector"]["trainable"] == table["connector"]["total"] == table["all"]["trainable"]


def test_adapter_holds_the_trained_connector_after_reload(siglip_llava, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from clinforge.train.stages.vlm import save_adapter_verified, save_vlm_folder

    model, proc = load_vlm_for_training(str(siglip_llava))
    model = apply_vlm_method(model, MethodSpec(type="lora", r=4))
    with torch.no_grad():  # "training": move the connector and the LoRA weights away from their start
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    ids = torch.tensor([[5, 6, 7]])
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    trained = model.base_model.model.model.multi_modal_projector.modules_to_save["default"].linear_1.weight.clone()
    save_adapter_verified(model, tmp_path / "adapter", proc)
    save_vlm_folder(model, proc, tmp_path / "merged")  # merges in place: the last use of `model`
    base = AutoModelForImageTextToText.from_pretrained(siglip_llava)
    before = base.model.multi_modal_projector.linear_1.weight.detach().clone()
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter")
    got = reloaded.base_model.model.model.multi_modal_projector.modules_to_save["default"].linear_1.weight
    assert not torch.equal(before, trained) and torch.equal(got, trained)
    merged = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged")
    assert torch.equal(merged.model.multi_modal_projector.linear_1.weight, trained)
    merged.eval()
    assert torch.allclose(expected, merged(input_ids=ids).logits, atol=1e-5)


def test_recipe_checks_before_training(tmp_path, siglip_llava, data_root):
    from clinforge.train.pipeline import check_recipe
    from clinforge.train.recipe import load_recipe

    p = tmp_path / "r.yaml"
    p.write_text(f"""model: {siglip_llava}
stages:
  - name: align
    type: vlm_align
    data: {{sources: [{{reader: vqa_rad, path: "{data_root / 'vqa-rad'}"}}]}}
    method: {{type: lora}}
""")
    recipe, lines = load_recipe(p)
    with pytest.raises(ConfigError, match=r"r\.yaml:6: stages\.0\.method\.type: vlm_align trains the connector only"):
        check_recipe(recipe, recipe_file=str(p), lines=lines)
    p.write_text(p.read_text().replace("method: {type: lora}", "options: {unfreeze_vision: true}"))
    recipe, lines = load_recipe(p)
    with pytest.raises(ConfigError, match=r"stages\.0\.options\.unfreeze_vision: unknown key"):
        check_recipe(recipe, recipe_file=str(p), lines=lines)


def test_gated_xattn_packs_with_cross_attention_reset_per_example(tmp_path_factory, data_root):
    """Gated cross-attention finds each token's image by counting markers along the row; packed, it restarts at
    every example (position_ids == 0). With open gates (so the blocks change the loss), packed and padded batches
    give the same loss and gradients; without the reset, the tokens of an example before its own marker see the
    previous example's image and the loss differs."""
    from clinforge.train.vlm_packing import vlm_collator

    model, proc = load_vlm_for_training(str(tiny_vlm(tmp_path_factory, "gated-xattn")))
    model.train(False)
    image = image_tokens_of(proc)
    assert (image.mode, image.per_image) == ("marker", 1)
    with torch.no_grad():
        for block in model.connector.blocks:
            block.attn_gate.fill_(0.5)
            block.ff_gate.fill_(0.5)
    for p in model.parameters():
        p.requires_grad_(True)
    chosen = vlm_collator(model, image.mode, packing=True, max_row_tokens=256, pad_token_id=0)
    assert isinstance(chosen, VlmPackingCollator)
    data = load_vlm_stage_data(_vqa(data_root, 12), image_token=image.token)
    rows, _ = tokenize_vlm_chat(data.train, proc.tokenizer, image, 512)
    ds = VlmDataset(rows, PixelCache(proc))
    feats = [ds[i] for i in range(len(rows))]
    packed = chosen(feats)
    padded = VlmPaddingCollator(proc.tokenizer.pad_token_id)(feats)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]
    lp, gp = _loss_and_grads(model, packed)
    lu, gu = _loss_and_grads(model, padded)
    assert torch.allclose(lp, lu, rtol=1e-6, atol=1e-6)
    assert gp.keys() == gu.keys() and any("connector.blocks" in k for k in gp)
    scale = max(g.abs().max().item() for g in gu.values())
    worst = max((gp[k] - gu[k]).abs().max().item() for k in gu)
    assert worst <= 1e-5 * scale, (worst, scale)
    media = model.connector.media  # the same packed rows without the per-example reset: another loss
    model.connector.media = lambda ids, latents, decoding=False, position_ids=None: media(ids, latents,
                                                                                          decoding=decoding)
    try:
        assert not torch.allclose(model(**packed).loss, lu, atol=1e-4)
    finally:
        del model.connector.media


def test_composed_model_names_are_checked_with_the_recipe_line(tmp_path, data_root):
    from clinforge.train.pipeline import check_recipe
    from clinforge.train.recipe import load_recipe

    p = tmp_path / "r.yaml"
    p.write_text(f"""model:
  vision: {{tiny: siglipp}}
  connector: {{type: mlp}}
  llm: {{tiny: llama}}
stages:
  - name: sft
    type: vlm_sft
    data: {{sources: [{{reader: vqa_rad, path: "{data_root / 'vqa-rad'}"}}]}}
""")
    # the recipe validates the mapping as it loads, before torch or any model is touched
    with pytest.raises(ConfigError, match=r"r\.yaml:\d+: .*model\.vision\.tiny: unknown vision encoder 'siglipp'; "
                                          r"valid: .*siglip"):
        recipe, lines = load_recipe(p)
        check_recipe(recipe, recipe_file=str(p), lines=lines)


def test_gated_xattn_lora_trains_the_hooked_blocks_and_saves(tmp_path_factory, tmp_path, data_root):
    """The gated cross-attention blocks are hooked into the LLM's layers: with LoRA they train in place (a peft
    modules_to_save copy would be bypassed by the hooks), get gradients, and are saved beside the adapter."""
    from safetensors.torch import load_file

    from clinforge.train.stages.vlm import OUTSIDE_PEFT_FILE, save_adapter_verified, save_vlm_folder

    model, proc = load_vlm_for_training(str(tiny_vlm(tmp_path_factory, "gated-xattn")))
    model = apply_vlm_method(model, MethodSpec(type="lora", r=4))
    image = image_tokens_of(proc)
    data = load_vlm_stage_data(_vqa(data_root, 2), image_token=image.token)
    rows, _ = tokenize_vlm_chat(data.train, proc.tokenizer, image, 512)
    ds = VlmDataset(rows, PixelCache(proc))
    model(**VlmPaddingCollator(0)([ds[0], ds[1]])).loss.backward()
    gates = {n: p for n, p in model.named_parameters() if n.endswith("attn_gate")}
    assert gates and all(p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0 for p in gates.values())
    with torch.no_grad():
        for p in gates.values():
            p.fill_(0.5)  # "trained": the blocks now change the LLM's output
    save_adapter_verified(model, tmp_path / "adapter", proc)
    assert any(k.endswith("attn_gate") for k in load_file(str(tmp_path / "adapter" / OUTSIDE_PEFT_FILE)))
    save_vlm_folder(model, proc, tmp_path / "merged")  # save_vlm's reload-and-compare passes
    reloaded, _ = load_vlm_for_training(str(tmp_path / "merged"))
    assert all(float(p) == 0.5 for n, p in reloaded.named_parameters() if n.endswith("attn_gate"))
