"""Run configurations: the paper preset, YAML loading, overrides from flags and ``--set``."""

from __future__ import annotations

from pathlib import Path

import pytest

from medpeft.cli import build_parser
from medpeft.commands.train import build_overrides
from medpeft.errors import ConfigError
from medpeft.training.config import TrainConfig
from medpeft.training.run_config import load_run_config, parse_assignments, preset_path

REPO = Path(__file__).resolve().parents[2]


def test_paper_preset_holds_the_published_settings():
    rc = load_run_config("paper")
    m, t = rc.model, rc.train
    assert rc.backbone == "biomedclip"
    assert (m.rank, m.alpha, m.dropout, m.targets, m.layers) == (4, 1.0, 0.1, ("q", "k", "v"), "all")
    assert m.lora_encoders == ("image", "text") and m.hgnn == ("image", "text")
    assert (m.top_k, m.width, m.label_guided, m.learn_logit_scale) == (5, 128, True, True)
    assert m.text_padding == "max_length" and not m.mask_padding
    assert (t.lr, t.weight_decay, t.batch_size, t.epochs, t.warmup_epochs, t.schedule) == (
        1e-3,
        1e-2,
        64,
        40,
        1.0,
        "cosine",
    )
    assert (t.context_length, t.seed) == (256, 0)


@pytest.mark.parametrize("name", ["paper", "fast", "tiny"])
def test_presets_live_only_in_the_package(name):
    """One copy of each preset: package data, read by ``--config NAME`` (no tracked copy at the root)."""
    assert preset_path(name).is_file()
    assert not (REPO / "configs").exists()


def test_fast_preset_is_the_fast_text_path():
    m = load_run_config("fast").model
    assert m.text_padding == "longest" and m.mask_padding


def test_overrides_dotted_bare_and_yaml_numbers(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("backbone: tiny\ntrain:\n  lr: 1e-4\n  epochs: 3\nmodel:\n  rank: 8\n")
    rc = load_run_config(cfg, {"train.epochs": 5, "hgnn": ["image"], "weight_decay": "0"})
    assert rc.train.lr == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string
    assert rc.train.epochs == 5 and rc.train.weight_decay == 0.0
    assert rc.model.rank == 8 and rc.model.hgnn == ("image",)


def test_bad_configs_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'"):
        load_run_config(None, {"learning_rate": 1})
    with pytest.raises(ConfigError, match="no such file"):
        load_run_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trian:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="unknown top-level keys \\['trian'\\]"):
        load_run_config(bad)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_assignments(["lr"])
    with pytest.raises(ConfigError, match="precision must be one of"):
        TrainConfig(precision="fp8")
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=0)


def test_cli_flags_override_the_yaml():
    args = build_parser().parse_args(
        [
            "train",
            "--config",
            "paper",
            "--data",
            "d",
            "--out",
            "o",
            "--lr",
            "0.01",
            "--gather",
            "--text-padding",
            "longest",
            "--set",
            "train.epochs=2",
            "--set",
            "model.rank=2",
            "--max-steps",
            "3",
        ]
    )
    rc = load_run_config(args.config, build_overrides(args))
    assert rc.train.lr == 0.01 and rc.train.gather and rc.train.epochs == 2 and rc.train.max_steps == 3
    assert rc.model.rank == 2 and rc.model.text_padding == "longest" and rc.model.mask_padding
    assert rc.data == "d"


def test_train_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--config",
        "--resume",
        "--val-data",
        "--gather",
        "--text-padding",
        "--set",
        "--precision",
    ):
        assert flag in out


def test_unknown_option_names_in_a_config_are_refused():
    from medpeft.ace_lora.config import AceLoraConfig

    with pytest.raises(
        ConfigError, match=r"unknown training options \['epoch', 'lr_max'\]; known: .*'epochs'"
    ):
        TrainConfig.from_dict({"epoch": 3, "lr_max": 1e-3, "seed": 1})
    with pytest.raises(ConfigError, match=r"unknown AceLoraConfig fields \['ranks'\]; known: .*'rank'"):
        AceLoraConfig.from_dict({"ranks": 8})
    assert TrainConfig.from_dict({"seed": 1}).seed == 1
    assert AceLoraConfig.from_dict({"rank": 8}).rank == 8
