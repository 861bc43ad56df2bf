"""LLaVA base models for A³Tune: Hugging Face ``LlavaForConditionalGeneration`` from a hub id (offline cache
only), a local folder (HF Llava layout, or the original LLaVA / LLaVA-Med-1.5 layout converted on load), or a
preset built from a config with random weights (``llava-tiny``, ``llava-tiny-mistral``, ``llava-med-arch``).

Nothing here downloads: hub ids are looked up in the local Hugging Face cache only, so a missing model is a
``CheckpointError`` that names every place that was tried.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medpeft.errors import CheckpointError, ConfigError

#: The presets :func:`load_llava` builds from a config, with random weights.
PRESETS = ("llava-tiny", "llava-tiny-mistral", "llava-med-arch")

#: Words of the tiny tokenizer (besides the special tokens): enough for the synthetic prompts of the tests.
_TINY_WORDS = (
    "user assistant question answer what is the where which are there a an of in on at to and or yes no "
    "left right upper lower top bottom middle center image shows lung lungs chest heart liver kidney brain "
    "abnormal normal organ bright dark square region lesion mass present absent x-ray ct mri modality "
    "does this contain one two three four how many color size large small report findings impression"
).split()
_TINY_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>", "<image>")
_TINY_PUNCT = tuple(".,:;?!")

#: Vision towers named in original-LLaVA configs whose architecture is known without any download.
_KNOWN_VISION_TOWERS: dict[str, dict[str, Any]] = {
    "openai/clip-vit-large-patch14-336": dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
    ),
    "openai/clip-vit-large-patch14": dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
    ),
}


@dataclass
class LlavaBase:
    """A loaded LLaVA model and what A³Tune needs to feed it.

    ``model``: the ``LlavaForConditionalGeneration``; ``tokenizer``/``image_processor``: None when the source
    has none; ``name``: what was loaded (preset, hub id or folder); ``image_token_id``: the placeholder id that
    the model replaces by image features (one per image token); ``grid``: image tokens per side (image tokens =
    grid², the grid weak masks must be given on); ``image_aspect_ratio``: ``"pad"`` when the original model
    padded images to a square before the processor (LLaVA-Med-1.5), else ``"crop"``.
    """

    model: Any
    tokenizer: Any
    image_processor: Any
    name: str
    image_token_id: int
    grid: int
    image_aspect_ratio: str = "crop"

    @property
    def image_seq_length(self) -> int:
        return self.grid * self.grid


# ----------------------------------------------------------------------------------------------------- tokenizer


def tiny_tokenizer() -> Any:
    """A word-level ``PreTrainedTokenizerFast`` built in memory (no files, no network) with ``<image>``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate((*_TINY_SPECIALS, *_TINY_PUNCT, *_TINY_WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split("<image>", "isolated"),
            pre_tokenizers.Punctuation("isolated"),
        ]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    fast.image_token = "<image>"
    return fast


# --------------------------------------------------------------------------------------------------- configs


def _clip_processor(image_size: int, pad: bool) -> Any:
    from transformers import LlavaImageProcessor

    return LlavaImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}, do_pad=pad
    )


def preset_config(name: str) -> Any:
    """The ``LlavaConfig`` of a preset (cheap: no weights are built)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, MistralConfig

    if name in ("llava-tiny", "llava-tiny-mistral"):
        vocab = len(_TINY_SPECIALS) + len(_TINY_PUNCT) + len(_TINY_WORDS)
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=56,
            patch_size=14,
            projection_dim=32,
        )  # 56/14 = 4 -> 4x4 = 16 image tokens
        common = dict(
            vocab_size=vocab,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=256,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        )
        text = (
            LlamaConfig(num_key_value_heads=4, **common)
            if name == "llava-tiny"
            else MistralConfig(num_key_value_heads=2, sliding_window=None, **common)
        )
        image_token_id = _TINY_SPECIALS.index("<image>")
        return LlavaConfig(
            vision_config=vision, text_config=text, image_token_id=image_token_id, image_seq_length=16
        )
    if name == "llava-med-arch":
        # LLaVA-Med-1.5: Mistral-7B-Instruct-v0.2 text model, CLIP ViT-L/14-336 tower (-2 layer, patch tokens),
        # mlp2x_gelu projector; vocabulary 32000 + <image> + <pad>, padded to 32064 as llava-hf does.
        vision = CLIPVisionConfig(**_KNOWN_VISION_TOWERS["openai/clip-vit-large-patch14-336"])
        text = MistralConfig(
            vocab_size=32064,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=32768,
            rope_theta=1e6,
            sliding_window=None,
            rms_norm_eps=1e-5,
            pad_token_id=32001,
            bos_token_id=1,
            eos_token_id=2,
        )
        return LlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_id=32000,
            image_seq_length=576,
            projector_hidden_act="gelu",
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
        )
    raise ConfigError(f"unknown LLaVA preset {name!r}; presets: {', '.join(PRESETS)}")


def build_from_config(
    config: Any, *, dtype: torch.dtype | None, device: torch.device | str | None, seed: int, attn: str
) -> Any:
    """Random weights for ``config`` built directly on ``device`` in ``dtype`` (a 7B model on a GPU in bf16 never
    exists in fp32 on the CPU)."""
    from transformers import LlavaForConditionalGeneration

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    with torch.device(device or "cpu"):
        model = LlavaForConditionalGeneration._from_config(
            config, dtype=dtype or torch.float32, attn_implementation=attn
        )
    return model.eval()


# ------------------------------------------------------------------------------------------ original LLaVA layout


def is_original_llava_config(cfg: dict[str, Any]) -> bool:
    """The original LLaVA repository's config (``LlavaLlamaForCausalLM``/``LlavaMistralForCausalLM``)."""
    archs = cfg.get("architectures") or []
    return "mm_vision_tower" in cfg or any(a.startswith("Llava") and a.endswith("ForCausalLM") for a in archs)


def _vision_config_for(tower: str, folder: Path) -> tuple[Any, Path | None]:
    """The CLIP vision config named by ``mm_vision_tower``: known ids, else a local folder or the offline cache."""
    from transformers import CLIPVisionConfig

    if tower in _KNOWN_VISION_TOWERS:
        return CLIPVisionConfig(**_KNOWN_VISION_TOWERS[tower]), None
    tried = []
    for cand in (Path(tower), folder / tower):
        tried.append(str(cand))
        if (cand / "config.json").is_file():
            return CLIPVisionConfig.from_pretrained(str(cand)), cand
    try:
        cached = _cached_snapshot(tower)
    except CheckpointError as err:
        tried.append(str(err))
        cached = None
    if cached is not None and (cached / "config.json").is_file():
        return CLIPVisionConfig.from_pretrained(str(cached)), cached
    raise CheckpointError(f"vision tower {tower!r} (mm_vision_tower) not found; tried: {'; '.join(tried)}")


def convert_original_config(cfg: dict[str, Any], folder: Path, vocab_size: int, image_token_id: int) -> Any:
    """An HF ``LlavaConfig`` from an original-LLaVA ``config.json`` (LLaMA or Mistral text model)."""
    from transformers import LlamaConfig, LlavaConfig, MistralConfig

    proj = cfg.get("mm_projector_type", "linear")
    if proj != "mlp2x_gelu":
        raise CheckpointError(
            f"{folder}: mm_projector_type {proj!r} is not supported (HF Llava has the mlp2x_gelu projector only)"
        )
    if cfg.get("mm_vision_select_feature", "patch") != "patch":
        raise CheckpointError(
            f"{folder}: mm_vision_select_feature {cfg['mm_vision_select_feature']!r} unsupported"
        )
    vision, _ = _vision_config_for(str(cfg["mm_vision_tower"]), folder)
    if int(cfg.get("mm_hidden_size", vision.hidden_size)) != vision.hidden_size:
        raise CheckpointError(
            f"{folder}: mm_hidden_size {cfg['mm_hidden_size']} != vision tower hidden size {vision.hidden_size}"
        )
    keys = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
        "rms_norm_eps",
        "rope_theta",
        "hidden_act",
        "bos_token_id",
        "eos_token_id",
    )
    text_kwargs = {k: cfg[k] for k in keys if k in cfg}
    archs = " ".join(cfg.get("architectures") or []) + " " + str(cfg.get("model_type", ""))
    if "mistral" in archs.lower():
        text = MistralConfig(vocab_size=vocab_size, sliding_window=cfg.get("sliding_window"), **text_kwargs)
    else:
        text = LlamaConfig(vocab_size=vocab_size, **text_kwargs)
    grid = vision.image_size // vision.patch_size
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        image_seq_length=grid * grid,
        projector_hidden_act="gelu",
        vision_feature_layer=int(cfg.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy="default",
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    )


_KEY_RULES = (
    (re.compile(r"^model\.mm_projector\.0\."), "model.multi_modal_projector.linear_1."),
    (re.compile(r"^model\.mm_projector\.2\."), "model.multi_modal_projector.linear_2."),
    (re.compile(r"^model\.vision_tower\.vision_tower\.vision_model\."), "model.vision_tower."),
    (re.compile(r"^model\.(embed_tokens|layers|norm)\."), r"model.language_model.\1."),
    (re.compile(r"^lm_head\."), "lm_head."),
)


def convert_original_key(key: str) -> str | None:
    """HF Llava name of an original-LLaVA weight; None for buffers HF recomputes (position ids, rotary)."""
    if key.endswith("position_ids") or key.endswith("rotary_emb.inv_freq"):
        return None
    for pattern, repl in _KEY_RULES:
        if pattern.match(key):
            return pattern.sub(repl, key, count=1)
    raise CheckpointError(f"original LLaVA weight {key!r} has no counterpart in HF Llava")


def _read_shards(folder: Path) -> dict[str, torch.Tensor]:
    from medpeft.io import safetensors_load

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder}: no *.safetensors weight files (pickled .bin files are not loaded)")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(safetensors_load(f, "LLaVA weight shard"))
    return state


def _pad_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """Extend an embedding/lm-head matrix to ``rows`` rows, new rows = the mean row (deterministic)."""
    if weight.shape[0] >= rows:
        return weight
    extra = weight.float().mean(0, keepdim=True).expand(rows - weight.shape[0], -1).to(weight.dtype)
    return torch.cat([weight, extra], 0)


def load_original_llava(
    folder: Path, cfg: dict[str, Any], *, dtype: torch.dtype | None, device: Any, attn: str
) -> LlavaBase:
    """Convert an original-layout LLaVA / LLaVA-Med-1.5 checkpoint (config and keys) into HF Llava on load.

    The ``<image>`` placeholder is a new token after the original vocabulary (the original code splices image
    features at id -200 instead); its embedding row, and a ``<pad>`` row, are the mean row. The vocabulary is
    padded to a multiple of 64 like llava-hf's conversions.
    """
    from transformers import LlavaForConditionalGeneration

    tokenizer = _maybe_tokenizer(folder)
    orig_vocab = int(cfg["vocab_size"])
    if tokenizer is not None:
        if "<image>" not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
        if tokenizer.pad_token is None:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
        tokenizer.image_token = "<image>"
        image_token_id = int(tokenizer.convert_tokens_to_ids("<image>"))
        needed = max(len(tokenizer), orig_vocab)
    else:
        image_token_id = orig_vocab
        needed = orig_vocab + 2
    vocab = int(math.ceil(needed / 64) * 64)
    config = convert_original_config(cfg, folder, vocab, image_token_id)
    state = {}
    for key, value in _read_shards(folder).items():
        new = convert_original_key(key)
        if new is not None:
            state[new] = value
    for key in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        if key in state:
            state[key] = _pad_rows(state[key], vocab)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration._from_config(config, attn_implementation=attn)
    expected = set(model.state_dict())
    if config.tie_word_embeddings:
        expected.discard("lm_head.weight")
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{folder}: converted LLaVA weights do not match HF Llava: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
        )
    for key, value in state.items():
        want = model.state_dict()[key].shape
        if tuple(value.shape) != tuple(want):
            raise CheckpointError(
                f"{folder}: weight {key} has shape {tuple(value.shape)}, expected {tuple(want)}"
            )
    target = dtype or state["model.language_model.embed_tokens.weight"].dtype
    state = {
        k: v.to(device=device or "cpu", dtype=target if v.is_floating_point() else v.dtype)
        for k, v in state.items()
    }
    model.load_state_dict(state, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    _materialise_buffers(model, device or "cpu")
    grid = config.vision_config.image_size // config.vision_config.patch_size
    pad = cfg.get("image_aspect_ratio", "square") == "pad"
    return LlavaBase(
        model=model.eval(),
        tokenizer=tokenizer,
        image_processor=_clip_processor(config.vision_config.image_size, pad),
        name=str(folder),
        image_token_id=image_token_id,
        grid=grid,
        image_aspect_ratio="pad" if pad else "crop",
    )


def _materialise_buffers(model: Any, device: Any) -> None:
    """Non-persistent buffers left on ``meta`` (rotary frequencies, CLIP position ids): rebuilt from the config,
    the rotary modules by constructing them again."""
    for name, module in list(model.named_modules()):
        metas = [b for b, buf in module._buffers.items() if buf is not None and buf.is_meta]
        if not metas:
            continue
        if type(module).__name__.endswith("RotaryEmbedding"):
            fresh = type(module)(config=module.config).to(device)
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, fresh)
            continue
        for buf_name in metas:
            if buf_name != "position_ids":
                raise CheckpointError(
                    f"buffer {buf_name} of {type(module).__name__} could not be materialised"
                )
            shape = module._buffers[buf_name].shape
            module._buffers[buf_name] = torch.arange(shape[-1], device=device).expand(shape).contiguous()


# -------------------------------------------------------------------------------------------------- loaders


def _maybe_tokenizer(folder: Path) -> Any:
    names = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
    if not any((folder / n).is_file() for n in names):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # noqa: BLE001 - tokenizer libraries raise many types
        raise CheckpointError(f"{folder}: tokenizer files present but unreadable ({err})") from err


def _cached_snapshot(repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` in the local HF cache, never downloading (``HF_HUB_OFFLINE``)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises several error types offline
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        raise CheckpointError(
            f"{repo_id!r} is not in the local Hugging Face cache ({cache}; offline lookup, nothing is "
            f"downloaded): {type(err).__name__}"
        ) from err


def _load_hf_folder(folder: Path, *, name: str, dtype: Any, device: Any, attn: str) -> LlavaBase:
    from transformers import AutoImageProcessor, LlavaForConditionalGeneration

    try:
        model = LlavaForConditionalGeneration.from_pretrained(
            str(folder),
            dtype=dtype or "auto",
            attn_implementation=attn,
            local_files_only=True,
            device_map=str(device) if device is not None else None,
        )
    except Exception as err:  # noqa: BLE001 - re-raised with the folder named
        raise CheckpointError(
            f"{folder}: not a loadable HF Llava checkpoint ({type(err).__name__}: {err})"
        ) from err
    image_processor = None
    if (folder / "preprocessor_config.json").is_file():
        image_processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    vc = model.config.vision_config
    return LlavaBase(
        model=model.eval(),
        tokenizer=_maybe_tokenizer(folder),
        image_processor=image_processor,
        name=name,
        image_token_id=int(model.config.image_token_id),
        grid=vc.image_size // vc.patch_size,
    )


def load_llava(
    name: str,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    attn_implementation: str = "sdpa",
) -> LlavaBase:
    """Load a LLaVA model: a preset (random weights from ``seed``), a local folder, or a hub id from the offline
    HF cache. Folders in the original LLaVA layout (LLaVA-Med-1.5) are converted on load."""
    from medpeft.io import read_json

    if name in PRESETS:
        config = preset_config(name)
        model = build_from_config(config, dtype=dtype, device=device, seed=seed, attn=attn_implementation)
        tokenizer = tiny_tokenizer() if name != "llava-med-arch" else None
        vc = config.vision_config
        return LlavaBase(
            model=model,
            tokenizer=tokenizer,
            image_processor=_clip_processor(vc.image_size, pad=False),
            name=name,
            image_token_id=int(config.image_token_id),
            grid=vc.image_size // vc.patch_size,
        )
    tried = []
    folder = Path(name).expanduser()
    if folder.is_dir():
        source = folder
    else:
        tried.append(f"local folder {folder} (not found)")
        if name.count("/") != 1 or name.startswith((".", "/", "~")):
            raise CheckpointError(
                f"LLaVA model {name!r} not found: not a preset ({', '.join(PRESETS)}); tried {'; '.join(tried)}"
            )
        try:
            source = _cached_snapshot(name)
        except CheckpointError as err:
            tried.append(f"HF cache: {err}")
            raise CheckpointError(
                f"LLaVA model {name!r} not found: not a preset ({', '.join(PRESETS)}); tried {'; '.join(tried)}"
            ) from err
    cfg = read_json(source / "config.json", "LLaVA config")
    if is_original_llava_config(cfg):
        base = load_original_llava(source, cfg, dtype=dtype, device=device, attn=attn_implementation)
        base.name = name
        return base
    return _load_hf_folder(source, name=name, dtype=dtype, device=device, attn=attn_implementation)
