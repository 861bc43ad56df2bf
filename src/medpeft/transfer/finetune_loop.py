"""The fine-tuning loop shared by segmentation and detection: accelerate, seeded order, exact resume.

Only the task head trains; the encoder is frozen. The loop owns everything that makes a run reproducible
and restartable:

* data order: one seeded permutation per epoch (``seed``, ``epoch``), cut into batches and dealt to the
  processes round-robin, so the order does not depend on workers, RNG state or where a run resumed;
* checkpoints: head + optimizer + scheduler + grad scaler + RNG states + position (epoch, batch, step) +
  best-so-far and history, in one file written atomically every ``checkpoint_every`` optimizer steps and at
  every epoch end; ``resume`` continues from it and, on CPU, reproduces the uninterrupted run bit for bit;
* the output folder: a used one is never overwritten; ``resume`` checks the stored ``config.json`` agrees.

Validation runs at each epoch end (and when ``max_steps`` stops training); the head with the best
``task.selection_metric`` is kept in ``best.pt`` and scored once on the test split at the end.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader

from medpeft.backbones.compilation import compile_vit_blocks
from medpeft.data.sampler import epoch_batches
from medpeft.errors import CheckpointError, ConfigError, OutputExistsError
from medpeft.io import check_out_dir, safe_torch_load, torch_save, write_json
from medpeft.runtime import (
    capture_rng_state,
    check_precision,
    make_accelerator,
    make_scheduler,
    restore_rng_state,
)

log = logging.getLogger("medpeft.finetune")

CONFIG_FILE = "config.json"
CHECKPOINT = "checkpoints/last.pt"
BEST = "best.pt"
HISTORY = "history.json"
TEST_METRICS = "test_metrics.json"


class FinetuneTask(Protocol):
    """What the loop needs from a task (segmentation, detection)."""

    name: str
    selection_metric: str  # a key of ``score``'s result; higher is better
    model: nn.Module  # trainable head; holds the frozen encoder without registering it
    train_set: Any
    val_set: Any
    test_set: Any

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor: ...

    def predict(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]: ...

    def score(self, records: list[dict[str, Any]], dataset: Any) -> dict[str, Any]: ...

    def write_test_outputs(
        self, records: list[dict[str, Any]], dataset: Any, out_dir: Path
    ) -> dict[str, Any]: ...


@dataclass
class LoopConfig:
    """Optimisation and bookkeeping settings (the task's own settings live in the task)."""

    out_dir: Path
    epochs: int = 20
    batch_size: int = 8
    eval_batch_size: int = 16
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int | None = None  # None: 5 % of the optimizer steps
    grad_accum: int = 1
    max_steps: int | None = None
    max_grad_norm: float | None = None
    checkpoint_every: int = 100
    precision: str = "fp32"
    workers: int = 0
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    compile: bool = False  # torch.compile the frozen encoder's blocks (same numbers within rounding)
    stop_after_steps: int | None = None  # checkpoint and return early (simulates preemption in tests)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "eval_batch_size": self.eval_batch_size >= 1,
            "grad_accum": self.grad_accum >= 1,
            "checkpoint_every": self.checkpoint_every >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "workers": self.workers >= 0,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "warmup_steps": self.warmup_steps is None or self.warmup_steps >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"invalid fine-tuning settings: {', '.join(f'{k}={getattr(self, k)}' for k in bad)}"
            )
        check_precision(self.precision)

    def result_affecting(self) -> dict[str, Any]:
        """Settings a resumed run must share with the interrupted one."""
        d = asdict(self)
        for k in (
            "out_dir",
            "resume",
            "workers",
            "checkpoint_every",
            "stop_after_steps",
            "device",
            "compile",
        ):
            d.pop(k)
        return d


@dataclass
class LoopState:
    """Where a run is; stored in every checkpoint."""

    epoch: int = 0
    batch: int = 0  # micro-batches of this process already consumed in ``epoch``
    step: int = 0  # optimizer steps
    best_metric: float | None = None
    best_step: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0


# ------------------------------------------------------------------------------------------- helpers
def claim_out_dir(out: Path, run_config: dict[str, Any], resume: bool, *, write: bool = True) -> bool:
    """Make ``out`` this run's folder. Returns True when a checkpoint there should be resumed.

    A used folder is refused unless ``resume``; then its ``config.json`` must match ``run_config``.
    ``write=False`` only checks (every process of a multi-process run checks before the main one writes).
    """
    out = Path(out)
    used = check_out_dir(out, may_reuse=resume, advice="choose a new folder, or pass --resume to continue it")
    cfg_path = out / CONFIG_FILE
    if used and resume:
        if not cfg_path.is_file():
            raise OutputExistsError(
                f"--out {out} is not empty but has no {CONFIG_FILE}: not a medpeft finetune run"
            )
        stored = json.loads(cfg_path.read_text())
        fresh = json.loads(json.dumps(run_config, default=str))
        differ = sorted(k for k in set(stored) | set(fresh) if stored.get(k) != fresh.get(k))
        if differ:
            detail = "; ".join(f"{k}: stored {stored.get(k)!r}, now {fresh.get(k)!r}" for k in differ[:6])
            raise ConfigError(f"--resume: the settings differ from the run in {out} ({detail})")
        return (out / CHECKPOINT).is_file()
    if write:
        out.mkdir(parents=True, exist_ok=True)
        write_json(cfg_path, run_config)
    return False


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device, non_blocking=True)
        elif isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            out[k] = [t.to(device, non_blocking=True) for t in v]
        else:
            out[k] = v
    return out


def _loader(dataset: Any, batches: list[list[int]], workers: int) -> DataLoader:
    from medpeft.transfer.finetune_data import collate

    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=workers)


# ---------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict_split(
    task: FinetuneTask, dataset: Any, *, batch_size: int, accelerator: Any = None, workers: int = 0
):
    """Per-image prediction records of the whole ``dataset`` (gathered from every process), sorted by index."""
    processes = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    device = accelerator.device if accelerator is not None else next(task.model.parameters()).device
    model = accelerator.unwrap_model(task.model) if accelerator is not None else task.model
    was_training = model.training
    model.eval()
    n = len(dataset)
    mine = list(range(rank, n, processes))
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    records: list[dict[str, Any]] = []
    autocast = accelerator.autocast() if accelerator is not None else nullcontext()
    with autocast:
        for batch in _loader(dataset, batches, workers):
            records.extend(task.predict(model, _to_device(batch, device)))
    model.train(was_training)
    if processes > 1:
        from accelerate.utils import gather_object

        records = gather_object(records)
    return sorted(records, key=lambda r: r["index"])


def evaluate(
    task: FinetuneTask, dataset: Any, *, batch_size: int = 16, accelerator: Any = None
) -> dict[str, Any]:
    """Score the task's current head on ``dataset`` (e.g. the untrained head, as a baseline)."""
    records = predict_split(task, dataset, batch_size=batch_size, accelerator=accelerator)
    return task.score(records, dataset)


# ----------------------------------------------------------------------------------------------- loop
def _metric_value(metrics: dict[str, Any], key: str) -> float:
    value = metrics.get(key)
    return (
        float("-inf") if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )


def _compile_encoder(encoder: nn.Module, batch_size: int, device: torch.device) -> None:
    """Compile the frozen encoder's ViT blocks and run it once on blank images (the compile warm-up, before
    training starts; the encoder is frozen and deterministic, and every RNG state is restored)."""
    report = compile_vit_blocks(encoder.trunk, device)
    if not report.compiled:
        log.warning("%s", report.message)
        return
    state = capture_rng_state()
    try:
        encoder(torch.zeros(batch_size, 3, encoder.image_size, encoder.image_size, device=device))
    finally:
        restore_rng_state(state)
    log.info("%s; warm-up done before training", report.message)


def run_finetune(task: FinetuneTask, cfg: LoopConfig, run_config: dict[str, Any]) -> dict[str, Any]:
    """Train ``task.model`` on the train split, keep the best on validation, score it on test.

    ``run_config`` (JSON-able: encoder, task and loop settings) is stored as ``config.json`` and compared on
    resume. Returns the test metrics dict (also written to ``test_metrics.json``), or ``{"stopped": ...}``
    when ``cfg.stop_after_steps`` ended the run early.
    """
    out = cfg.out_dir
    run_config = {**run_config, "loop": cfg.result_affecting()}
    accelerator = make_accelerator(cfg.precision, cfg.device)
    claim_out_dir(out, run_config, cfg.resume, write=False)  # every process fails alike, before any write
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        claim_out_dir(out, run_config, cfg.resume)
    accelerator.wait_for_everyone()
    if cfg.resume and (out / TEST_METRICS).is_file():
        log.info("%s: run already complete; returning its test metrics", out)
        return json.loads((out / TEST_METRICS).read_text())
    resume = cfg.resume and (out / CHECKPOINT).is_file()
    from accelerate.utils import set_seed

    set_seed(cfg.seed)  # any randomness in training is seeded; a resumed run restores the saved states
    device = accelerator.device
    model = task.model.to(device)
    task.encoder.to(device)
    if cfg.compile:
        _compile_encoder(task.encoder, cfg.batch_size, device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"the {task.name} head has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    processes, rank = accelerator.num_processes, accelerator.process_index
    micro_per_epoch = len(epoch_batches(len(task.train_set), cfg.batch_size, cfg.seed, 0, processes, rank))
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.grad_accum)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else int(0.05 * total)
    scheduler = make_scheduler(optimizer, total, warmup, "cosine")  # the training loop's warm-up + cosine
    model, optimizer = accelerator.prepare(model, optimizer)
    task.model = model
    raw_model = accelerator.unwrap_model(model)
    state = LoopState()

    if resume:
        ckpt = safe_torch_load(out / CHECKPOINT, "fine-tuning checkpoint")
        try:
            raw_model.load_state_dict(ckpt["head"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if accelerator.scaler is not None and ckpt.get("scaler") is not None:
                accelerator.scaler.load_state_dict(ckpt["scaler"])
            restore_rng_state(ckpt["rng"])
            state = LoopState(**ckpt["state"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise CheckpointError(f"{out / CHECKPOINT}: does not match this run ({err})") from err
        if ckpt.get("total_steps") != total:
            raise CheckpointError(
                f"{out / CHECKPOINT}: was written for {ckpt.get('total_steps')} optimizer steps, this run has {total} "
                "(another training split, batch size or process count?)"
            )
        log.info("resumed %s at epoch %d, step %d/%d", out, state.epoch, state.step, total)

    def checkpoint() -> None:
        if accelerator.is_main_process:
            torch_save(
                {
                    "head": {k: v.detach().cpu() for k, v in raw_model.state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                    "rng": capture_rng_state(),
                    "state": asdict(state),
                    "total_steps": total,
                },
                out / CHECKPOINT,
            )
        accelerator.wait_for_everyone()

    def validate(epoch: int) -> None:
        metrics = evaluate(task, task.val_set, batch_size=cfg.eval_batch_size, accelerator=accelerator)
        value = _metric_value(metrics, task.selection_metric)
        totals = torch.tensor([state.loss_sum, float(state.loss_count)], dtype=torch.float64, device=device)
        loss_sum, loss_count = accelerator.reduce(totals, reduction="sum").tolist()  # over all processes
        entry = {
            "epoch": epoch,
            "step": state.step,
            "train_loss": loss_sum / loss_count if loss_count else None,
            "validate": metrics,
        }
        state.history.append(entry)
        state.loss_sum, state.loss_count = 0.0, 0
        if state.best_metric is None or value > state.best_metric:
            state.best_metric, state.best_step = value, state.step
            if accelerator.is_main_process:
                head = {k: v.detach().cpu() for k, v in raw_model.state_dict().items()}
                torch_save(
                    {"head": head, "step": state.step, "epoch": epoch, "validate": metrics}, out / BEST
                )
        if accelerator.is_main_process:
            write_json(out / HISTORY, state.history)
            log.info(
                "epoch %d step %d: train loss %s, validation %s %.4f (best %.4f at step %s)",
                epoch, state.step, entry["train_loss"], task.selection_metric, value, state.best_metric,
                state.best_step,
            )  # fmt: skip

    for epoch in range(state.epoch, cfg.epochs):
        if state.step >= total:
            break
        batches = epoch_batches(len(task.train_set), cfg.batch_size, cfg.seed, epoch, processes, rank)
        task.train_set.set_epoch(epoch)
        model.train()
        micro = state.batch
        for batch in _loader(task.train_set, batches[micro:], cfg.workers):
            first = (micro // cfg.grad_accum) * cfg.grad_accum
            last = min(first + cfg.grad_accum, len(batches))
            boundary = micro + 1 == last
            sync = nullcontext() if boundary or processes == 1 else accelerator.no_sync(model)
            with sync:
                with accelerator.autocast():
                    loss = task.loss(model, _to_device(batch, device))
                if not torch.isfinite(loss):
                    raise ConfigError(
                        f"the {task.name} loss became {loss.item()} at step {state.step}; lower --lr"
                    )
                accelerator.backward(loss / (last - first))
            state.loss_sum += float(loss.detach())
            state.loss_count += 1
            micro += 1
            if not boundary:
                continue
            if cfg.max_grad_norm:
                accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.batch = micro
            stop = cfg.stop_after_steps is not None and state.step >= cfg.stop_after_steps
            if state.step % cfg.checkpoint_every == 0 or stop:
                checkpoint()
            if stop:
                return {"stopped": True, "step": state.step}
            if state.step >= total:
                break
        validate(epoch)
        state.epoch, state.batch = epoch + 1, 0
        checkpoint()
    return _finish(task, cfg, accelerator, state, run_config)


def _finish(
    task: FinetuneTask, cfg: LoopConfig, accelerator: Any, state: LoopState, run_config: dict[str, Any]
) -> dict[str, Any]:
    """Load the best head, score the test split, write ``test_metrics.json`` and the task's outputs."""
    out = cfg.out_dir
    raw_model = accelerator.unwrap_model(task.model)
    best = safe_torch_load(out / BEST, "fine-tuning checkpoint")
    raw_model.load_state_dict(best["head"])
    records = predict_split(task, task.test_set, batch_size=cfg.eval_batch_size, accelerator=accelerator)
    metrics = task.score(records, task.test_set)
    result = {
        "task": task.name,
        "split": "test",
        "metrics": metrics,
        "selection_metric": task.selection_metric,
        "best_step": best["step"],
        "best_epoch": best["epoch"],
        "validate": best["validate"],
        "steps": state.step,
        "config": run_config,
    }
    if accelerator.is_main_process:
        result["outputs"] = task.write_test_outputs(records, task.test_set, out)
        write_json(out / TEST_METRICS, result)
    accelerator.wait_for_everyone()
    return result
