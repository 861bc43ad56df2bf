"""A3TuneModel: A³Tune on any Hugging Face ``LlavaForConditionalGeneration`` (LLaMA- or Mistral-based).

Built in place on the given model: peft LoRA on the language model's v/o/gate/up/down projections, A³MoE
modules swapped in for q_proj/k_proj by explicit module replacement (or plain LoRA there when ``moe=False``),
vision tower and projector frozen, and the text attention switched to the registered ``a3_sdpa`` function
that keeps SDPA's output and records the query-row × image-column attention of the recorded layers.

Adapter folder: ``adapter_config.json`` + ``adapter_model.safetensors`` (peft's format: ``PeftModel.from_pretrained``
loads the LoRA part alone), ``a3tune_moe.safetensors`` (MoE experts and routers), ``a3tune_config.json`` (method,
config, base model id and shapes, versions).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medpeft.a3tune.alignment import alignment_loss, check_weak_masks, selected_attention
from medpeft.a3tune.attention import register_attention
from medpeft.a3tune.config import A3TuneConfig
from medpeft.a3tune.context import IGNORE_INDEX, A3Context, build_context, decode_context
from medpeft.a3tune.heads import select_heads
from medpeft.a3tune.moe import KMoELinear, QMoELinear, balance_loss
from medpeft.errors import CheckpointError, ConfigError, MedpeftError
from medpeft.hub import resolve_adapter
from medpeft.model_card import publish_saved, write_card

CONFIG_FILE = "a3tune_config.json"
MOE_FILE = "a3tune_moe.safetensors"
PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
FORMAT_VERSION = 1


@dataclass
class A3TuneOutput:
    """``loss`` = lm + align_weight·align + balance_weight·balance (None without labels). ``lm_loss``: mean over
    samples of each sample's token-mean cross-entropy (a batch equals the mean of its samples run alone).
    ``head_ratios [B, L, H]``/``selected_heads``: per sample, over the recorded layers (None when not recorded).
    ``attention_in_mask``: mean a_{k,t} of the selected heads over samples with masks (detached; None if none)."""

    loss: torch.Tensor | None
    lm_loss: torch.Tensor | None
    align_loss: torch.Tensor
    balance_loss: torch.Tensor
    logits: torch.Tensor
    head_ratios: torch.Tensor | None = None
    selected_heads: torch.Tensor | None = None
    attention_in_mask: torch.Tensor | None = None
    sample_lm_loss: torch.Tensor | None = None
    sample_align_loss: torch.Tensor | None = None


def _lm(llava: nn.Module) -> nn.Module:
    return llava.model.language_model


def _lora_regex(targets: tuple[str, ...]) -> str:
    return rf".*language_model\.layers\.\d+\.(self_attn|mlp)\.({'|'.join(targets)})$"


def base_fingerprint(llava: nn.Module) -> dict[str, Any]:
    """The base-model shapes an adapter depends on."""
    text = llava.config.text_config
    attn = _lm(llava).layers[0].self_attn
    q = attn.q_proj.base if isinstance(attn.q_proj, QMoELinear) else attn.q_proj
    k = attn.k_proj.base if isinstance(attn.k_proj, KMoELinear) else attn.k_proj
    q = getattr(q, "base_layer", q)
    k = getattr(k, "base_layer", k)
    return {
        "text_model_type": text.model_type,
        "hidden_size": int(text.hidden_size),
        "num_hidden_layers": int(text.num_hidden_layers),
        "num_attention_heads": int(text.num_attention_heads),
        "num_key_value_heads": int(getattr(text, "num_key_value_heads", text.num_attention_heads)),
        "intermediate_size": int(text.intermediate_size),
        "vocab_size": int(text.vocab_size),
        "q_proj": [int(q.out_features), int(q.in_features)],
        "k_proj": [int(k.out_features), int(k.in_features)],
        "image_token_id": int(llava.config.image_token_id),
    }


class A3TuneModel(nn.Module):
    """A³Tune around a LLaVA model (adapted in place). ``llava`` may be the model or a ``LlavaBase``."""

    def __init__(
        self, llava: Any, config: A3TuneConfig | None = None, *, base_name: str | None = None
    ) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        config = config or A3TuneConfig()
        if hasattr(llava, "model") and hasattr(llava, "image_token_id") and not isinstance(llava, nn.Module):
            base_name = base_name or llava.name
            llava = llava.model
        if not hasattr(llava, "model") or not hasattr(llava.model, "language_model"):
            raise ConfigError(
                f"A3TuneModel needs a LlavaForConditionalGeneration, got {type(llava).__name__}"
            )
        if any(isinstance(m, (QMoELinear, KMoELinear)) for m in llava.modules()) or hasattr(
            llava, "peft_config"
        ):
            raise ConfigError("this LLaVA model is already adapted; load a fresh base model")
        self.config = config
        self.base_name = base_name or str(getattr(llava.config, "_name_or_path", "") or "")
        self.image_token_id = int(llava.config.image_token_id)
        n_layers = int(llava.config.text_config.num_hidden_layers)
        layers = tuple(range(n_layers)) if config.layers is None else config.layers
        if max(layers) >= n_layers:
            raise ConfigError(f"layers {list(layers)} out of range: the language model has {n_layers} layers")
        self.record_layers = tuple(sorted(set(layers)))

        llava.set_attn_implementation({"text_config": register_attention()})
        targets = config.lora_targets if config.moe else ("q_proj", "k_proj", *config.lora_targets)
        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            bias="none",
            target_modules=_lora_regex(targets),
        )
        device = next(llava.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)
            peft_model = get_peft_model(llava, lora)
            if config.moe:
                for i, layer in enumerate(_lm(llava).layers):
                    attn = layer.self_attn
                    q = QMoELinear(
                        attn.q_proj,
                        config.q_experts,
                        config.moe_rank,
                        config.moe_alpha,
                        config.moe_dropout,
                        i,
                    )
                    k = KMoELinear(
                        attn.k_proj,
                        config.k_experts,
                        config.moe_rank,
                        config.moe_alpha,
                        config.moe_dropout,
                        i,
                        top_k=config.k_top,
                        routing=config.k_routing,
                    )
                    attn.q_proj = q
                    attn.k_proj = k
                    attn.register_forward_pre_hook(_set_moe_context, with_kwargs=True)
                    attn.register_forward_hook(_clear_moe_context)
        peft_model.peft_config["default"].base_model_name_or_path = self.base_name or None
        # peft froze everything but its adapters (vision tower, projector, base weights); the MoE is trainable.
        self.peft = peft_model
        self.llava = llava
        self._generation: dict[str, Any] = {"record": False, "prefill": None}
        llava.register_forward_pre_hook(self._ensure_context, with_kwargs=True)

    # ------------------------------------------------------------------------------------------------ forward

    def moe_modules(self) -> list[tuple[str, QMoELinear | KMoELinear]]:
        return [(n, m) for n, m in self.llava.named_modules() if isinstance(m, (QMoELinear, KMoELinear))]

    def _ensure_context(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        """Forward pre-hook on the LLaVA model: calls that come without ``a3_ctx`` (``generate``) get one."""
        if "a3_ctx" in kwargs:
            return None
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None:
            raise ConfigError("A3TuneModel needs input_ids (inputs_embeds alone cannot locate image tokens)")
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if cache is not None and cache.get_seq_length() > 0:
            prefill = self._generation["prefill"]
            if prefill is None:
                raise ConfigError("cached decoding step without a prefill through A3TuneModel")
            ctx = decode_context(input_ids, prefill.routing)
        else:
            record = frozenset(self.record_layers) if self._generation["record"] else frozenset()
            ctx = build_context(
                input_ids, kwargs.get("attention_mask"), self.image_token_id, record_layers=record
            )
            self._generation["prefill"] = ctx
        return args, {**kwargs, "a3_ctx": ctx}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        weak_masks: list[torch.Tensor | None] | None = None,
        question_mask: torch.Tensor | None = None,
        record_attention: bool | None = None,
        **kwargs: Any,
    ) -> A3TuneOutput:
        """One training/evaluation forward. ``weak_masks``: per sample a ``[K, g, g]`` tensor on its image-token
        grid, or None. ``record_attention`` defaults to ``config.align``."""
        record = self.config.align if record_attention is None else record_attention
        ctx = build_context(
            input_ids,
            attention_mask,
            self.image_token_id,
            labels=labels,
            question_mask=question_mask,
            record_layers=frozenset(self.record_layers) if record else frozenset(),
        )
        counts = ctx.col_valid.sum(1).tolist()
        masks = check_weak_masks(weak_masks, counts)
        try:
            out = self.llava(
                input_ids=input_ids,
                attention_mask=attention_mask,
                pixel_values=pixel_values,
                a3_ctx=ctx,
                **kwargs,
            )
        finally:
            ctx.recording = False  # a gradient-checkpointing recompute must not overwrite the stores
        logits = out.logits
        zero = logits.new_zeros((), dtype=torch.float32)
        lm_loss = sample_lm = None
        if labels is not None:
            lm_loss, sample_lm = causal_lm_loss(logits, labels)
        align = zero
        ratios = selected = in_mask = sample_align = None
        if record:
            ratios = torch.stack([ctx.ratios[layer] for layer in self.record_layers], dim=1)
            selected = select_heads(ratios, self.config.top_heads)
            if any(m is not None for m in masks):
                abar = selected_attention([ctx.attn[layer] for layer in self.record_layers], selected)
                align, sample_align, in_mask = alignment_loss(
                    abar, ctx.row_valid, ctx.col_valid, masks, self.config.align_loss
                )
        balance = zero
        if self.config.moe and ctx.k_routing:
            balance = balance_loss(
                ctx.k_routing,
                input_ids.shape[0],
                self.config.k_experts,
                self.config.k_top,
                scaled=self.config.balance_scaled,
            )
        loss = None
        if lm_loss is not None:
            loss = lm_loss
            if self.config.align_weight > 0:
                loss = loss + self.config.align_weight * align
            if self.config.balance_weight > 0:
                loss = loss + self.config.balance_weight * balance
        ctx.attn.clear()
        ctx.k_routing.clear()
        return A3TuneOutput(
            loss=loss,
            lm_loss=lm_loss,
            align_loss=align,
            balance_loss=balance,
            logits=logits,
            head_ratios=ratios,
            selected_heads=selected,
            attention_in_mask=in_mask,
            sample_lm_loss=sample_lm,
            sample_align_loss=sample_align,
        )

    @torch.no_grad()
    def generate(self, *args: Any, record_attention: bool = False, **kwargs: Any) -> Any:
        """``LlavaForConditionalGeneration.generate`` with the adapters; the Q-MoE routing of the prefill (question =
        every prompt token after the image) is reused at every cached decoding step, and the K-MoE is inactive
        there (no image tokens). With ``use_cache=False`` each step is a full forward whose routing also sees the
        tokens generated so far. ``record_attention``: keep the prefill's head ratios
        (:attr:`last_generation_ratios`). One ``generate`` at a time per model (the prefill context is kept on
        the model between its steps)."""
        self._generation = {"record": record_attention, "prefill": None}
        try:
            return self.llava.generate(*args, **kwargs)
        finally:
            self._generation["record"] = False

    @property
    def last_generation_ratios(self) -> torch.Tensor | None:
        """Head ratios ``[B, L, H]`` of the last ``generate(record_attention=True)`` prefill."""
        ctx: A3Context | None = self._generation.get("prefill")
        if ctx is None or not ctx.ratios:
            return None
        return torch.stack([ctx.ratios[layer] for layer in self.record_layers], dim=1)

    def enable_gradient_checkpointing(self) -> None:
        """Non-reentrant checkpointing (the recorded attention keeps its gradient; reentrant would drop it)."""
        kwargs = {"use_reentrant": False}
        if hasattr(self.llava, "activation_checkpointing_enable"):  # transformers >= 5.2x
            self.llava.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.llava.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if hasattr(self.llava, "enable_input_require_grads"):
            self.llava.enable_input_require_grads()

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.llava.named_parameters() if p.requires_grad}

    # ----------------------------------------------------------------------------------------------- adapters

    def moe_state_dict(self) -> dict[str, torch.Tensor]:
        state = {}
        for name, module in self.moe_modules():
            for pname, p in module.named_parameters():
                if not pname.startswith("base."):
                    state[f"{name}.{pname}"] = p
        return state

    def peft_state_dict(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        # save_embedding_layers=False: LoRA never touches the embeddings here, and peft's "auto" would look the
        # base model's config up on the Hub (a network call nobody asked for)
        return get_peft_model_state_dict(self.peft, save_embedding_layers=False)

    def save_pretrained(self, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the adapter folder (atomic files; refuses a folder that already holds an adapter)."""
        from medpeft.io import check_out_dir, safetensors_save, write_json
        from medpeft.runtime import versions

        out = Path(out_dir)
        check_out_dir(
            out,
            may_reuse=overwrite,
            results=(CONFIG_FILE, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, MOE_FILE),
            advice="pass overwrite=True to replace the adapter, or choose another folder",
        )
        out.mkdir(parents=True, exist_ok=True)
        peft_cfg = self.peft.peft_config["default"].to_dict()
        peft_cfg = {k: sorted(v) if isinstance(v, set) else v for k, v in peft_cfg.items()}
        safetensors_save(self.peft_state_dict(), out / PEFT_WEIGHTS_FILE, metadata={"format": "pt"})
        write_json(out / PEFT_CONFIG_FILE, peft_cfg, sort_keys=True)
        if self.config.moe:
            safetensors_save(self.moe_state_dict(), out / MOE_FILE, metadata={"format": "pt"})
        write_json(
            out / CONFIG_FILE,
            {
                "method": self.config.method,
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "base_model": self.base_name,
                "base": base_fingerprint(self.llava),
                "versions": versions(),
            },
        )
        write_card(out)  # README.md model card (a hand-written one is kept)
        return out

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        commit_message: str | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        license: str = "mit",
        datasets: Sequence[str] = (),
        tags: Sequence[str] = (),
    ) -> Any:
        """Upload this adapter (``save_pretrained``'s files + a model card for ``repo_id``) to the Hugging Face
        Hub in one commit, creating the repo if needed. Returns huggingface_hub's ``CommitInfo``."""
        return publish_saved(
            lambda folder: self.save_pretrained(folder, overwrite=True),
            repo_id,
            private=private,
            commit_message=commit_message,
            revision=revision,
            token=token,
            license=license,
            datasets=datasets,
            tags=tags,
        )

    @classmethod
    def from_pretrained(
        cls,
        llava: Any,
        adapter_dir: str | os.PathLike[str],
        *,
        check_base_name: bool = True,
        revision: str | None = None,
        token: str | bool | None = None,
    ) -> A3TuneModel:
        """Rebuild the adapter on a fresh base model. Everything is checked before the model is touched: a
        folder made for another base (model id or shapes) raises ``CheckpointError`` and leaves ``llava`` as is.

        ``adapter_dir`` may name a Hugging Face Hub repo (``"org/name"``, ``"hf-hub:org/name"``; ``revision`` =
        branch, tag or commit), resolved by ``medpeft.hub`` (HF cache, ``HF_HUB_OFFLINE``, the usual token); a
        local folder of that name wins."""
        from medpeft.io import read_json, safetensors_load

        folder = resolve_adapter(adapter_dir, revision=revision, token=token)
        meta = read_json(folder / CONFIG_FILE, "A³Tune adapter config")
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION or "config" not in meta:
            raise CheckpointError(
                f"{folder / CONFIG_FILE}: not an A³Tune adapter config (format {FORMAT_VERSION})"
            )
        try:
            config = A3TuneConfig.from_dict(meta["config"])
        except MedpeftError as err:
            raise CheckpointError(f"{folder / CONFIG_FILE}: {err}") from err
        base_name = None
        model = llava
        if hasattr(llava, "image_token_id") and not isinstance(llava, nn.Module):
            base_name, model = llava.name, llava.model
        base_name = base_name or str(getattr(model.config, "_name_or_path", "") or "")
        want = meta.get("base", {})
        have = base_fingerprint(model)
        diff = [
            f"{k}: adapter {want.get(k)!r} vs model {have.get(k)!r}"
            for k in sorted(set(want) | set(have))
            if want.get(k) != have.get(k)
        ]
        if diff:
            raise CheckpointError(f"{folder}: adapter was built for another base model ({'; '.join(diff)})")
        saved_name = meta.get("base_model") or ""
        if check_base_name and saved_name and base_name and saved_name != base_name:
            raise CheckpointError(
                f"{folder}: adapter was built for base model {saved_name!r}, not {base_name!r} "
                "(pass check_base_name=False if they are the same weights under another name)"
            )
        peft_state = safetensors_load(folder / PEFT_WEIGHTS_FILE, "peft LoRA weights")
        moe_state = safetensors_load(folder / MOE_FILE, "A³MoE weights") if config.moe else {}
        expected_peft, expected_moe = expected_adapter_shapes(model, config)
        for what, state, expected in (("LoRA", peft_state, expected_peft), ("MoE", moe_state, expected_moe)):
            missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
            wrong = [
                f"{k} {tuple(state[k].shape)} != {expected[k]}"
                for k in sorted(set(state) & set(expected))
                if tuple(state[k].shape) != expected[k]
            ]
            if missing or extra or wrong:
                raise CheckpointError(
                    f"{folder}: {what} weights do not match this base model: missing {missing[:3]} "
                    f"({len(missing)}), unexpected {extra[:3]} ({len(extra)}), wrong shapes {wrong[:3]}"
                )
        adapted = cls(model, config, base_name=base_name or saved_name)
        adapted.load_adapter_state(peft_state, moe_state)
        return adapted

    @torch.no_grad()
    def load_adapter_state(
        self, peft_state: dict[str, torch.Tensor], moe_state: dict[str, torch.Tensor]
    ) -> None:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.peft, peft_state)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise CheckpointError(f"peft did not place LoRA weights {unexpected[:3]}")
        params = dict(self.llava.named_parameters())
        for key, value in moe_state.items():
            params[key].copy_(value.to(params[key].dtype))


def expected_adapter_shapes(
    llava: nn.Module, config: A3TuneConfig
) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Key -> shape of the peft file and of the MoE file that ``config`` would produce on this base model."""
    targets = config.lora_targets if config.moe else ("q_proj", "k_proj", *config.lora_targets)
    pattern = re.compile(_lora_regex(targets))
    peft_shapes: dict[str, tuple[int, ...]] = {}
    moe_shapes: dict[str, tuple[int, ...]] = {}
    for name, module in llava.named_modules():
        if isinstance(module, nn.Linear) and pattern.fullmatch(name):
            prefix = f"base_model.model.{name}"
            peft_shapes[f"{prefix}.lora_A.weight"] = (config.lora_rank, module.in_features)
            peft_shapes[f"{prefix}.lora_B.weight"] = (module.out_features, config.lora_rank)
        if (
            config.moe
            and name.endswith(("self_attn.q_proj", "self_attn.k_proj"))
            and "language_model" in name
        ):
            n_exp = config.q_experts if name.endswith("q_proj") else config.k_experts
            moe_shapes[f"{name}.lora_A"] = (n_exp, config.moe_rank, module.in_features)
            moe_shapes[f"{name}.lora_B"] = (n_exp, module.out_features, config.moe_rank)
            moe_shapes[f"{name}.router.weight"] = (n_exp, module.in_features)
            moe_shapes[f"{name}.router.bias"] = (n_exp,)
    return peft_shapes, moe_shapes


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over samples with labels of each sample's token-mean next-token cross-entropy, per-sample [B])."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:].to(logits.device)
    tok = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(shift_labels.shape)
    valid = (shift_labels != IGNORE_INDEX).float()
    count = valid.sum(1)
    per_sample = (tok * valid).sum(1) / count.clamp_min(1)
    has = count > 0
    if not bool(has.any()):
        raise ConfigError("labels mask every token (-100): no language-modelling target in the batch")
    return per_sample[has].mean(), per_sample


def _set_moe_context(module: nn.Module, args: tuple, kwargs: dict) -> None:
    ctx = kwargs.get("a3_ctx")
    for proj in (module.q_proj, module.k_proj):
        if isinstance(proj, (QMoELinear, KMoELinear)):
            proj.ctx = ctx


def _clear_moe_context(module: nn.Module, args: tuple, output: Any) -> None:
    for proj in (module.q_proj, module.k_proj):
        if isinstance(proj, (QMoELinear, KMoELinear)):
            proj.ctx = None
