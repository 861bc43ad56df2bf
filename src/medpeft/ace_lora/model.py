"""``AceLoraModel``: a frozen open_clip backbone + LoRA + ACE-HGNN per encoder + a learnable logit scale."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medpeft.ace_lora.config import AceLoraConfig
from medpeft.ace_lora.hypergraph import AceHGNN
from medpeft.ace_lora.lora import LoRALinear, inject_lora, merge_lora, unmerge_lora
from medpeft.ace_lora.losses import contrastive_loss, gather_batch
from medpeft.ace_lora.released_format import (
    config_fields,
    official_metadata,
    official_to_state,
    read_official,
    state_to_official,
    write_official,
)
from medpeft.backbones.clip import Backbone
from medpeft.backbones.compilation import CompileReport, compile_towers
from medpeft.backbones.towers import TowerOutput, image_tower, text_tower
from medpeft.errors import CheckpointError
from medpeft.hub import resolve_adapter
from medpeft.io import safetensors_save, write_text
from medpeft.model_card import publish_saved, write_card
from medpeft.runtime import medpeft_version

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
FORMAT_VERSION = 1


class AceLoraModel(nn.Module):
    """ACE-LoRA around a ``Backbone``. Only LoRA, the hypergraph bottlenecks and the logit scale train.

    ``encode_image``/``encode_text`` return refined, L2-normalised global embeddings [B, D];
    ``encode_prompts`` turns [C, T, L] prompt ids into one class embedding per class (prompt ensemble).
    ``compile=True`` runs the towers' blocks and the hypergraphs through ``torch.compile`` (see
    ``compile_towers``); the numbers stay those of eager mode within float rounding.
    """

    def __init__(
        self, backbone: Backbone, config: AceLoraConfig | None = None, compile: bool = False
    ) -> None:
        super().__init__()
        self.config = config or AceLoraConfig()
        self.backbone = backbone
        self.clip = backbone.clip
        self.pad_id = backbone.pad_id
        self.clip.requires_grad_(False)
        cfg = self.config
        self.lora = (
            inject_lora(
                self.clip, cfg.lora_encoders, cfg.targets, cfg.rank, cfg.alpha, cfg.dropout, cfg.layers
            )
            if cfg.lora_encoders
            else {}
        )
        dim = backbone.embed_dim
        self.image_hgnn = AceHGNN(dim, cfg.width, cfg.top_k) if "image" in cfg.hgnn else None
        self.text_hgnn = AceHGNN(dim, cfg.width, cfg.top_k) if "text" in cfg.hgnn else None
        init = cfg.logit_scale if cfg.logit_scale is not None else float(self.clip.logit_scale.detach().exp())
        device = next(self.clip.parameters()).device
        self.logit_scale = nn.Parameter(
            torch.tensor(float(init), device=device), requires_grad=cfg.learn_logit_scale
        )
        if self.image_hgnn is not None or self.text_hgnn is not None:
            self.to(device)
        self.compile_report: CompileReport | None = None
        if compile:
            self.compile_towers()

    def compile_towers(self, device: torch.device | str | None = None) -> CompileReport:
        """Compile the towers' blocks (all but the last of each) and the hypergraphs in place; idempotent.

        Shapes: images and 256-token contexts are fixed (``dynamic=False``); with
        ``text_padding="longest"`` the text side is compiled with dynamic lengths, so a batch of a new
        length does not recompile. ``device`` (default: where the model is) is where compilation is
        probed; where it is unavailable the model stays eager and the report (and a warning) says why.
        The first call of each shape compiles (seconds to a minute): callers warm up outside their timers.
        """
        if self.compile_report is not None and self.compile_report.compiled:
            return self.compile_report
        if device is None:
            device = next(self.clip.parameters()).device
        dynamic = self.config.text_padding == "longest"
        extra = [(m, d) for m, d in ((self.image_hgnn, False), (self.text_hgnn, dynamic)) if m is not None]
        self.compile_report = compile_towers(self.clip, device, text_dynamic=dynamic, extra=extra)
        return self.compile_report

    # ------------------------------------------------------------------ encoders
    def image_features(self, pixel_values: torch.Tensor) -> TowerOutput:
        """Per-token image features [B, N, D] (normalised) and the [CLS] attention affinity [B, N-1]."""
        return image_tower(self.clip.visual, pixel_values)

    def text_features(self, input_ids: torch.Tensor) -> TowerOutput:
        return text_tower(self.clip.text, input_ids, self.pad_id)

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.image_features(pixel_values)
        if self.image_hgnn is None:
            return F.normalize(out.tokens[:, 0], dim=-1)
        return self.image_hgnn.embed(out.tokens, out.affinity)

    def encode_image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Refined per-token image features [B, N, D] (L2-normalised), for dense tasks and heat maps."""
        out = self.image_features(pixel_values)
        tokens = out.tokens if self.image_hgnn is None else self.image_hgnn(out.tokens, out.affinity)
        return F.normalize(tokens, dim=-1)

    def _text_valid(self, out: TowerOutput) -> torch.Tensor | None:
        return out.valid if self.config.mask_padding else None

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.text_features(input_ids)
        if self.text_hgnn is None:
            return F.normalize(out.tokens[:, 0], dim=-1)
        return self.text_hgnn.embed(out.tokens, out.affinity, self._text_valid(out))

    def encode_prompts(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[C, T, L] ids (T templates per class) -> [C, D]: tokens and affinities averaged over templates,
        then one hypergraph pass per class (the published prompt ensemble)."""
        if input_ids.dim() == 2:
            input_ids = input_ids[:, None]
        c, t, length = input_ids.shape
        out = self.text_features(input_ids.reshape(c * t, length))
        tokens = out.tokens.reshape(c, t, length, -1).mean(dim=1)
        affinity = out.affinity.reshape(c, t, length - 1).mean(dim=1)
        if self.text_hgnn is None:
            return F.normalize(tokens[:, 0], dim=-1)
        valid = out.valid.reshape(c, t, length).any(dim=1) if self.config.mask_padding else None
        return self.text_hgnn.embed(tokens, affinity, valid)

    # ------------------------------------------------------------------ training
    def contrastive_loss(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        gather: bool = False,
    ) -> torch.Tensor:
        """InfoNCE over the batch; label-guided when ``labels`` are given and the config enables it.
        ``gather=True`` computes it over the global batch of all processes."""
        image = self.encode_image(pixel_values)
        text = self.encode_text(input_ids)
        use_labels = labels if self.config.label_guided else None
        if gather:
            image, text, use_labels = gather_batch(image, text, use_labels)
        return contrastive_loss(image, text, self.logit_scale, use_labels)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        gather: bool = False,
    ) -> torch.Tensor:
        return self.contrastive_loss(pixel_values, input_ids, labels, gather)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters().values())

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor medpeft adds to the backbone (LoRA, bottlenecks, logit scale)."""
        names = {n for n, _ in self.named_parameters() if _is_adapter_param(n)}
        return {n: t for n, t in self.state_dict().items() if n in names}

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor], source: str = "adapter") -> None:
        own = self.adapter_state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [
            f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
            for k in own
            if k in state and state[k].shape != own[k].shape
        ]
        if missing or unexpected or shapes:
            raise CheckpointError(
                f"{source}: adapter does not match the model: missing {missing[:4]} ({len(missing)}), "
                f"unexpected {unexpected[:4]} ({len(unexpected)}), shape mismatches {shapes[:2]}"
            )
        was_merged = self.is_merged
        if was_merged:
            self.unmerge_lora()
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name in state:
                    param.copy_(state[name].to(param.dtype))
        if was_merged:
            self.merge_lora()

    # ------------------------------------------------------------------ merging
    @property
    def is_merged(self) -> bool:
        return any(m.merged for m in self.lora.values())

    def merge_lora(self) -> None:
        """Fold LoRA into the frozen weights (inference/export only; unmerge before training)."""
        merge_lora(self.clip)

    def unmerge_lora(self) -> None:
        unmerge_lora(self.clip)

    def _official_layout(self) -> dict[str, tuple[str, str, dict[str, tuple[int, int]], int]]:
        n_text = len(self.clip.text.transformer.encoder.layer)
        layout = {}
        for path, module in self.lora.items():
            idx = int(path.split(".")[4 if path.startswith("text.") else 3])
            key = f"layer_{idx if path.startswith('text.') else n_text + idx}"
            layout[path] = (key, "lora", module.parts, module.in_features)
        return layout

    def _adapter_prefixes(self) -> dict[str, tuple[int, int]]:
        dims = {}
        for name, hgnn in (("image_hgnn", self.image_hgnn), ("text_hgnn", self.text_hgnn)):
            if hgnn is not None:
                for stage in ("edge", "node"):
                    dims[f"{name}.{stage}"] = (hgnn.edge.down.in_features, hgnn.edge.down.out_features)
        return dims

    def save_pretrained(
        self, folder: str | Path, overwrite: bool = False, backbone_name: str | None = None
    ) -> Path:
        """Write ``adapter_config.json`` + ``adapter_model.safetensors`` (hub-style, loadable without medpeft's
        training code). Files are written atomically; an existing adapter is kept unless ``overwrite``.

        ``backbone_name`` overrides the recorded backbone (e.g. ``"biomedclip"`` for an adapter converted
        on the random-weight architecture)."""
        folder = Path(folder)
        if (folder / ADAPTER_WEIGHTS).exists() and not overwrite:
            from medpeft.errors import OutputExistsError

            raise OutputExistsError(f"{folder / ADAPTER_WEIGHTS} exists; pass overwrite=True to replace it")
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.adapter_state_dict().items()}
        # One metadata key: safetensors writes its metadata map in hash order, so a single key keeps the
        # file byte-identical across runs (the format version lives in adapter_config.json).
        meta = {"format": "pt"}
        safetensors_save(state, folder / ADAPTER_WEIGHTS, metadata=meta)
        cfg = {
            "method": "ace-lora",
            "format_version": FORMAT_VERSION,
            "medpeft_version": medpeft_version(),
            "backbone": backbone_name or self.backbone.name,
            "embed_dim": self.backbone.embed_dim,
            "num_trainable": self.num_trainable(),
            **self.config.to_dict(),
        }
        write_text(folder / ADAPTER_CONFIG, json.dumps(cfg, indent=2))
        write_card(folder)  # README.md model card (a hand-written one is kept)
        return folder

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        commit_message: str | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        backbone_name: str | None = None,
        license: str = "mit",
        datasets: Sequence[str] = (),
        tags: Sequence[str] = (),
    ) -> Any:
        """Upload this adapter (``save_pretrained``'s files + a model card for ``repo_id``) to the Hugging Face
        Hub in one commit, creating the repo if needed. Returns huggingface_hub's ``CommitInfo``."""
        return publish_saved(
            lambda folder: self.save_pretrained(folder, backbone_name=backbone_name),
            repo_id,
            private=private,
            commit_message=commit_message,
            revision=revision,
            token=token,
            license=license,
            datasets=datasets,
            tags=tags,
        )

    def save_official(self, path: str | Path) -> Path:
        """Write the released ``{"weights", "metadata"}`` format, runnable in the authors' scripts."""
        metadata = official_metadata(self.config)
        weights = state_to_official(
            self.adapter_state_dict(), self._official_layout(), list(self._adapter_prefixes())
        )
        return write_official(weights, metadata, path)

    @classmethod
    def from_pretrained(
        cls,
        backbone: Backbone,
        path: str | Path,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        **overrides: Any,
    ) -> AceLoraModel:
        """Load an adapter folder (``save_pretrained``) or a released ``.pt`` checkpoint onto ``backbone``.

        ``path`` may also name a Hugging Face Hub repo (``"org/name"``, ``"hf-hub:org/name"``, a file in it as
        ``"hf-hub:org/name/file.pt"``; ``revision`` = branch, tag or commit), resolved by ``medpeft.hub`` through
        the HF cache (``HF_HUB_OFFLINE`` and the usual token honoured); a local path of that name wins."""
        path = resolve_adapter(path, revision=revision, token=token)
        if path.is_dir():
            return cls._from_folder(backbone, path, **overrides)
        if path.suffix in (".pt", ".pth", ".bin") or path.is_file():
            return cls._from_official(backbone, path, **overrides)
        raise CheckpointError(f"{path}: no adapter folder ({ADAPTER_CONFIG}) or released .pt file here")

    @classmethod
    def _from_folder(cls, backbone: Backbone, folder: Path, **overrides: Any) -> AceLoraModel:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        cfg_path, weights_path = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
        for p in (cfg_path, weights_path):
            if not p.is_file():
                raise CheckpointError(f"{folder}: missing {p.name}")
        try:
            raw = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{cfg_path}: invalid JSON ({err})") from err
        if raw.get("method") != "ace-lora":
            raise CheckpointError(f"{cfg_path}: method {raw.get('method')!r} is not 'ace-lora'")
        if raw.get("embed_dim") not in (None, backbone.embed_dim):
            raise CheckpointError(
                f"{cfg_path}: adapter was trained for embed dim {raw['embed_dim']}, backbone "
                f"{backbone.name!r} has {backbone.embed_dim}"
            )
        fields = {
            k: v
            for k, v in raw.items()
            if k
            not in ("method", "format_version", "medpeft_version", "backbone", "embed_dim", "num_trainable")
        }
        fields.update(overrides)
        model = cls(backbone, AceLoraConfig.from_dict(fields))
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{weights_path}: unreadable safetensors file ({err})") from err
        model.load_adapter_state_dict(state, source=str(weights_path))
        return model

    @classmethod
    def _from_official(cls, backbone: Backbone, path: Path, **overrides: Any) -> AceLoraModel:
        weights, metadata = read_official(path)
        fields = config_fields(weights, metadata, path)
        fields.update(overrides)
        model = cls(backbone, AceLoraConfig(**fields))
        state = official_to_state(
            weights, metadata, model._official_layout(), model._adapter_prefixes(), str(path)
        )
        if "logit_scale" not in state:
            raise CheckpointError(f"{path}: missing weights['logit_scale']")
        model.load_adapter_state_dict(state, source=str(path))
        return model


def _is_adapter_param(name: str) -> bool:
    return (
        name == "logit_scale"
        or ".lora_A." in name
        or ".lora_B." in name
        or name.startswith(("image_hgnn.", "text_hgnn."))
    )


__all__ = ["AceLoraModel", "LoRALinear"]
