"""``train_a3tune()``: A³Tune (or the plain-LoRA baseline) on a conversation manifest, on accelerate.

The guarantees of the ACE-LoRA loop (``loop.py``), with the same pieces: one code path for CPU, one GPU,
several GPUs and DeepSpeed/FSDP (``accelerate launch --config_file ...``); AMP (bf16/fp16); gradient
accumulation; gradient checkpointing (non-reentrant, so the attention recorder keeps its gradient); the data
order a pure function of (seed, epoch, step) (``data/sampler.py``); atomic checkpoints holding the adapter,
optimizer, scheduler, grad scaler, every process's RNG and the data position (``checkpoint.py``), so a run
SIGKILLed and resumed ends with the bytes of an uninterrupted one (CPU); ``metrics.jsonl`` per log step with
the LM, alignment and balance losses and the mean attention-in-mask ratio of the selected heads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from medpeft.a3tune.collate import A3Collator
from medpeft.a3tune.config import A3TuneConfig
from medpeft.a3tune.examples import ConversationExamples
from medpeft.a3tune.model import A3TuneModel
from medpeft.backbones.llava import LlavaBase, load_llava
from medpeft.data.sampler import GlobalBatchSampler, micro_batch_size, steps_per_epoch
from medpeft.errors import ConfigError
from medpeft.runtime import (
    capture_rng_state,
    make_accelerator,
    make_scheduler,
    restore_rng_state,
    seed_everything,
    versions,
)
from medpeft.training import checkpoint, outputs
from medpeft.training.a3tune_config import RESUMABLE_CHANGES, A3TrainConfig
from medpeft.training.data import make_loader
from medpeft.training.guards import any_process, grads_finite, nonfinite_error
from medpeft.training.logs import MetricsLogger
from medpeft.training.progress import Progress
from medpeft.training.resume import adapter_digest

log = logging.getLogger("medpeft.a3tune.train")

#: The per-step sums reduced over processes: loss, lm, align, balance, #losses, in-mask sum, #in-mask.
_WINDOW = 7


def samples_fingerprint(examples: ConversationExamples) -> str:
    """sha256 of the split's ids, images, questions, answers and weak-label match, in order."""
    h = hashlib.sha256()
    for s in examples.samples:
        h.update(json.dumps([s.id, s.image, s.conversations, s.answer_type]).encode())
    if examples.match is not None:
        h.update(json.dumps(examples.match.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def _check_resume(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Every setting that changes the numbers must equal the checkpoint's (a ``ConfigError`` names them all)."""
    problems = []
    for section in ("train", "model", "run"):
        a, b = saved.get(section, {}), current.get(section, {})
        for key in sorted(set(a) | set(b)):
            if section == "train" and key in RESUMABLE_CHANGES:
                continue
            if a.get(key) != b.get(key):
                problems.append(f"{section}.{key}: checkpoint {a.get(key)!r}, now {b.get(key)!r}")
    if problems:
        raise ConfigError(
            f"cannot resume from {path}: the run's settings differ, so the result would not match an "
            f"uninterrupted run: {'; '.join(problems)}. Resume with the original settings or start a new --out"
        )


class _A3Session:
    """One training session on one process (a fresh run or the rest of a resumed one)."""

    def __init__(self, acc: Any, model: Any, optimizer: Any, scheduler: Any, examples: ConversationExamples,
                 collator: A3Collator, cfg: A3TrainConfig, out: Path, resolved: dict[str, Any]) -> None:  # fmt: skip
        self.acc, self.model, self.optimizer, self.scheduler = acc, model, optimizer, scheduler
        self.unwrapped: A3TuneModel = acc.unwrap_model(model)
        self.examples, self.collator, self.cfg, self.out, self.resolved = (
            examples,
            collator,
            cfg,
            out,
            resolved,
        )
        self.device, self.main = acc.device, acc.is_main_process
        self.world, self.rank = acc.num_processes, acc.process_index
        self.spe, self.total = resolved["run"]["steps_per_epoch"], resolved["run"]["total_steps"]
        self.params = list(self.unwrapped.trainable_parameters().values())
        self.progress = Progress()
        self.ckpt_dir = out / checkpoint.CHECKPOINT_DIR
        self.env = versions(self.device, num_processes=self.world, precision=cfg.precision)
        self.logger: MetricsLogger | None = None

    def adapter_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.unwrapped.trainable_parameters().items()}

    def restore(self, ckpt: dict[str, Any], path: Path) -> None:
        _check_resume(ckpt["config"], self.resolved, path)
        params = self.unwrapped.trainable_parameters()
        if set(params) != set(ckpt["adapter"]):
            raise ConfigError(f"{path}: the checkpoint's adapter tensors do not match this model's")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(ckpt["adapter"][name].to(p.device, p.dtype))
        checkpoint.restore_optimization(ckpt, self.acc, self.optimizer, self.scheduler)
        self.progress = Progress.from_dict(ckpt["progress"])
        states = ckpt["rng"]
        if len(states) != self.world:
            raise ConfigError(f"{path} was written by {len(states)} process(es); resume with the same number")
        restore_rng_state(states[self.rank]["rng"])
        if self.main:
            log.info("resuming from %s (step %d of %d)", path, self.progress.global_step, self.total)

    def save_checkpoint(self) -> None:
        per_process = checkpoint.process_states({"rng": capture_rng_state()}, self.world)
        if self.main:
            checkpoint.save_session(
                self.ckpt_dir,
                self.progress.global_step,
                adapter=self.adapter_state(),
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

    def step(self, micro_batches: list[dict[str, Any]]) -> tuple[torch.Tensor, bool, float]:
        """One optimizer step; returns (window sums [_WINDOW], skipped, lr used)."""
        cfg, acc, device = self.cfg, self.acc, self.device
        sums = torch.zeros(_WINDOW, device=device, dtype=torch.float64)
        skipped = False
        where = (self.progress.global_step + 1, self.progress.epoch, self.progress.step_in_epoch + 1)
        for batch in micro_batches:
            out = self.model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                pixel_values=batch["pixel_values"].to(device),
                labels=batch["labels"].to(device),
                weak_masks=[None if m is None else m.to(device) for m in batch["weak_masks"]],
            )
            finite = bool(torch.isfinite(out.loss.detach()).item())
            if any_process(not finite, device):
                if cfg.on_nonfinite == "error":
                    raise nonfinite_error("loss", None if finite else float(out.loss.detach()), *where)
                skipped = True
                break
            acc.backward(out.loss / len(micro_batches))
            parts = [out.loss, out.lm_loss, out.align_loss, out.balance_loss]
            sums[:4] += torch.stack([p.detach().double() for p in parts])
            sums[4] += 1
            if out.attention_in_mask is not None:
                sums[5] += out.attention_in_mask.double()
                sums[6] += 1
        if not skipped and cfg.precision != "fp16" and any_process(not grads_finite(self.params), device):
            if cfg.on_nonfinite == "error":
                raise nonfinite_error("gradient", None, *where)
            skipped = True
        lr = float(self.optimizer.param_groups[0]["lr"])
        if not skipped:
            if cfg.max_grad_norm is not None:
                acc.clip_grad_norm_(self.params, cfg.max_grad_norm)
            self.optimizer.step()
        self.scheduler.step()  # the schedule follows the data position, skipped steps included
        self.optimizer.zero_grad(set_to_none=True)
        if skipped:
            sums.zero_()
        return sums, skipped, lr

    def loop(self) -> None:
        from tqdm.auto import tqdm

        cfg, progress = self.cfg, self.progress
        self.model.train()
        bar = tqdm(total=self.total, initial=progress.global_step, disable=not (self.main and cfg.progress),
                   desc="a3tune train", unit="step", dynamic_ncols=True)  # fmt: skip
        window = torch.zeros(_WINDOW, device=self.device, dtype=torch.float64)
        window_start, window_steps = time.perf_counter(), 0
        try:
            while progress.global_step < self.total:
                epoch = progress.epoch
                stop = min(self.spe, progress.step_in_epoch + (self.total - progress.global_step))
                sampler = GlobalBatchSampler(len(self.examples), cfg.batch_size, cfg.grad_accum, self.world,
                                             self.rank, cfg.seed, epoch, progress.step_in_epoch, stop)  # fmt: skip
                pin = self.device.type == "cuda"
                loader = make_loader(self.examples, sampler, self.collator, cfg.workers, cfg.seed, epoch, pin)
                batches = iter(loader)
                for _ in range(progress.step_in_epoch, stop):
                    sums, skipped, lr = self.step([next(batches) for _ in range(cfg.grad_accum)])
                    if skipped:
                        progress.skipped_nonfinite += 1
                        log.warning("skipped step %d: non-finite loss or gradient", progress.global_step + 1)
                    window += sums
                    progress.advance(self.spe)
                    window_steps += 1
                    bar.update(1)
                    step = progress.global_step
                    if step % cfg.log_every == 0 or step == self.total:
                        total = self.acc.reduce(window.clone(), reduction="sum").tolist()
                        n, n_mask = total[4], total[6]
                        elapsed = max(time.perf_counter() - window_start, 1e-9)
                        record = {
                            "step": step,
                            "epoch": round(step / self.spe, 4),
                            "loss": total[0] / n if n else None,
                            "lm_loss": total[1] / n if n else None,
                            "align_loss": total[2] / n if n else None,
                            "balance_loss": total[3] / n if n else None,
                            "attention_in_mask": total[5] / n_mask if n_mask else None,
                            "lr": lr,
                            "skipped_steps": progress.skipped_nonfinite,
                            "samples_per_s": round(window_steps * cfg.batch_size / elapsed, 3),
                        }
                        self.logger.log(record)
                        if record["loss"] is not None:
                            bar.set_postfix(loss=f"{record['loss']:.4f}")
                        window.zero_()
                        window_start, window_steps = time.perf_counter(), 0
                    if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == self.total:
                        self.save_checkpoint()
                del batches, loader
        finally:
            bar.close()

    def finish(self, seconds: float) -> Path:
        final_dir = self.out / outputs.FINAL_DIR
        digests = [adapter_digest(self.adapter_state())]
        if self.world > 1:
            from accelerate.utils import gather_object

            digests = gather_object(digests)
            if len(set(digests)) != 1:
                raise RuntimeError(f"the processes ended with different adapters (sha256 {digests}); a bug")
        if self.main:
            self.unwrapped.save_pretrained(final_dir, overwrite=True)
            outputs.write_run_files(final_dir, self.resolved, self.env)
            summary = {
                "final": str(final_dir),
                "steps": self.progress.global_step,
                "epochs": self.progress.global_step / self.spe,
                "skipped_nonfinite_steps": self.progress.skipped_nonfinite,
                "weak_labels": self.resolved["run"].get("weak_labels"),
                "num_processes": self.world,
                "adapter_sha256": digests[0],
                "seconds_this_session": round(seconds, 3),
            }
            outputs.write_json(self.out / outputs.SUMMARY_JSON, summary)
            log.info("final adapter: %s", final_dir)
        self.acc.wait_for_everyone()
        return final_dir


def train_a3tune(
    base: LlavaBase | str,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    model_config: A3TuneConfig | None = None,
    train_config: A3TrainConfig | None = None,
    *,
    weak_labels: str | os.PathLike[str] | None = None,
    split: str = "train",
    resume: bool = False,
) -> Path:
    """Train an A³Tune (or plain-LoRA) adapter on ``data_dir``'s ``split`` and return ``out_dir/final``.

    ``base``: a preset/folder/hub id for ``load_llava`` or a fresh :class:`LlavaBase` (adapted in place).
    ``weak_labels``: the folder ``medpeft weak-labels`` wrote, or its ``masks.npz``; without it (or for samples
    it lacks) the alignment loss is 0. ``out_dir`` must be new or empty unless ``resume``.
    Writes ``checkpoints/``, ``metrics.jsonl``/``.csv``, ``resolved_config.{yaml,json}``, ``versions.json``,
    ``train_summary.json`` and the adapter folder ``final/`` (``A3TuneModel.from_pretrained`` reads it).
    """
    cfg = train_config or A3TrainConfig()
    a3 = (model_config or A3TuneConfig()).replace(seed=cfg.seed)
    out = Path(out_dir)
    outputs.check_output(out, resume)
    final_dir = out / outputs.FINAL_DIR
    if resume and (final_dir / "a3tune_config.json").is_file():
        log.info("%s already holds a finished run; its adapter is %s", out, final_dir)
        return final_dir
    if cfg.precision == "fp16" and not torch.accelerator.is_available():
        raise ConfigError("precision 'fp16' needs a GPU; use 'bf16' or 'fp32' on the CPU")
    from accelerate.utils import DistributedDataParallelKwargs

    # routers that get no gradient in a step (K-MoE with balance weight 0) must not stall DDP
    acc = make_accelerator(cfg.precision, step_scheduler_with_optimizer=False,
                           kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])  # fmt: skip
    world = acc.num_processes
    acc.wait_for_everyone()

    if not isinstance(base, LlavaBase):
        base = load_llava(str(base), device=acc.device)
    examples = ConversationExamples(data_dir, split, weak_labels=weak_labels, grid=base.grid,
                                    image_processor=base.image_processor, grid_mode=cfg.grid_mode)  # fmt: skip
    if examples.match is not None and acc.is_main_process:
        mismatched = examples.match.without_masks or examples.match.unknown_ids
        (log.warning if mismatched else log.info)("weak labels: %s", examples.match.describe())
    if weak_labels is None and a3.align and acc.is_main_process:
        log.warning("no --weak-labels: the alignment loss is 0 (attention is still recorded and logged)")
    micro = micro_batch_size(cfg.batch_size, cfg.grad_accum, world)
    spe = steps_per_epoch(len(examples), cfg.batch_size)
    total = cfg.epochs * spe if cfg.max_steps is None else min(cfg.epochs * spe, cfg.max_steps)
    warmup = min(total, round(cfg.warmup_ratio * total))
    collator = A3Collator(base.tokenizer, base.image_processor, base.image_token_id, base.grid,
                          padding_side="right", max_length=cfg.max_length)  # fmt: skip

    seed_everything(cfg.seed)
    model = A3TuneModel(base, a3)
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    params = list(model.trainable_parameters().values())
    optimizer = torch.optim.AdamW(
        params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    scheduler = make_scheduler(optimizer, total, warmup, cfg.schedule)
    model, optimizer = acc.prepare(model, optimizer)
    resolved: dict[str, Any] = {
        "base": base.name,
        "data": str(Path(data_dir)),
        "split": split,
        "weak_labels": None if weak_labels is None else str(examples.weak_folder),
        "model": a3.to_dict(),
        "train": cfg.to_dict(),
        "run": {
            "method": a3.method,
            "base": base.name,
            "num_processes": world,
            "micro_batch_size": micro,
            "num_samples": len(examples),
            "steps_per_epoch": spe,
            "total_steps": total,
            "warmup_steps": warmup,
            "samples_sha256": samples_fingerprint(examples),
            "tokenizer_sha256": hashlib.sha256(
                json.dumps(sorted(base.tokenizer.get_vocab().items())).encode()
            ).hexdigest(),
            "num_trainable": int(sum(p.numel() for p in params)),
            "weak_labels": None if examples.match is None else examples.match.to_dict(),
        },
    }
    session = _A3Session(acc, model, optimizer, scheduler, examples, collator, cfg, out, resolved)
    found = checkpoint.load_latest(session.ckpt_dir) if resume else None
    if found is not None:
        session.restore(*found)
    else:
        seed_everything(cfg.seed + acc.process_index)  # dropout: a different stream per process
    if session.main:
        out.mkdir(parents=True, exist_ok=True)
        outputs.take_lock(out)
        for tmp in checkpoint.stray_temp_files(session.ckpt_dir):
            log.info("removing %s, left by a checkpoint write that was interrupted", tmp)
            tmp.unlink(missing_ok=True)
        outputs.write_run_files(out, resolved, session.env)
    resume_step = session.progress.global_step if found is not None else None
    session.logger = MetricsLogger(out, enabled=session.main, tensorboard=False, resume_step=resume_step)
    acc.wait_for_everyone()
    start = time.perf_counter()
    try:
        session.loop()
        return session.finish(time.perf_counter() - start)
    finally:
        session.logger.close()
        if session.main:
            outputs.release_lock(out)


__all__ = ["A3TrainConfig", "train_a3tune"]
