"""The training loop on synthetic MIMIC-CXR and the tiny backbone: it learns, validates, keeps the best
adapter, refuses used folders and guards against non-finite losses and unreadable images."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import medpeft
from medpeft.cli import main
from medpeft.errors import ConfigError, DataError, OutputExistsError
from medpeft.runtime import seed_everything
from medpeft.training.data import Collate, ManifestDataset, read_training_manifest
from medpeft.training.guards import NonFiniteLossError
from medpeft.training.loop import enable_gradient_checkpointing, train
from medpeft.training.run_config import load_run_config


def tiny_config(**train_overrides):
    overrides = {f"train.{k}": v for k, v in train_overrides.items()}
    overrides.setdefault("train.tensorboard", False)
    return load_run_config("tiny", overrides)


def eval_loss(model, backbone, manifest_path) -> float:
    """Contrastive loss of the whole training set as one batch, without augmentation or dropout."""
    manifest = read_training_manifest(manifest_path)
    ds = ManifestDataset(manifest, backbone.preprocess)
    batch = Collate(backbone.tokenizer, model.config.text_padding, backbone.context_length)(
        [ds[(i, 0)] for i in range(len(ds))]
    )
    model.eval()
    with torch.no_grad():
        return float(model(batch["pixel_values"], batch["input_ids"], batch["labels"]))


def test_training_lowers_the_loss(eight, pristine_tiny, tmp_path):
    rc = tiny_config(epochs=20, lr=3e-3, checkpoint_every=0)
    seed_everything(rc.train.seed)
    initial = medpeft.AceLoraModel(copy.deepcopy(pristine_tiny), rc.model)
    before = eval_loss(initial, pristine_tiny, eight / "train.csv")
    final = train(copy.deepcopy(pristine_tiny), eight, tmp_path / "run", rc.train, rc.model)
    trained = medpeft.AceLoraModel.from_pretrained(copy.deepcopy(pristine_tiny), final)
    after = eval_loss(trained, pristine_tiny, eight / "train.csv")
    assert after < before - 0.2, (before, after)

    out = tmp_path / "run"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 41))  # 2 steps per epoch, log_every 1
    assert records[0]["lr"] == pytest.approx(3e-3) and records[-1]["lr"] < 1e-5  # warm-up, then cosine
    assert (out / "metrics.csv").read_text().startswith("step,")
    for folder in (out, final):
        assert json.loads((folder / "versions.json").read_text())["torch"] == torch.__version__
        assert (folder / "resolved_config.yaml").is_file()
    again = load_run_config(final / "resolved_config.yaml")  # a resolved config is a valid --config
    assert again.train.lr == 3e-3 and again.model == rc.model
    # the end of a run is always checkpointed
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000040.pt"]


def test_validation_keeps_the_best_adapter(eight, tiny, tmp_path):
    cfg = tiny_config(max_steps=2, lr=1e-2, val_every=1, val_data=str(eight / "train.csv")).train
    train(tiny, eight, tmp_path / "run", cfg)
    out = tmp_path / "run"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in records if "val/auroc" in r]
    assert [r["step"] for r in vals] == [1, 2]
    best = json.loads((out / "best" / "best.json").read_text())
    summary = json.loads((out / "train_summary.json").read_text())
    assert best["metric"] == "auroc" and best["value"] == max(v["val/auroc"] for v in vals)
    assert summary["best_value"] == best["value"] and summary["best_step"] == best["step"]
    assert (out / "best" / "adapter_model.safetensors").is_file() and (
        out / "best" / "versions.json"
    ).is_file()


def test_a_used_output_folder_is_never_overwritten(eight, tmp_path, capsys):
    out = tmp_path / "used"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(OutputExistsError, match="is not empty.*--resume"):
        train("tiny", eight, out, tiny_config().train)
    assert main(["train", "--config", "tiny", "--data", str(eight), "--out", str(out)]) == 1
    assert "is not empty" in capsys.readouterr().err


def nan_at_call(n: int):
    """A replacement for AceLoraModel.forward whose n-th call (1-based) returns NaN."""
    real, calls = medpeft.AceLoraModel.forward, [0]

    def forward(model, *args, **kwargs):
        calls[0] += 1
        loss = real(model, *args, **kwargs)
        return loss * float("nan") if calls[0] == n else loss

    return forward


def test_nonfinite_loss_stops_naming_the_step(eight, tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(medpeft.AceLoraModel, "forward", nan_at_call(2))
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss \(nan\) at optimizer step 2 \(epoch 0, batch 2"
    ):
        train(tiny, eight, tmp_path / "run", tiny_config(epochs=2).train)


def test_nonfinite_loss_skip_counts_the_step(eight, tiny, pristine_tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(medpeft.AceLoraModel, "forward", nan_at_call(2))
    final = train(tiny, eight, tmp_path / "run", tiny_config(epochs=2, on_nonfinite="skip").train)
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["skipped_nonfinite_steps"] == 1 and summary["steps"] == 4
    assert (final / "adapter_model.safetensors").is_file()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[1]["loss"] is None and records[1]["skipped_steps"] == 1
    loaded = medpeft.AceLoraModel.from_pretrained(copy.deepcopy(pristine_tiny), final)
    assert all(torch.isfinite(t).all() for t in loaded.adapter_state_dict().values())


@pytest.fixture
def corrupt(eight):
    path = read_training_manifest(eight / "train.csv").images[5]
    with open(path, "wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0 truncated")
    return path


def test_an_unreadable_image_fails_the_run_naming_it(eight, corrupt, tiny, tmp_path):
    with pytest.raises(DataError, match=f"unreadable training image {corrupt}"):
        train(tiny, eight, tmp_path / "run", tiny_config(epochs=1).train)


def test_unreadable_images_can_be_skipped_and_counted(eight, corrupt, tiny, tmp_path):
    train(tiny, eight, tmp_path / "run", tiny_config(epochs=1, on_bad_image="skip").train)
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["skipped_images"] == 1 and summary["steps"] == 2


def test_resume_with_other_settings_is_refused(eight, pristine_tiny, tmp_path):
    rc = tiny_config(max_steps=2)
    train(copy.deepcopy(pristine_tiny), eight, tmp_path / "run", rc.train, rc.model)
    (tmp_path / "run" / "final").rename(tmp_path / "run" / "final-moved")  # as if killed before the end
    with pytest.raises(ConfigError, match=r"cannot resume.*train\.lr: checkpoint 0\.001, now 0\.01"):
        train(
            copy.deepcopy(pristine_tiny),
            eight,
            tmp_path / "run",
            rc.train.replace(lr=1e-2),
            rc.model,
            resume=True,
        )


def test_gradient_checkpointing_gives_the_same_gradients(eight, pristine_tiny):
    manifest = read_training_manifest(eight / "train.csv")
    ds = ManifestDataset(manifest, pristine_tiny.preprocess)
    batch = Collate(pristine_tiny.tokenizer, "max_length", 64)([ds[(i, 0)] for i in range(4)])
    grads = []
    for checkpointing in (False, True):
        seed_everything(0)
        model = medpeft.AceLoraModel(copy.deepcopy(pristine_tiny), medpeft.AceLoraConfig(width=32))
        with torch.no_grad():  # non-zero LoRA B, so LoRA gradients flow into the towers
            for name, p in model.trainable_parameters().items():
                if ".lora_B." in name:
                    p.normal_(0, 0.02)
        if checkpointing:
            enable_gradient_checkpointing(model.clip)
        model.train()
        seed_everything(1)
        model(batch["pixel_values"], batch["input_ids"], batch["labels"]).backward()
        grads.append({n: p.grad.clone() for n, p in model.trainable_parameters().items()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


def test_worker_processes_and_accumulation_keep_the_numbers(eight, pristine_tiny, tmp_path):
    """Each sample's augmentation is seeded by (seed, epoch, index): DataLoader workers change nothing."""
    rc = tiny_config(max_steps=2)
    finals = [
        train(
            copy.deepcopy(pristine_tiny),
            eight,
            tmp_path / f"w{workers}",
            rc.train.replace(workers=workers),
            rc.model,
        )
        for workers in (0, 2)
    ]
    a, b = (
        medpeft.AceLoraModel.from_pretrained(copy.deepcopy(pristine_tiny), f).adapter_state_dict()
        for f in finals
    )
    assert set(a) == set(b) and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
    accumulated = train(
        copy.deepcopy(pristine_tiny), eight, tmp_path / "accum", rc.train.replace(grad_accum=2), rc.model
    )
    summary = json.loads((tmp_path / "accum" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and (accumulated / "adapter_model.safetensors").is_file()


def test_bf16_autocast_runs_on_the_cpu(eight, tiny, tmp_path):
    final = train(tiny, eight, tmp_path / "run", tiny_config(max_steps=1, precision="bf16").train)
    assert (final / "adapter_model.safetensors").is_file()
    with pytest.raises(ConfigError, match="fp16' needs a GPU"):
        train("tiny", eight, tmp_path / "fp16", tiny_config(precision="fp16").train)


def test_validation_problems(eight, mimic, tiny, tmp_path):
    """A broken validation set fails before training; a metric that cannot be computed (one image: no
    AUROC) is logged at that step and training goes on."""
    with pytest.raises(DataError, match="no dataset.json"):
        train("tiny", eight, tmp_path / "bad", tiny_config(val_data=str(tmp_path)).train)
    assert not (tmp_path / "bad").exists()
    train(tiny, eight, tmp_path / "run", tiny_config(max_steps=1, val_data=str(mimic)).train)  # validate.csv
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "AUROC needs" in records[-1]["val/error"]
    assert not (tmp_path / "run" / "best").exists()
