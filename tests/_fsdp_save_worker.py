"""One rank of the two-process CPU FSDP test (``tests/test_fsdp_save.py`` launches it with torchrun, gloo).

Every rank loads the same tiny model, keeps an unsharded reference copy, shards the model with FSDP2
(``fully_shard`` per decoder layer, then the root, as accelerate's TRANSFORMER_BASED_WRAP does), and trains both
for a few SGD steps on the same batch: FSDP averages the two ranks' identical gradients, so the sharded model must
end where the reference ends. Then every rank calls clinforge's ``save_trained`` (what every stage's ``finish``
calls), and rank 0 writes what it needs to check into ``OUT/report.json``.

Run: ``torchrun --standalone --nproc_per_node 2 tests/_fsdp_save_worker.py MODEL_DIR OUT_DIR`` (writes
``OUT_DIR/full`` for full fine-tuning, ``OUT_DIR/lora`` for LoRA merged on save and ``OUT_DIR/labeled`` for full
fine-tuning with clinforge's labelled-positions loss, whose head pre-hook then runs on a sharded model).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM, AutoTokenizer

from clinforge.train.export import gather_full_state_dict, is_sharded, save_trained
from clinforge.train.label_positions import labeled_positions_loss


def main(model_dir: str, out_dir: str) -> None:
    dist.init_process_group("gloo")
    for method in ("full", "lora", "labeled"):
        train_and_save(model_dir, Path(out_dir) / method, method)
    dist.destroy_process_group()


def train_and_save(model_dir: str, out: Path, method: str) -> None:
    rank = dist.get_rank()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
    reference = copy.deepcopy(model)
    layers = model.get_base_model().model.layers if method == "lora" else model.model.layers
    for layer in layers:
        fully_shard(layer)
    fully_shard(model)
    assert is_sharded(model) and not is_sharded(reference)
    batch = tok(["Is aspirin indicated after a myocardial infarction?", "Does metformin cause lactic acidosis?"],
                return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    if method == "labeled":  # an answer-only loss: the last 4 tokens of each row carry labels
        labels[:, :-4] = -100
    for net in (model, reference):
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
        for _ in range(3):
            opt.zero_grad()
            if method == "labeled" and net is model:
                # clinforge's training loss (LabeledPositionsTrainer): the head runs on the gathered labelled rows
                # of the sharded model; the unsharded reference takes transformers' plain loss on every position
                loss, _ = labeled_positions_loss(model, {**batch, "labels": labels}, head=model.get_output_embeddings())
            else:
                loss = net(**batch, labels=labels).loss
            loss.backward()
            opt.step()
    # what rank 0 alone could see without gathering: its own shards
    local = {k: tuple(v.to_local().shape) for k, v in model.state_dict().items() if hasattr(v, "to_local")}
    full = gather_full_state_dict(model)  # collective; checked here, then saved below through the same path
    adapter = save_trained(model, tok, out / "model", merge=(method == "lora"))
    if rank == 0:
        ref_state = reference.merge_and_unload().state_dict() if method == "lora" else reference.state_dict()
        report = {"world_size": dist.get_world_size(), "adapter": adapter, "local_shapes": local,
                  "gathered_keys": sorted(full), "reference": {}}
        torch.save({k: v.detach().clone() for k, v in ref_state.items()}, out / "reference.pt")
        (out / "report.json").write_text(json.dumps(report), encoding="utf-8")
    dist.barrier()


if __name__ == "__main__":
    main(*sys.argv[1:3])
