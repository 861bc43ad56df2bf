"""Pushing adapters without a network: huggingface_hub's ``HfApi.create_repo``/``create_branch``/``upload_folder``
are replaced at that boundary by recorders that keep what would be sent (the files the real upload's
``allow_patterns`` select, with their bytes). The card's YAML is parsed by ``huggingface_hub.ModelCard``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.utils import filter_repo_objects

from medpeft.ace_lora.config import AceLoraConfig
from medpeft.ace_lora.model import AceLoraModel
from medpeft.backbones.clip import BIOMEDCLIP_HUB_ID
from medpeft.cli import main
from medpeft.errors import CheckpointError
from medpeft.model_card import MARKER

CFG = AceLoraConfig(rank=2, top_k=2, width=8)


class FakeHub:
    """Records the calls; ``sent`` maps each uploaded path (relative to the folder) to its bytes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.sent: dict[str, bytes] = {}

    def install(self, monkeypatch) -> FakeHub:
        hub = self

        def create_repo(self, repo_id, **kwargs):
            hub.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
            return f"https://huggingface.co/{repo_id}"

        def create_branch(self, repo_id, **kwargs):
            hub.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

        def upload_folder(self, **kwargs):
            hub.calls.append(("upload_folder", kwargs))
            folder = Path(kwargs["folder_path"])
            files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
            chosen = filter_repo_objects(
                files,
                allow_patterns=kwargs.get("allow_patterns"),
                ignore_patterns=kwargs.get("ignore_patterns"),
            )
            hub.sent = {f: (folder / f).read_bytes() for f in chosen}
            return type(
                "CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/1"}
            )()

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "create_branch", create_branch)
        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
        return self

    def card(self) -> ModelCard:
        return ModelCard(self.sent["README.md"].decode())


@pytest.fixture
def fake_hub(monkeypatch) -> FakeHub:
    return FakeHub().install(monkeypatch)


@pytest.fixture
def ace(tiny_backbone) -> AceLoraModel:
    model = AceLoraModel(copy.deepcopy(tiny_backbone), CFG)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def test_model_push_to_hub_sends_the_adapter_and_card(ace, fake_hub, tmp_path):
    ace.push_to_hub(
        "lab/ace",
        private=True,
        commit_message="first",
        backbone_name="biomedclip",
        datasets=["mimic-cxr"],
        tags=["chest-x-ray"],
    )
    assert [c[0] for c in fake_hub.calls] == ["create_repo", "upload_folder"]
    assert fake_hub.calls[0][1] == {
        "repo_id": "lab/ace",
        "private": True,
        "exist_ok": True,
        "repo_type": "model",
    }
    upload = fake_hub.calls[1][1]
    assert (
        upload["repo_id"] == "lab/ace" and upload["commit_message"] == "first" and upload["revision"] is None
    )
    assert sorted(fake_hub.sent) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    # the files sent are exactly what save_pretrained writes (same bytes), the card aside
    local = ace.save_pretrained(tmp_path / "local", backbone_name="biomedclip")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert fake_hub.sent[name] == (local / name).read_bytes()
    card = fake_hub.card()
    meta = card.data.to_dict()
    assert meta == {
        "library_name": "medpeft",
        "base_model": BIOMEDCLIP_HUB_ID,
        "license": "mit",
        "datasets": ["mimic-cxr"],
        "pipeline_tag": "zero-shot-image-classification",
        "tags": [
            "medpeft",
            "ace-lora",
            "lora",
            "biomedclip",
            "zero-shot-image-classification",
            "medical",
            "chest-x-ray",
        ],
    }
    text = card.text
    assert 'AceLoraModel.from_pretrained(backbone, "lab/ace")' in text
    assert "medpeft predict --backbone biomedclip --adapter lab/ace " in text
    assert "hf-hub:lab/ace@REVISION" in text
    # the configuration block is the adapter's own config (as adapter_config.json has it)
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    shown = json.loads(block)
    saved = json.loads(fake_hub.sent["adapter_config.json"])
    assert shown == {k: v for k, v in saved.items() if k not in ("method", "backbone")}
    assert shown["rank"] == 2 and shown["top_k"] == 2 and shown["width"] == 8


def test_save_pretrained_writes_the_same_card_every_time(ace, tmp_path):
    a = ace.save_pretrained(tmp_path / "a")
    b = ace.save_pretrained(tmp_path / "b")
    assert sorted(p.name for p in a.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert (a / "README.md").read_bytes() == (b / "README.md").read_bytes()
    card = ModelCard.load(a / "README.md")
    assert card.data.library_name == "medpeft" and card.data.base_model is None  # "tiny" is no Hub model
    assert MARKER in card.text and "ORG/NAME" in card.text  # no repo yet: a placeholder


@pytest.fixture(scope="module")
def rsna_prepared(tmp_path_factory):
    from medpeft.data.prepare import prepare
    from medpeft.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("rsna")
    synthesize("rsna", root / "raw", n=16, seed=0, image_size=64)
    prepare("rsna", root / "raw", root / "prepared", image_size=64, progress=False)
    return root / "prepared"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_cli_push_with_eval_results(
    ace, tiny_backbone, fake_hub, rsna_prepared, tmp_path, monkeypatch, capsys
):
    """``medpeft push``: the card gains the table ``medpeft eval`` wrote into the folder; the card is the only
    file written to the user's folder; predictions.csv and plots stay home."""
    import medpeft.backbones.clip

    monkeypatch.setattr(
        medpeft.backbones.clip, "load_backbone", lambda spec, *a, **k: copy.deepcopy(tiny_backbone)
    )
    folder = ace.save_pretrained(tmp_path / "adapter")
    (folder / "README.md").unlink()  # as if copied without its card
    argv = [
        "eval",
        "--backbone",
        "tiny",
        "--adapter",
        str(folder),
        "--dataset",
        "rsna",
        "--data",
        str(rsna_prepared),
    ]
    assert (
        main(
            [*argv, "--split", "train", "--out", str(folder / "eval" / "rsna"), "--bootstrap", "5", "--quiet"]
        )
        == 0
    )
    results = (folder / "eval" / "rsna" / "results.md").read_text()
    before = _snapshot(folder)
    capsys.readouterr()
    code = main(
        ["push", str(folder), "lab/ace-rsna", "--private", "--message", "with results", "--revision", "v1"]
        + ["--dataset", "mimic-cxr", "--license", "cc-by-4.0", "--tag", "x-ray"]
    )
    assert code == 0
    assert "pushed" in capsys.readouterr().out
    after = _snapshot(folder)
    assert sorted(set(after) - set(before)) == ["README.md"]
    assert {k: v for k, v in after.items() if k != "README.md"} == before
    assert [c[0] for c in fake_hub.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert fake_hub.calls[0][1]["private"] is True
    assert fake_hub.calls[1][1] == {"repo_id": "lab/ace-rsna", "branch": "v1", "exist_ok": True}
    assert (
        fake_hub.calls[2][1]["revision"] == "v1" and fake_hub.calls[2][1]["commit_message"] == "with results"
    )
    assert sorted(fake_hub.sent) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "eval/rsna/metrics.json",
        "eval/rsna/results.md",
    ]
    assert fake_hub.sent["README.md"] == after["README.md"]
    card = fake_hub.card()
    assert (
        card.data.license == "cc-by-4.0" and card.data.datasets == ["mimic-cxr"] and "x-ray" in card.data.tags
    )
    table = [ln for ln in results.splitlines() if ln.startswith("|")]
    assert (
        len(table) >= 3
        and "## Evaluation results" in card.text
        and "From `eval/rsna/results.md`:" in card.text
    )
    assert all(line in card.text for line in table)
    assert "--adapter lab/ace-rsna" in card.text


def test_cli_push_keeps_a_hand_written_card(ace, fake_hub, tmp_path):
    folder = ace.save_pretrained(tmp_path / "adapter")
    (folder / "README.md").write_text("# My own card\n")
    assert main(["push", str(folder), "lab/ace"]) == 0
    assert (folder / "README.md").read_text() == "# My own card\n"
    assert fake_hub.sent["README.md"] == b"# My own card\n"
    assert fake_hub.calls[0][1]["private"] is None  # an existing repo keeps its visibility


def test_cli_push_refuses_a_non_adapter_folder(fake_hub, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["push", str(tmp_path / "empty"), "lab/ace"]) == 1
    assert "not an adapter folder (no adapter_config.json or a3tune_config.json)" in capsys.readouterr().err
    assert fake_hub.calls == [] and not (tmp_path / "empty" / "README.md").exists()
    assert main(["push", str(tmp_path / "empty"), "not-a-repo"]) == 1


def test_a3tune_push_to_hub(fake_hub):
    from medpeft.a3tune import A3TuneConfig, A3TuneModel
    from medpeft.backbones.llava import load_llava

    model = A3TuneModel(
        load_llava("llava-tiny", seed=0), A3TuneConfig(q_experts=2, k_experts=2, k_top=1, moe_rank=2)
    )
    model.push_to_hub("lab/a3", commit_message="a3")
    assert sorted(fake_hub.sent) == [
        "README.md",
        "a3tune_config.json",
        "a3tune_moe.safetensors",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    card = fake_hub.card()
    assert card.data.library_name == "medpeft" and card.data.pipeline_tag == "image-text-to-text"
    assert card.data.base_model is None  # llava-tiny is a preset, not a Hub model
    assert "a3tune" in card.data.tags and 'A3TuneModel.from_pretrained(llava, "lab/a3")' in card.text
    shown = json.loads(card.text.split("```json\n", 1)[1].split("```", 1)[0])
    assert shown == json.loads(fake_hub.sent["a3tune_config.json"])["config"]


def test_read_adapter_info_errors(tmp_path):
    from medpeft.model_card import read_adapter_info

    (tmp_path / "adapter_config.json").write_text(json.dumps({"method": "lora", "peft_type": "LORA"}))
    with pytest.raises(CheckpointError, match="method 'lora' is not 'ace-lora'"):
        read_adapter_info(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="adapter_config.json: unreadable JSON"):
        read_adapter_info(tmp_path)
