"""Glue between a recipe and ``transformers.Trainer`` (which every TRL trainer builds on): training arguments,
callbacks (progress bar with loss, tokens/s and ETA; TensorBoard; MLflow; per-rank participation markers) and
exact resume from the newest complete checkpoint.

Exact resume rests on Trainer's checkpoints, which hold weights, optimiser, scheduler, every RNG state and the
step; on resume Trainer rebuilds the same seeded sampler and skips the batches already seen, so a resumed run
ends with the same weights as an uninterrupted one (``tests/test_train_resume.py`` proves it).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from clinforge.train.stages.base import StageContext

CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def world_info() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun / accelerate environment variables (0, 1 when not distributed)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on rank 0 (or when not distributed)."""
    return world_info()[0] == 0


def barrier() -> None:
    """Wait for every rank when a process group is up (no-op otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def checkpointing_field() -> str:
    """The ``TrainingArguments`` field that switches activation checkpointing in the installed transformers.

    transformers 5.x renamed ``gradient_checkpointing`` to ``activation_checkpointing`` and warns (FutureWarning)
    whenever the old name is set; older 5.x releases know only the old name.

    Example:
        >>> checkpointing_field() in ("activation_checkpointing", "gradient_checkpointing")
        True
    """
    from transformers import TrainingArguments

    fields = getattr(TrainingArguments, "__dataclass_fields__", {})
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def training_kwargs(ctx: StageContext, **extra) -> dict[str, Any]:
    """Keyword arguments for ``TrainingArguments`` (or a TRL config) from a stage's ``train`` section.

    Checkpoints go to ``OUT/stages/NAME/checkpoints``; with no ``save_every`` a checkpoint is taken every 20% of
    the steps so that any run can be resumed. Logging goes through clinforge's own callbacks (``report_to`` none).

    Example:
        >>> # TrainingArguments(**training_kwargs(ctx))
    """
    t = ctx.spec.train
    warmup: float = t.warmup_steps if t.warmup_steps else t.warmup_ratio
    kw: dict[str, Any] = {
        "output_dir": str(ctx.out_dir / "checkpoints"),
        "per_device_train_batch_size": t.batch_size,
        "per_device_eval_batch_size": t.eval_batch_size or t.batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "learning_rate": t.lr,
        "num_train_epochs": t.epochs,
        "max_steps": t.max_steps,
        "lr_scheduler_type": t.scheduler,
        "warmup_steps": warmup,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "optim": t.optimizer,
        # bf16: bf16 weights; bf16-mixed: float32 weights and optimiser state, the forward and backward under bf16
        # autocast (transformers' bf16=True over a float32 model, what TRL's bf16=True does)
        "bf16": ctx.recipe.precision in ("bf16", "bf16-mixed"),
        "logging_steps": t.log_every,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": t.save_every or 0.2,
        "save_total_limit": t.save_total_limit,
        "eval_strategy": "steps" if t.eval_every else "no",
        "eval_steps": t.eval_every,
        "seed": ctx.seed,
        "data_seed": ctx.seed,
        "full_determinism": ctx.recipe.deterministic,
        "report_to": "none",
        "disable_tqdm": True,
        "remove_unused_columns": False,
        "dataloader_num_workers": t.dataloader_workers,
        "include_num_input_tokens_seen": "non_padding",
        "ddp_find_unused_parameters": False,
        "train_sampling_strategy": "group_by_length" if t.group_by_length else "random",
        # applied by clinforge.train.methods (peft-aware), never a second time by the trainer; named by its
        # current field so transformers does not warn that the old name is deprecated
        checkpointing_field(): False,
        # without a GPU, torchrun/accelerate ranks only become a DDP group (gloo) when Trainer is told to use CPU
        "use_cpu": not _cuda_available(),
    }
    if t.eval_every is None:
        kw.pop("eval_steps")
    kw.update(extra)
    kw.update(ctx.spec.trainer_args)  # checked before training: a valid field, not one the recipe sets elsewhere
    return kw


class ProgressCallback(TrainerCallback):
    """A tqdm bar on the main process with loss, tokens/s and ETA; records tokens/s in ``logs``."""

    def __init__(self, desc: str = "train"):
        self.desc = desc
        self.bar = None
        self.t0 = None
        self.tokens0 = 0
        self.last_loss = None

    def on_train_begin(self, args, state, control, **kw):
        if state.is_world_process_zero:
            from clinforge.core.progress import progress_bar

            self.bar = progress_bar(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step")
        self.t0 = time.perf_counter()
        self.tokens0 = state.num_input_tokens_seen

    def tokens_per_second(self, state) -> float:
        dt = time.perf_counter() - (self.t0 or time.perf_counter())
        return (state.num_input_tokens_seen - self.tokens0) / dt if dt > 0 else 0.0

    def on_log(self, args, state, control, logs=None, **kw):
        if logs is not None and "loss" in logs:
            self.last_loss = logs["loss"]
            logs["tokens_per_second"] = round(self.tokens_per_second(state), 1)

    def on_step_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            post = {"tok/s": f"{self.tokens_per_second(state):.0f}"}
            if self.last_loss is not None:
                post["loss"] = f"{self.last_loss:.4f}"
            self.bar.set_postfix(post, refresh=False)  # the bar redraws at its own pace (a line per 10 s in a log)

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.close()


class TensorBoardLogger(TrainerCallback):
    """Scalars from Trainer logs into ``OUT/tensorboard/STAGE`` (main process only)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.writer = None

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or not logs:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.log_dir))
        for k, v in logs.items():
            if isinstance(v, int | float) and math.isfinite(v):
                self.writer.add_scalar(k, v, state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kw):
        if self.writer is not None:
            self.writer.close()


class MLflowLogger(TrainerCallback):
    """Parameters and metrics into MLflow: a local file store ``OUT/mlruns`` unless a tracking URI is given."""

    def __init__(self, uri: str, experiment: str, run_name: str, params: dict[str, Any]):
        self.uri, self.experiment, self.run_name, self.params = uri, experiment, run_name, params
        self.run = None

    def on_train_begin(self, args, state, control, **kw):
        if not state.is_world_process_zero:
            return
        import mlflow

        if self.uri.startswith("file:"):
            # MLflow 3 keeps the plain-file store only on request; it is the no-server local default we promise
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment(self.experiment)
        self.run = mlflow.start_run(run_name=self.run_name)
        mlflow.log_params({k: str(v)[:250] for k, v in self.params.items()})

    def on_log(self, args, state, control, logs=None, **kw):
        if self.run is None or not logs:
            return
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in logs.items() if isinstance(v, int | float) and math.isfinite(v)},
                           step=state.global_step)

    def on_train_end(self, args, state, control, **kw):
        if self.run is not None:
            import mlflow

            mlflow.end_run()
            self.run = None


class RankMarker(TrainerCallback):
    """Each rank writes ``OUT/stages/NAME/ranks/rank-R.json`` (world size, optimiser steps, batches it computed),
    so a distributed run shows that every process took part."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.batches = 0
        self.local_tokens = 0
        self.digest = None
        self.hook = None

    def on_train_begin(self, args, state, control, **kw):
        import hashlib

        model = kw.get("model")
        if model is None:
            return
        self.digest = hashlib.sha256()

        def seen(module, fargs, fkwargs):  # what THIS rank feeds the model: its own shard of the data
            ids = fkwargs.get("input_ids", fargs[0] if fargs else None)
            if module.training and ids is not None:
                self.local_tokens += int(ids.numel())
                self.digest.update(ids.detach().cpu().numpy().tobytes())

        self.hook = model.register_forward_pre_hook(seen, with_kwargs=True)

    def on_step_end(self, args, state, control, **kw):
        self.batches += 1

    def on_train_end(self, args, state, control, **kw):
        rank, world = world_info()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        from clinforge.core.io import atomic_write_json

        model = kw.get("model")
        checksum = None
        if model is not None:  # equal on every rank only if the ranks synchronised their gradients (DDP)
            from torch.distributed.tensor import DTensor

            # an FSDP2 parameter is a DTensor whose .sum() would be this rank's shard only: gather it (every rank
            # runs on_train_end, so the collective is matched)
            checksum = float(sum((p.full_tensor() if isinstance(p, DTensor) else p).detach().double().sum().item()
                                 for p in model.parameters() if p.requires_grad))
        atomic_write_json(self.out_dir / f"rank-{rank}.json",
                          {"rank": rank, "world_size": world, "trainer_world_size": args.world_size,
                           "parallel_mode": str(args.parallel_mode.value), "global_step": state.global_step,
                           "steps_run_here": self.batches, "tokens_seen_all_ranks": state.num_input_tokens_seen,
                           "input_positions_here": self.local_tokens,
                           "inputs_sha256_here": self.digest.hexdigest() if self.digest else None,
                           "trainable_checksum": checksum})
        if self.hook is not None:
            self.hook.remove()
            self.hook = None


class NoFinalCheckpoint(TrainerCallback):
    """Cancels the checkpoint Trainer writes after the last step (``save_strategy="steps"`` always saves there).

    The stage saves its final model right after training, so that checkpoint would duplicate it, plus the
    optimiser state (twice the trainable weights for AdamW): seconds per run for a 135M model, far more for large
    ones. Resume is unaffected: a run cut short before its stage output is written resumes from its newest
    periodic checkpoint and ends with the same weights (tests/test_train_resume.py).

    Example:
        >>> NoFinalCheckpoint().on_step_end(None, type("S", (), {"global_step": 5, "max_steps": 5})(),
        ...                                 type("C", (), {"should_save": True})()).should_save
        False
    """

    def on_step_end(self, args, state, control, **kw):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_save = False
        return control


def default_callbacks(ctx: StageContext) -> list[TrainerCallback]:
    """Progress bar, TensorBoard / MLflow per the recipe's ``tracking``, the rank marker, and no checkpoint after the
    last step (the stage output is the final state)."""
    return [ProgressCallback(desc=f"{ctx.spec.name} ({ctx.spec.type})"), RankMarker(ctx.out_dir / "ranks"),
            *tracking_callbacks(ctx), NoFinalCheckpoint()]


class LoopTracker:
    """Feeds the TensorBoard / MLflow callbacks from a training loop that is not a Trainer (DP-SGD), so every
    stage is tracked the same way: ``begin()``, ``log(step, {"loss": ...})`` as often as wanted, ``end()``.

    Example:
        >>> # tracker = LoopTracker(ctx); tracker.begin(); tracker.log(1, {"loss": 2.3}); tracker.end()
    """

    def __init__(self, ctx: StageContext, *, main_process: bool = True):
        from transformers import TrainerControl, TrainerState

        self.callbacks = tracking_callbacks(ctx)
        self.state = TrainerState()
        self.state.is_world_process_zero = main_process
        self.control = TrainerControl()

    def begin(self) -> None:
        """Open the trackers (an MLflow run, lazily a TensorBoard writer)."""
        for cb in self.callbacks:
            cb.on_train_begin(None, self.state, self.control)

    def log(self, step: int, logs: dict[str, float]) -> None:
        """Record scalars at optimiser step ``step``."""
        self.state.global_step = step
        for cb in self.callbacks:
            cb.on_log(None, self.state, self.control, logs=dict(logs))

    def end(self) -> None:
        """Flush and close the trackers."""
        for cb in self.callbacks:
            cb.on_train_end(None, self.state, self.control)


def tracking_callbacks(ctx: StageContext) -> list[TrainerCallback]:
    """TensorBoard (``OUT/tensorboard/STAGE``) and MLflow callbacks per the recipe's ``tracking`` section."""
    cbs: list[TrainerCallback] = []
    tr = ctx.recipe.tracking
    if tr.tensorboard:
        cbs.append(TensorBoardLogger(ctx.run_dir / "tensorboard" / ctx.spec.name))
    if tr.mlflow:
        uri = tr.mlflow_uri or (ctx.run_dir / "mlruns").resolve().as_uri()
        params = {"stage": ctx.spec.name, "type": ctx.spec.type, "method": ctx.spec.method.type,
                  **{f"train.{k}": v for k, v in ctx.spec.train.model_dump().items()}}
        cbs.append(MLflowLogger(uri, tr.experiment, f"{ctx.run_dir.name}-{ctx.spec.name}", params))
    return cbs


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints under ``folder`` that hold every file resume needs, oldest first (a checkpoint cut short by a
    kill lacks ``trainer_state.json``, which Trainer writes last, and is ignored)."""
    if not folder.is_dir():
        return []
    found = []
    for ck in folder.glob("checkpoint-*"):
        try:
            step = int(ck.name.split("-")[-1])
        except ValueError:
            continue
        if all((ck / f).is_file() for f in CHECKPOINT_FILES) and any(ck.glob("rng_state*.pth")):
            found.append((step, ck))
    return [ck for _, ck in sorted(found)]


def train_with_resume(trainer, ctx: StageContext) -> dict[str, Any]:
    """``trainer.train()``, from the newest complete checkpoint when ``ctx.resume``; returns train metrics."""
    ckpt = None
    if ctx.resume:
        found = complete_checkpoints(Path(trainer.args.output_dir))
        ckpt = str(found[-1]) if found else None
    out = trainer.train(resume_from_checkpoint=ckpt)
    metrics = dict(out.metrics)
    metrics["global_step"] = trainer.state.global_step
    metrics["resumed_from_step"] = int(ckpt.rsplit("-", 1)[-1]) if ckpt else None
    metrics["tokens_seen"] = trainer.state.num_input_tokens_seen
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    evals = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    metrics["final_train_loss"] = losses[-1] if losses else None
    metrics["eval_losses"] = evals
    if ctx.out_dir.is_dir() and is_main_process():
        from clinforge.core.io import atomic_write_json

        atomic_write_json(ctx.out_dir / "log_history.json", trainer.state.log_history)
    return metrics
