"""DP-SGD for cpt / ift / sft through Opacus, at the patient level where records carry patient ids.

The privacy unit: with ``dp.patient_level`` every patient's examples form ONE unit (records without a patient id
are each their own unit). Opacus computes per-sample gradients along the batch dimension, so each unit is one row:
its examples are concatenated with position_ids restarting per example (attention does not cross them) and the
unit's loss is the mean over its target tokens. Opacus then clips each unit's gradient to ``max_grad_norm`` and
adds Gaussian noise; the RDP accountant gives the epsilon spent at ``delta``.

Why our own loop and not Trainer: DP-SGD needs Poisson sampling of units (each unit joins a step independently
with probability ``batch_size / units``), per-unit losses and Opacus' ``DPOptimizer``; Trainer's fixed-size
batches and token-mean loss would void the accounting. We use Opacus' ``GradSampleModule`` (per-sample
gradients; functorch fallback for layers without a hand-written sampler), ``DPOptimizer`` (clipping + noise)
and ``RDPAccountant`` directly, with our own Poisson sampler (its empty batches still take a noisy step, as
the analysis assumes).

Resume: checkpoints in ``OUT/stages/NAME/checkpoints/dp-step-N.pt`` hold trainable weights, optimiser, scheduler,
accountant history, sampler and torch RNG states.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError
from clinforge.train.data import IGNORE_INDEX


def privacy_units(rows: list[dict[str, Any]], *, patient_level: bool, max_tokens: int) -> tuple[list[dict], dict]:
    """Group tokenised rows into privacy units (one per patient when ``patient_level``), each one packed row.

    Example:
        >>> rows = [{"input_ids": [1, 2], "labels": [1, 2], "patient_id": "p"},
        ...         {"input_ids": [3, 4], "labels": [3, 4], "patient_id": "p"},
        ...         {"input_ids": [5, 6], "labels": [5, 6], "patient_id": None}]
        >>> units, stats = privacy_units(rows, patient_level=True, max_tokens=16)
        >>> [u["position_ids"] for u in units], stats["units"]
        ([[0, 1, 0, 1], [0, 1]], 2)
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for i, r in enumerate(rows):
        key = f"patient:{r['patient_id']}" if patient_level and r.get("patient_id") else f"row:{i}"
        groups[key].append(r)
    units, truncated = [], 0
    for members in groups.values():
        ids, labels, pos = [], [], []
        for r in members:
            n = len(r["input_ids"])
            ids += list(r["input_ids"])
            labels += [IGNORE_INDEX] + list(r["labels"][1:])
            pos += list(range(n))
        if len(ids) > max_tokens:
            truncated += len(ids) - max_tokens
            ids, labels, pos = ids[:max_tokens], labels[:max_tokens], pos[:max_tokens]
        if any(x != IGNORE_INDEX for x in labels):
            units.append({"input_ids": ids, "labels": labels, "position_ids": pos})
    stats = {"units": len(units), "patients": sum(1 for k in groups if k.startswith("patient:")),
             "rows": len(rows), "tokens_truncated": truncated}
    return units, stats


def collate_units(units: list[dict], pad_id: int):
    """Right-pad unit rows; padding gets its own position run and label -100, so no attention mask is needed
    (causal attention never lets a real token see the padding after it)."""
    import torch

    width = max(len(u["input_ids"]) for u in units)
    ids, labels, pos = [], [], []
    for u in units:
        pad = width - len(u["input_ids"])
        ids.append(u["input_ids"] + [pad_id] * pad)
        labels.append(u["labels"] + [IGNORE_INDEX] * pad)
        pos.append(u["position_ids"] + list(range(pad)))
    return torch.tensor(ids), torch.tensor(labels), torch.tensor(pos)


def per_unit_loss(logits, labels):
    """Mean next-token loss of each row over its target tokens, then the mean over rows (Opacus' ``mean``)."""
    import torch.nn.functional as F

    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    tok = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                          ignore_index=IGNORE_INDEX, reduction="none").view(shift_labels.shape)
    mask = (shift_labels != IGNORE_INDEX).float()
    per_row = (tok * mask).sum(1) / mask.sum(1).clamp(min=1)
    return per_row.mean(), mask.sum()


def make_dp_optimizer(model, train, *, noise_multiplier: float, max_grad_norm: float):
    """The DP-SGD machinery ``train_dp`` steps with: Opacus' ``GradSampleModule`` around ``model`` (per-unit
    gradients, ``mean`` loss reduction), the base optimiser of the ``train`` section (AdamW, or SGD for
    ``optimizer: sgd``) and the ``DPOptimizer`` that clips each unit's gradient to ``max_grad_norm`` and adds
    Gaussian noise of ``noise_multiplier * max_grad_norm``. Returns ``(gsm, params, base_opt, dp_opt)``.

    Example:
        >>> # gsm, params, base, opt = make_dp_optimizer(model, spec.train, noise_multiplier=1.1, max_grad_norm=0.5)
        >>> # loss, _ = per_unit_loss(gsm(input_ids=ids, position_ids=pos).logits, labels); loss.backward()
        >>> # opt.step()   # clip per unit, sum, add noise, divide by the expected batch size, update
    """
    import torch
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    gsm = GradSampleModule(model, loss_reduction="mean")
    params = [p for p in gsm.parameters() if p.requires_grad]
    base_opt = torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay) \
        if train.optimizer != "sgd" else torch.optim.SGD(params, lr=train.lr)
    opt = DPOptimizer(base_opt, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                      expected_batch_size=train.batch_size, loss_reduction="mean")
    return gsm, params, base_opt, opt


def train_dp(stage, model, tokenizer, train_rows, eval_rows, collator) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train ``model`` with DP-SGD (Opacus) on ``train_rows``; returns (metrics, privacy report)."""
    import numpy as np
    import torch
    from opacus.accountants import RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier
    from transformers import get_scheduler

    from clinforge.core.io import atomic_write_json
    from clinforge.train.hf_trainer import is_main_process, world_info

    dp, t, ctx = stage.spec.dp, stage.spec.train, stage.ctx
    if world_info()[1] > 1:
        raise ClinforgeError("DP-SGD stages run in one process; launch without torchrun/accelerate for dp")
    # grad_accum 1 is checked before training by Stage.check_spec
    units, ustats = privacy_units(train_rows, patient_level=dp.patient_level,
                                  max_tokens=dp.max_unit_tokens or 4 * t.max_length)
    n = len(units)
    if n < 2:
        raise ClinforgeError(f"DP-SGD needs at least 2 privacy units; the data has {n}")
    sample_rate = min(1.0, t.batch_size / n)
    steps = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs / sample_rate))
    sigma = dp.noise_multiplier
    if sigma is None:
        sigma = get_noise_multiplier(target_epsilon=dp.target_epsilon, target_delta=dp.delta,
                                     sample_rate=sample_rate, steps=steps, accountant="rdp")
    gsm, params, base_opt, opt = make_dp_optimizer(model, t, noise_multiplier=sigma, max_grad_norm=dp.max_grad_norm)
    warm = t.warmup_steps or int(t.warmup_ratio * steps)
    sched = get_scheduler(t.scheduler, base_opt, num_warmup_steps=warm, num_training_steps=steps)
    accountant = RDPAccountant()
    opt.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
    sampler = np.random.default_rng(ctx.seed)
    torch.manual_seed(ctx.seed)
    random.seed(ctx.seed)

    ck_dir = ctx.out_dir / "checkpoints"
    start = 0
    if ctx.resume:
        found = sorted(ck_dir.glob("dp-step-*.pt"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        if found:
            state = torch.load(found[-1], weights_only=False)
            named = dict(gsm.named_parameters())
            with torch.no_grad():
                for k, v in state["trainable"].items():
                    named[k].copy_(v)
            base_opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            accountant.history = list(state["accountant"])
            sampler.bit_generator.state = state["sampler"]
            torch.set_rng_state(state["torch_rng"])
            start = state["step"]
    save_every = t.save_every or max(1, steps // 5)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def eval_loss_now() -> float | None:
        """Mean loss over the eval rows (each row its own unit), or None without eval rows."""
        if not eval_rows:
            return None
        was_training = model.training
        model.eval()
        with torch.no_grad():
            ev_units, _ = privacy_units(eval_rows, patient_level=False, max_tokens=t.max_length)
            vals = []
            for i in range(0, len(ev_units), t.batch_size):
                ids, labels, pos = collate_units(ev_units[i:i + t.batch_size], pad_id)
                vals.append(float(per_unit_loss(model(input_ids=ids, position_ids=pos).logits, labels)[0]))
        model.train(was_training)
        return sum(vals) / len(vals)

    from clinforge.train.hf_trainer import LoopTracker

    tracker = LoopTracker(ctx, main_process=is_main_process())  # TensorBoard / MLflow like every other stage
    tracker.begin()
    eval_losses: list[float] = []
    gsm.train()
    losses, tokens, t0 = [], 0, time.perf_counter()
    from clinforge.core.progress import progress_bar

    bar = progress_bar(total=steps, initial=start, desc=f"{stage.spec.name} (dp-sgd)", unit="step",
                       enabled=is_main_process())
    for step in range(start, steps):
        chosen = np.nonzero(sampler.random(n) < sample_rate)[0]
        opt.zero_grad(set_to_none=True)
        if len(chosen):
            ids, labels, pos = collate_units([units[i] for i in chosen], pad_id)
            out = gsm(input_ids=ids, position_ids=pos)
            loss, ntok = per_unit_loss(out.logits, labels)
            loss.backward()
            losses.append(float(loss.detach()))
            tokens += int(ntok)
        else:  # an empty Poisson batch still takes a step: noise only
            for p in params:
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)
        opt.step()
        sched.step()
        bar.update(1)
        if losses:
            bar.set_postfix(loss=f"{losses[-1]:.4f}", tok_s=f"{tokens / (time.perf_counter() - t0):.0f}",
                            eps=f"{accountant.get_epsilon(dp.delta):.2f}", refresh=False)
        if losses and ((step + 1) % t.log_every == 0 or step == start):
            tracker.log(step + 1, {"loss": losses[-1], "learning_rate": sched.get_last_lr()[0],
                                   "epsilon": accountant.get_epsilon(dp.delta),
                                   "tokens_per_second": tokens / (time.perf_counter() - t0)})
        if t.eval_every and (step + 1) % t.eval_every == 0 and eval_rows:
            with torch.no_grad():  # the Opacus hooks only record per-sample grads under autograd
                eval_losses.append(eval_loss_now())
            tracker.log(step + 1, {"eval_loss": eval_losses[-1]})
        if (step + 1) % save_every == 0 and step + 1 < steps:
            ck_dir.mkdir(parents=True, exist_ok=True)
            from clinforge.core.io import atomic_path

            with atomic_path(ck_dir / f"dp-step-{step + 1}.pt") as tmp:
                torch.save({"trainable": {k: v.detach().clone() for k, v in gsm.named_parameters() if v.requires_grad},
                            "optimizer": base_opt.state_dict(), "scheduler": sched.state_dict(),
                            "accountant": list(accountant.history), "sampler": sampler.bit_generator.state,
                            "torch_rng": torch.get_rng_state(), "step": step + 1}, tmp)
    bar.close()
    gsm._close()  # remove Opacus hooks so the plain model can be saved and reused
    epsilon = accountant.get_epsilon(dp.delta)
    eval_loss = eval_loss_now()
    tracker.log(steps, {"epsilon": epsilon, **({"eval_loss": eval_loss} if eval_loss is not None else {})})
    tracker.end()
    privacy = {"mechanism": "DP-SGD (Opacus, RDP accountant)", "epsilon": round(epsilon, 4), "delta": dp.delta,
               "noise_multiplier": sigma, "max_grad_norm": dp.max_grad_norm, "sample_rate": sample_rate,
               "steps": steps, "unit": "patient" if dp.patient_level else "example", **ustats}
    metrics = {"global_step": steps, "resumed_from_step": start or None, "final_train_loss": losses[-1] if losses
               else None, "train_losses": losses[-20:], "final_eval_loss": eval_loss, "eval_losses": eval_losses,
               "tokens_seen": tokens,
               "train_examples": len(train_rows)}
    if is_main_process():
        atomic_write_json(Path(ctx.out_dir) / "privacy.json", privacy)
    return metrics, privacy
