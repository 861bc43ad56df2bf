"""Backbones: BiomedCLIP through open_clip (hub id, local folder, or architecture only) and a tiny preset.

open_clip's own loader fetches the text tower's BERT config from the hub even for a local
folder; medpeft ships the architecture configs in ``medpeft/assets`` and builds the
``CustomTextCLIP`` itself, so a local folder (or the HF cache with ``HF_HUB_OFFLINE=1``) is
enough and the state-dict keys stay exactly open_clip's.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medpeft.backbones.names import BIOMEDCLIP_HUB_ID, parse_backbone_name
from medpeft.backbones.tokenizer import TextTokenizer, load_hf_tokenizer, packaged_vocab, wordpiece_tokenizer
from medpeft.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

BIOMEDBERT_HUB_ID = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
TINY_BERT_ID = "medpeft/tiny-bert"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
# Text-tower architecture configs shipped with medpeft, so no BERT config is ever fetched.
PACKAGED_TEXT_CONFIGS = {BIOMEDBERT_HUB_ID: ASSETS / "biomedbert", TINY_BERT_ID: ASSETS / "tiny_bert"}
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CONFIG_FILE = "open_clip_config.json"


@dataclass
class Backbone:
    """An open_clip model with its tokenizer, preprocessing and the config it was built from."""

    clip: nn.Module
    tokenizer_factory: Callable[[], TextTokenizer]
    config: dict[str, Any]
    name: str
    preprocess: Callable = field(init=False)
    preprocess_train: Callable = field(init=False)
    _tokenizer: TextTokenizer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.preprocess = make_preprocess(self.config, self.mean, self.std, train=False)
        self.preprocess_train = make_preprocess(self.config, self.mean, self.std, train=True)

    @property
    def tokenizer(self) -> TextTokenizer:
        """Built on first use: the random-weight presets train a WordPiece vocab, which parity runs never need."""
        if self._tokenizer is None:
            self._tokenizer = self.tokenizer_factory()
        return self._tokenizer

    @property
    def pad_id(self) -> int:
        pad = getattr(self.clip.text.config, "pad_token_id", None)
        return 0 if pad is None else int(pad)

    @property
    def image_size(self) -> int:
        return int(self.config["model_cfg"]["vision_cfg"]["image_size"])

    @property
    def context_length(self) -> int:
        return int(self.config["model_cfg"]["text_cfg"]["context_length"])

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel normalisation mean the backbone was trained with (its preprocess uses it)."""
        import open_clip

        return tuple(self.config.get("preprocess_cfg", {}).get("mean", open_clip.OPENAI_DATASET_MEAN))

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel normalisation std the backbone was trained with."""
        import open_clip

        return tuple(self.config.get("preprocess_cfg", {}).get("std", open_clip.OPENAI_DATASET_STD))

    @property
    def embed_dim(self) -> int:
        return int(self.config["model_cfg"]["embed_dim"])

    def save(self, folder: str | Path, safe_serialization: bool = True) -> Path:
        """Write the folder layout ``load_backbone(folder)`` reads: config, weights, tokenizer files."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(self.config, indent=2))
        state = {k: v.detach().contiguous().cpu() for k, v in self.clip.state_dict().items()}
        if safe_serialization:
            save_file(state, str(folder / WEIGHT_FILES[0]))
        else:
            torch.save(state, folder / WEIGHT_FILES[1])
        self.tokenizer.save(folder)
        return folder


def make_preprocess(
    config: dict[str, Any], mean: tuple[float, ...], std: tuple[float, ...], train: bool
) -> Callable:
    """open_clip's image transform with the backbone's own mean/std (BiomedCLIP's, not open_clip defaults)."""
    import open_clip

    pp = config.get("preprocess_cfg", {})
    return open_clip.image_transform(
        int(config["model_cfg"]["vision_cfg"]["image_size"]),
        is_train=train,
        mean=mean,
        std=std,
        interpolation=pp.get("interpolation", "bicubic"),
        resize_mode=pp.get("resize_mode", "shortest"),
    )


def _resolve_text_config(name: str, base_dir: Path | None) -> str:
    """Where the BERT config comes from: a packaged copy, a folder beside the weights, or (last) the hub."""
    if name in PACKAGED_TEXT_CONFIGS:
        return str(PACKAGED_TEXT_CONFIGS[name])
    for candidate in ([base_dir / name] if base_dir else []) + [Path(name)]:
        if (candidate / "config.json").is_file():
            return str(candidate)
    return name


def build_clip(config: dict[str, Any], base_dir: Path | None = None, seed: int = 0) -> nn.Module:
    """Construct the open_clip ``CustomTextCLIP`` for a config, with seeded random weights."""
    import open_clip
    import timm

    model_cfg = copy.deepcopy(config["model_cfg"])
    vision_cfg = model_cfg["vision_cfg"]
    text_cfg = model_cfg["text_cfg"]
    trunk_kwargs = vision_cfg.pop("medpeft_timm_kwargs", None)
    text_cfg["hf_model_name"] = _resolve_text_config(text_cfg["hf_model_name"], base_dir)
    text_cfg["hf_model_pretrained"] = False  # weights always come from the CLIP checkpoint
    if "timm_model_name" not in vision_cfg or "hf_model_name" not in text_cfg:
        raise ConfigError(
            "medpeft supports open_clip CustomTextCLIP configs (timm vision tower + HF text tower)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clip = open_clip.CustomTextCLIP(
            embed_dim=model_cfg["embed_dim"],
            vision_cfg=vision_cfg,
            text_cfg=text_cfg,
            quick_gelu=model_cfg.get("quick_gelu", False),
        )
        if trunk_kwargs:
            # A small ViT of the same timm family; open_clip cannot pass size arguments to timm itself.
            trunk = timm.create_model(
                vision_cfg["timm_model_name"], pretrained=False, num_classes=0, **trunk_kwargs
            )
            clip.visual.trunk = trunk
            clip.visual.head.proj = nn.Linear(trunk.num_features, model_cfg["embed_dim"], bias=False)
            clip.visual.image_size = (vision_cfg["image_size"], vision_cfg["image_size"])
    clip.eval()
    return clip


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read open_clip weights safely: safetensors, or a torch pickle restricted to tensors."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as err:  # noqa: BLE001 - re-raised with the path
            raise CheckpointError(f"{path}: cannot read weights ({type(err).__name__}: {err})") from err
    else:
        from medpeft.io import safe_torch_load

        state = safe_torch_load(path, "weights file")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(clip: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a full CLIP state dict; missing, unexpected or mis-shaped keys are named in the error."""
    own = clip.state_dict()
    optional = {k for k in own if k.endswith("position_ids")}  # a non-persistent buffer in newer transformers
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own) - optional)
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (first: {shapes[:2]})")
        raise CheckpointError(f"{source}: weights do not match the architecture: " + "; ".join(parts))
    clip.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def _tiny_tokenizer(context_length: int, vocab_size: int) -> TextTokenizer:
    return wordpiece_tokenizer(packaged_vocab(vocab_size), context_length)


def _standin_tokenizer(context_length: int) -> TextTokenizer:
    """A WordPiece vocab with BiomedBERT's special ids, for the random-weight architecture when the real
    BiomedBERT vocab is not in the HF cache (token ids then differ from BiomedCLIP's: fine for random weights)."""
    return _tiny_tokenizer(context_length, vocab_size=4096)


def _has_tokenizer_files(folder: Path) -> bool:
    return any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt"))


def _hub_file(repo: str, filename: str) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None
    except Exception as err:  # noqa: BLE001 - network errors etc. are re-raised with advice
        if "404" in str(err) or "Entry Not Found" in str(err):
            return None
        raise CheckpointError(
            f"cannot fetch {filename} of {repo} from the Hugging Face hub ({type(err).__name__}: {err}). "
            "Offline? Download the repo once, or pass a local folder to load_backbone."
        ) from err


def _load_from_folder(folder: Path, name: str) -> Backbone:
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{folder}: no {CONFIG_FILE}; a backbone folder needs the config, weights and tokenizer"
        )
    config = json.loads(cfg_path.read_text())
    weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    if weights is None:
        candidates = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        weights = candidates[0] if candidates else None
    if weights is None:
        raise CheckpointError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)})")
    clip = build_clip(config, base_dir=folder)
    load_weights(clip, load_state_dict_file(weights), str(weights))
    context = int(config["model_cfg"]["text_cfg"]["context_length"])
    if _has_tokenizer_files(folder):
        tokenizer = load_hf_tokenizer(folder, context, local_files_only=True)
    else:
        tokenizer = load_hf_tokenizer(config["model_cfg"]["text_cfg"]["hf_tokenizer_name"], context)
    return Backbone(clip=clip, tokenizer_factory=lambda: tokenizer, config=config, name=name)


def _load_from_hub(repo: str) -> Backbone:
    """Resolve each file through huggingface_hub (cache first; HF_HUB_OFFLINE honoured), then load locally."""
    cfg = _hub_file(repo, CONFIG_FILE)
    if cfg is None:
        raise CheckpointError(f"{repo}: no {CONFIG_FILE} on the hub or in the HF cache")
    folder = cfg.parent
    weights = next((p for p in (_hub_file(repo, w) for w in WEIGHT_FILES) if p is not None), None)
    if weights is None:
        raise CheckpointError(f"{repo}: none of {WEIGHT_FILES} on the hub or in the HF cache")
    config = json.loads(cfg.read_text())
    clip = build_clip(config)
    load_weights(clip, load_state_dict_file(weights), f"{repo}/{weights.name}")
    context = int(config["model_cfg"]["text_cfg"]["context_length"])
    tok_repo = config["model_cfg"]["text_cfg"].get("hf_tokenizer_name") or repo
    tokenizer = load_hf_tokenizer(folder if _has_tokenizer_files(folder) else tok_repo, context)
    return Backbone(clip=clip, tokenizer_factory=lambda: tokenizer, config=config, name=f"hf-hub:{repo}")


def _arch_backbone(preset: str, seed: int) -> Backbone:
    config = json.loads((ASSETS / preset / CONFIG_FILE).read_text())
    clip = build_clip(config, seed=seed)
    context = int(config["model_cfg"]["text_cfg"]["context_length"])
    if preset == "tiny":
        vocab = clip.text.config.vocab_size
        return Backbone(
            clip=clip, tokenizer_factory=lambda: _tiny_tokenizer(context, vocab), config=config, name="tiny"
        )

    def factory() -> TextTokenizer:
        try:
            return load_hf_tokenizer(BIOMEDBERT_HUB_ID, context, local_files_only=True)
        except Exception:  # noqa: BLE001 - not in the HF cache: use the offline stand-in
            log.warning(
                "BiomedBERT tokenizer not in the HF cache; biomedclip-arch uses a stand-in WordPiece vocab"
            )
            return _standin_tokenizer(context)

    return Backbone(clip=clip, tokenizer_factory=factory, config=config, name="biomedclip-arch")


def load_backbone(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu", seed: int = 0
) -> Backbone:
    """Load a backbone.

    ``"biomedclip"`` (or ``"hf-hub:org/repo"``): weights through the HF hub/cache.
    A folder: ``open_clip_config.json`` + weights + tokenizer files, fully offline.
    ``"biomedclip-arch"`` / ``"tiny"``: architecture only, random weights seeded by ``seed``, no network.
    """
    name = parse_backbone_name(name_or_path)
    if name.kind == "folder":
        bb = _load_from_folder(Path(name.value), name=name.value)
    elif name.kind == "preset" and name.value == "biomedclip":
        bb = _load_from_hub(BIOMEDCLIP_HUB_ID)
        bb.name = "biomedclip"
    elif name.kind == "hub":
        bb = _load_from_hub(name.value)
    elif name.kind == "preset":
        bb = _arch_backbone("biomedclip" if name.value == "biomedclip-arch" else name.value, seed)
    else:  # timm: an image tower without a text tower
        raise ConfigError(
            f"timm:{name.value} is an image-only backbone (no text tower): it serves `medpeft finetune` "
            "(segmentation/detection); zero-shot commands need a CLIP-family backbone"
        )
    bb.clip.to(device)
    return bb
