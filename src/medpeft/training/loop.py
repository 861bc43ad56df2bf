"""``train()``: the ACE-LoRA training loop on accelerate.

The same code runs on one CPU or GPU, on several GPUs and on several machines (``accelerate launch``
or ``torchrun``; the output folder must be on a file system all processes share), with optional AMP,
gradient accumulation, gradient checkpointing and embeddings gathered across processes (global
negatives). The data order is a pure function of the seed and the step (``sampler.py``) and every
piece of state is checkpointed, so a run that is killed and resumed ends with exactly the adapter an
uninterrupted run produces (bit for bit on CPU).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from medpeft.ace_lora.config import AceLoraConfig
from medpeft.ace_lora.model import ADAPTER_WEIGHTS, AceLoraModel
from medpeft.backbones.clip import Backbone, load_backbone
from medpeft.data.sampler import GlobalBatchSampler, micro_batch_size, steps_per_epoch
from medpeft.errors import ConfigError, MedpeftError
from medpeft.runtime import (
    capture_rng_state,
    derive_seed,
    make_accelerator,
    make_scheduler,
    restore_rng_state,
    seed_everything,
    versions,
)
from medpeft.training import outputs
from medpeft.training.checkpoint import (
    CHECKPOINT_DIR,
    load_latest,
    process_states,
    restore_optimization,
    save_session,
    stray_temp_files,
)
from medpeft.training.config import TrainConfig
from medpeft.training.data import (
    Collate,
    ManifestDataset,
    TrainingManifest,
    make_loader,
    read_training_manifest,
    resolve_manifest,
)
from medpeft.training.logs import MetricsLogger
from medpeft.training.progress import Progress
from medpeft.training.resume import (
    adapter_digest,
    check_compatible,
    manifest_fingerprint,
    tokenizer_fingerprint,
)
from medpeft.training.step import StepContext, train_step
from medpeft.training.validation import ValidationSet, check_validation, resolve_validation, validate
from medpeft.training.warmup import compile_warmup

log = logging.getLogger("medpeft.train")


def enable_gradient_checkpointing(clip: torch.nn.Module) -> None:
    """Recompute block activations in the backward pass (non-reentrant, so frozen towers still pass
    gradients to LoRA and the attention-affinity hooks keep working)."""
    clip.visual.trunk.set_grad_checkpointing(True)
    hf = clip.text.transformer
    if hasattr(hf, "activation_checkpointing_enable"):
        hf.activation_checkpointing_enable({"use_reentrant": False})
    else:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


class _Session:
    """One training session (a fresh run, or the rest of a resumed one) on one process."""

    def __init__(
        self,
        accelerator: Any,
        model: torch.nn.Module,
        optimizer: Any,
        scheduler: Any,
        manifest: TrainingManifest,
        backbone: Backbone,
        ace: AceLoraConfig,
        cfg: TrainConfig,
        out: Path,
        resolved: dict[str, Any],
        val_set: ValidationSet | None,
    ) -> None:
        self.acc, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.unwrapped: AceLoraModel = accelerator.unwrap_model(model)
        self.cfg, self.out, self.resolved, self.val_set = cfg, out, resolved, val_set
        self.device = accelerator.device
        self.main = accelerator.is_main_process
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.run = resolved["run"]
        self.spe, self.total = self.run["steps_per_epoch"], self.run["total_steps"]
        self.ckpt_dir = out / CHECKPOINT_DIR
        self.progress = Progress()
        self.skipped_images = 0  # on this process
        self.env = versions(self.device, num_processes=self.world, precision=cfg.precision)
        self.dataset = ManifestDataset(manifest, backbone.preprocess_train)
        self.collate = Collate(
            backbone.tokenizer, ace.text_padding, self.run["context_length"], ace.top_k + 2
        )
        params = list(self.unwrapped.trainable_parameters().values())
        self.step_ctx = StepContext(accelerator, model, optimizer, scheduler, params, cfg, self.world)
        self.logger: MetricsLogger | None = None

    # ------------------------------------------------------------------ compile
    def compile_and_warm_up(self, micro: int) -> None:
        """Compile the towers (or say why not) and run the untimed warm-up step (``warmup.py``)."""
        report = self.unwrapped.compile_towers(self.device)
        if not report.compiled:
            log.warning("%s", report.message)
            return
        seconds = compile_warmup(
            self.model,
            self.acc.backward,
            self.optimizer,
            lambda texts: self.collate.tokenizer(
                texts, padding=self.collate.padding, context_length=self.collate.context_length
            ),
            micro,
            self.unwrapped.backbone.image_size,
            len(self.resolved["run"]["label_columns"] or []) or None,
            self.device,
        )
        log.info("%s; warm-up (not counted as training time): %.1f s", report.message, seconds)

    # ------------------------------------------------------------------ resume
    def restore(self, ckpt: dict[str, Any], path: Path) -> None:
        check_compatible(ckpt["config"], self.resolved, path)
        self.unwrapped.load_adapter_state_dict(ckpt["adapter"], source=str(path))
        restore_optimization(ckpt, self.acc, self.optimizer, self.scheduler)
        self.progress = Progress.from_dict(ckpt["progress"])
        per_process = ckpt["rng"]
        if len(per_process) == self.world:
            restore_rng_state(per_process[self.rank]["rng"])
            self.skipped_images = int(per_process[self.rank].get("skipped_images", 0))
        else:
            log.warning(
                "%s was written by %d processes, this run has %d: the data order is kept, dropout RNG reseeded",
                path,
                len(per_process),
                self.world,
            )
            seed_everything(derive_seed(self.cfg.seed, self.progress.global_step, self.rank))
            if self.main:
                self.skipped_images = sum(int(p.get("skipped_images", 0)) for p in per_process)
        if self.main:
            log.info("resuming from %s (step %d of %d)", path, self.progress.global_step, self.total)

    # ------------------------------------------------------------------ side effects of a step
    def checkpoint(self) -> None:
        per_process = process_states(
            {"rng": capture_rng_state(), "skipped_images": self.skipped_images}, self.world
        )
        if self.main:
            save_session(
                self.ckpt_dir,
                self.progress.global_step,
                adapter=self.unwrapped.adapter_state_dict(),
                accelerator=self.acc,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                progress=self.progress.to_dict(),
                per_process=per_process,
                config=self.resolved,
                keep=self.cfg.keep_checkpoints,
            )
            self.logger.write_csv()
        self.acc.wait_for_everyone()

    def validate(self) -> None:
        """Score the validation set on the main process; keep the adapter if it is the best so far."""
        if self.main:
            cfg, step = self.cfg, self.progress.global_step
            t0 = time.perf_counter()
            record: dict[str, Any] = {"step": step, "epoch": round(step / self.spe, 4)}
            try:
                metrics = validate(
                    self.unwrapped,
                    self.val_set,
                    batch_size=cfg.val_batch_size or self.run["micro_batch_size"],
                    device=self.device,
                    precision=cfg.precision,
                    workers=cfg.workers,
                    on_bad_image=cfg.on_bad_image,
                )
            except MedpeftError as err:  # e.g. a split whose labels all have one value: keep training
                log.warning("validation at step %d failed: %s", step, err)
                metrics = {}
                record["val/error"] = str(err)
            record.update({f"val/{k}": v for k, v in metrics.items()})
            record["val/seconds"] = round(time.perf_counter() - t0, 3)
            self.logger.log(record)
            log.info("validation at step %d: %s", step, metrics)
            value = metrics.get(cfg.keep_best_by)
            if value is not None and (self.progress.best_metric is None or value > self.progress.best_metric):
                self.progress.best_metric, self.progress.best_step = float(value), step
                best = self.unwrapped.save_pretrained(self.out / outputs.BEST_DIR, overwrite=True)
                outputs.write_run_files(best, self.resolved, self.env)
                info = {
                    "metric": cfg.keep_best_by,
                    "value": value,
                    "step": step,
                    "validation": str(self.val_set),
                }
                outputs.write_json(best / outputs.BEST_JSON, {**info, **metrics})
        self.acc.wait_for_everyone()
        self.model.train()

    def _sum_over_processes(self, value: float) -> float:
        return float(self.acc.reduce(torch.tensor([value], device=self.device), reduction="sum").item())

    # ------------------------------------------------------------------ the loop
    def loop(self) -> None:
        from tqdm.auto import tqdm

        cfg, progress = self.cfg, self.progress
        self.model.train()
        bar = tqdm(
            total=self.total,
            initial=progress.global_step,
            disable=not (self.main and cfg.progress),
            desc="train",
            unit="step",
            dynamic_ncols=True,
        )
        window = torch.zeros(2, device=self.device)  # loss sum, number of losses since the last log
        window_start, window_steps = time.perf_counter(), 0
        try:
            while progress.global_step < self.total:
                epoch = progress.epoch
                stop = min(self.spe, progress.step_in_epoch + (self.total - progress.global_step))
                sampler = GlobalBatchSampler(
                    len(self.dataset),
                    cfg.batch_size,
                    cfg.grad_accum,
                    self.world,
                    self.rank,
                    cfg.seed,
                    epoch,
                    progress.step_in_epoch,
                    stop,
                )
                pin = self.device.type == "cuda"
                loader = make_loader(self.dataset, sampler, self.collate, cfg.workers, cfg.seed, epoch, pin)
                batches = iter(loader)
                for _ in range(progress.step_in_epoch, stop):
                    result = train_step(
                        self.step_ctx, [next(batches) for _ in range(cfg.grad_accum)], progress
                    )
                    self.skipped_images += result.bad_images
                    if result.skipped:
                        progress.skipped_nonfinite += 1
                        log.warning("skipped step %d: non-finite loss or gradient", progress.global_step + 1)
                    if result.loss_sum is not None:
                        window += torch.stack([result.loss_sum, torch.tensor(float(result.n_losses))])
                    progress.advance(self.spe)
                    window_steps += 1
                    bar.update(1)
                    step = progress.global_step
                    if step % cfg.log_every == 0 or step == self.total:
                        loss_sum, n = self.acc.reduce(window, reduction="sum").tolist()
                        elapsed = max(time.perf_counter() - window_start, 1e-9)
                        record = {
                            "step": step,
                            "epoch": round(step / self.spe, 4),
                            "loss": loss_sum / n if n > 0 else None,
                            "lr": result.lr,
                            "logit_scale": float(self.unwrapped.logit_scale.detach()),
                            "samples_per_s": round(window_steps * cfg.batch_size / elapsed, 3),
                            "skipped_steps": progress.skipped_nonfinite,
                            "skipped_images": int(self._sum_over_processes(self.skipped_images)),
                        }
                        self.logger.log(record)
                        if record["loss"] is not None:
                            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                        window.zero_()
                        window_start, window_steps = time.perf_counter(), 0
                    if self.val_set is not None:
                        due = step % cfg.val_every == 0 if cfg.val_every else progress.step_in_epoch == 0
                        if due or step == self.total:
                            self.validate()
                    if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == self.total:
                        self.checkpoint()
                del batches, loader
        finally:
            bar.close()

    def finish(self, seconds: float) -> Path:
        """Save the final adapter (checking every process holds the same one) and the summary."""
        final_dir = self.out / outputs.FINAL_DIR
        total_images = int(self._sum_over_processes(self.skipped_images))
        digests = [adapter_digest(self.unwrapped.adapter_state_dict())]
        if self.world > 1:
            from accelerate.utils import gather_object

            digests = gather_object(digests)
            if len(set(digests)) != 1:
                raise RuntimeError(f"the processes ended with different adapters (sha256 {digests}); a bug")
        if self.main:
            self.unwrapped.save_pretrained(final_dir, overwrite=True)
            outputs.write_run_files(final_dir, self.resolved, self.env)
            progress = self.progress
            summary = {
                "final": str(final_dir),
                "best": str(self.out / outputs.BEST_DIR) if progress.best_step is not None else None,
                "best_metric": self.cfg.keep_best_by if self.val_set is not None else None,
                "best_value": progress.best_metric,
                "best_step": progress.best_step,
                "steps": progress.global_step,
                "epochs": progress.global_step / self.spe,
                "skipped_nonfinite_steps": progress.skipped_nonfinite,
                "skipped_images": total_images,
                "num_processes": self.world,
                "adapter_sha256_per_process": digests,
                "seconds_this_session": round(seconds, 3),
            }
            outputs.write_json(self.out / outputs.SUMMARY_JSON, summary)
            if progress.skipped_nonfinite or total_images:
                log.warning(
                    "skipped %d step(s) with a non-finite loss or gradient and %d unreadable image(s)",
                    progress.skipped_nonfinite,
                    total_images,
                )
            log.info("final adapter: %s", final_dir)
        self.acc.wait_for_everyone()
        return final_dir


def train(
    backbone: Backbone | str,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    train_config: TrainConfig | None = None,
    ace_config: AceLoraConfig | None = None,
    *,
    resume: bool = False,
    val_dir: str | os.PathLike | None = None,
) -> Path:
    """Train an ACE-LoRA adapter on a manifest and return the final adapter folder (``out_dir/final``).

    ``backbone`` is a :class:`~medpeft.backbones.clip.Backbone` (LoRA is injected into it in place: use a
    fresh one per run) or a name for ``load_backbone``. ``data_dir`` is a prepared folder (its
    ``train.csv``) or a manifest CSV with ``image``, ``text`` and label columns. ``out_dir`` must be
    new or empty unless ``resume``; then the run continues from its newest readable checkpoint (or
    starts, if it has none). ``val_dir`` (or ``train_config.val_data``) is a prepared folder scored
    zero-shot during training; the best adapter by ``keep_best_by`` is kept in ``out_dir/best``.

    Writes ``checkpoints/``, ``metrics.jsonl``/``metrics.csv`` (+ ``tensorboard/`` when installed),
    ``resolved_config.yaml``/``.json``, ``versions.json`` and ``train_summary.json``.
    """
    cfg = train_config or TrainConfig()
    ace = ace_config or AceLoraConfig()
    out = Path(out_dir)
    if val_dir is not None:
        cfg = cfg.replace(val_data=str(val_dir))

    outputs.check_output(out, resume)
    final_dir = out / outputs.FINAL_DIR
    if resume and (final_dir / ADAPTER_WEIGHTS).is_file():
        log.info("%s already holds a finished run; its adapter is %s", out, final_dir)
        return final_dir
    if cfg.precision == "fp16" and not torch.accelerator.is_available():
        raise ConfigError("precision 'fp16' needs a GPU; use 'bf16' or 'fp32' on the CPU")
    accelerator = make_accelerator(cfg.precision, step_scheduler_with_optimizer=False)
    world = accelerator.num_processes
    accelerator.wait_for_everyone()  # every process checked the folder before anyone writes to it

    # ---- data
    manifest_path = resolve_manifest(data_dir, ("train",), "training data")
    manifest = read_training_manifest(manifest_path, check_files=cfg.on_bad_image == "error")
    micro = micro_batch_size(cfg.batch_size, cfg.grad_accum, world)
    spe = steps_per_epoch(len(manifest), cfg.batch_size)
    total = cfg.epochs * spe if cfg.max_steps is None else min(cfg.epochs * spe, cfg.max_steps)
    warmup = min(total, round(cfg.warmup_epochs * spe))
    val_set = resolve_validation(cfg.val_data) if cfg.val_data else None
    if val_set is not None:
        check_validation(val_set, cfg.on_bad_image)

    # ---- model: the same initial adapter on every process
    if not isinstance(backbone, Backbone):
        backbone = load_backbone(backbone)
    context = cfg.context_length or backbone.context_length
    if context > backbone.context_length:
        raise ConfigError(
            f"context_length {context} exceeds the backbone's {backbone.context_length} positions"
        )
    if ace.text_padding == "longest" and not ace.mask_padding:
        log.warning(
            "text_padding='longest' without mask_padding: the text hypergraph then sees a batch-dependent "
            "number of padding tokens; the fast path is meant to be used with mask_padding=True"
        )
    if manifest.labels is None and ace.label_guided:
        log.warning("%s has no label columns: training with plain (not label-guided) InfoNCE", manifest_path)
    seed_everything(cfg.seed)
    model = AceLoraModel(backbone, ace)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model.clip)
    params = list(model.trainable_parameters().values())
    optimizer = torch.optim.AdamW(
        params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    scheduler = make_scheduler(optimizer, total, warmup, cfg.schedule, cfg.min_lr_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)

    resolved: dict[str, Any] = {
        "backbone": backbone.name,
        "data": str(manifest_path),
        "model": ace.to_dict(),
        "train": cfg.to_dict(),
        "run": {
            "backbone": backbone.name,
            "num_processes": world,
            "micro_batch_size": micro,
            "num_samples": len(manifest),
            "steps_per_epoch": spe,
            "total_steps": total,
            "warmup_steps": warmup,
            "context_length": context,
            "label_columns": manifest.label_columns,
            "manifest_sha256": manifest_fingerprint(manifest),
            "tokenizer_sha256": tokenizer_fingerprint(backbone.tokenizer),
            "num_trainable": accelerator.unwrap_model(model).num_trainable(),
        },
    }
    session = _Session(
        accelerator, model, optimizer, scheduler, manifest, backbone, ace, cfg, out, resolved, val_set
    )
    found = load_latest(session.ckpt_dir) if resume else None
    if found is not None:
        session.restore(*found)
    else:
        seed_everything(cfg.seed + accelerator.process_index)  # dropout: a different stream per process

    # ---- run
    if session.main:
        out.mkdir(parents=True, exist_ok=True)
        outputs.take_lock(out)
        for tmp in stray_temp_files(session.ckpt_dir):
            log.info("removing %s, left by a checkpoint write that was interrupted", tmp)
            tmp.unlink(missing_ok=True)
        outputs.write_run_files(out, resolved, session.env)
    resume_step = session.progress.global_step if found is not None else None
    session.logger = MetricsLogger(
        out, enabled=session.main, tensorboard=cfg.tensorboard, resume_step=resume_step
    )
    if cfg.compile:
        session.compile_and_warm_up(micro)
    accelerator.wait_for_everyone()
    start = time.perf_counter()
    try:
        session.loop()
        return session.finish(time.perf_counter() - start)
    finally:
        session.logger.close()
        if session.main:
            outputs.release_lock(out)


__all__ = ["train", "TrainConfig", "enable_gradient_checkpointing"]
