"""``predict`` and heat maps: one image == a batch, inputs of every kind, bad inputs, overlay weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from zero_shot_helpers import deep_model, write_noise_png

from medpeft.errors import ConfigError, DataError
from medpeft.evaluation.heatmap import patch_weights, save_heatmaps
from medpeft.evaluation.predict import parse_labels, predict, write_predictions

LABELS = ["no finding", "pneumonia", "effusion"]


@pytest.fixture(scope="module")
def tiny_model(tiny_backbone):
    return deep_model(tiny_backbone)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    return [write_noise_png(root / f"scan_{i}.png", seed=i, mode="RGB" if i == 2 else "L") for i in range(5)]


def test_one_image_equals_batch(tiny_model, images):
    batch = predict(tiny_model, images, LABELS, batch_size=2)
    assert list(batch.columns) == ["image", "predicted", *LABELS]
    assert batch["image"].tolist() == [str(p) for p in images]
    np.testing.assert_allclose(batch[LABELS].sum(axis=1), 1.0, atol=1e-9)
    for i, path in enumerate(images):
        single = predict(tiny_model, path, ",".join(LABELS))
        np.testing.assert_allclose(single[LABELS].to_numpy()[0], batch[LABELS].to_numpy()[i], atol=1e-6)
    as_pil = predict(tiny_model, [Image.open(images[0])], LABELS)
    assert as_pil["image"].tolist() == ["<image 0>"]
    np.testing.assert_allclose(as_pil[LABELS].to_numpy()[0], batch[LABELS].to_numpy()[0], atol=1e-6)
    assert batch.attrs["prompts"]["pneumonia"] == ["this is a photo of pneumonia"]


def test_templates_change_the_prompts(tiny_model, images, tmp_path):
    file = tmp_path / "templates.txt"
    file.write_text("# mine\na chest X-ray showing {}.\n{} is visible.\n")
    frame = predict(tiny_model, images[:1], LABELS, templates=file)
    assert frame.attrs["prompts"]["effusion"] == ["a chest X-ray showing effusion.", "effusion is visible."]
    named = predict(tiny_model, images[:1], LABELS, templates="chest-xray")
    assert named.attrs["prompts"]["effusion"][0] == "a chest X-ray showing effusion."


def test_label_errors():
    with pytest.raises(ConfigError, match="at least two labels"):
        parse_labels("pneumonia")
    with pytest.raises(ConfigError, match="at least two labels"):
        parse_labels("pneumonia, ,")
    with pytest.raises(ConfigError, match="repeated: \\['a'\\]"):
        parse_labels(["a", "b", "a"])
    with pytest.raises(ConfigError, match="reserved"):
        parse_labels(["image", "b"])


def test_bad_image_named_or_skipped(tiny_model, images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(DataError, match="broken.png"):
        predict(tiny_model, [images[0], broken], LABELS)
    frame = predict(tiny_model, [images[0], broken, images[1]], LABELS, on_bad_image="skip")
    assert frame["image"].tolist() == [str(images[0]), str(images[1])]
    assert [s["image"] for s in frame.attrs["skipped"]] == [str(broken)]
    with pytest.raises(ConfigError, match=r"\.csv or \.json"):
        write_predictions(frame, tmp_path / "out.txt")
    write_predictions(frame, tmp_path / "out.json")
    assert (tmp_path / "out.json").read_text().count('"predicted"') == 2


def test_patch_weights(tiny_model, tiny_backbone):
    import medpeft
    from medpeft.ace_lora.hypergraph import incidence_matrix

    pixels = torch.randn(
        2, 3, tiny_backbone.image_size, tiny_backbone.image_size, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        maps = patch_weights(tiny_model, pixels)
        out = tiny_model.image_features(pixels)
        a = incidence_matrix(out.tokens, out.affinity, tiny_model.config.top_k)
    assert maps.shape == (2, 8, 8)  # tiny: 64 px / 8 px patches
    np.testing.assert_allclose(maps.reshape(2, -1).numpy(), a[:, 0, 1:].numpy(), atol=1e-7)
    assert ((maps > 0).reshape(2, -1).sum(1) <= tiny_model.config.top_k).all()
    base = medpeft.AceLoraModel(
        deep_model(tiny_backbone).backbone, medpeft.AceLoraConfig(lora_encoders=(), hgnn=())
    )
    with torch.no_grad():
        attention = patch_weights(base, pixels)
    np.testing.assert_allclose(attention.reshape(2, -1).sum(1).numpy(), 1.0, atol=1e-6)
    assert (attention > 0).all()


def test_save_heatmaps(tiny_model, images, tmp_path):
    result = save_heatmaps(
        tiny_model, images[:3] + [images[0]], tmp_path / "maps", titles=["a", "b", "c", "d"], batch_size=2
    )
    names = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert names == ["scan_0.png", "scan_0_3.png", "scan_1.png", "scan_2.png"]
    assert len(result["files"]) == 4
    with Image.open(tmp_path / "maps" / "scan_1.png") as im:
        assert im.size[0] > 100


def test_save_heatmaps_bad_image_named_or_skipped(tiny_model, images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(DataError, match="broken.png"):
        save_heatmaps(tiny_model, [images[0], broken], tmp_path / "strict")
    assert not (tmp_path / "strict" / "broken.png").exists()
    result = save_heatmaps(tiny_model, [images[0], broken, images[1]], tmp_path / "maps", on_bad_image="skip")
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["scan_0.png", "scan_1.png"]
    assert [s["image"] for s in result["skipped"]] == [str(broken)]
    assert result["skipped"][0]["reason"]


def test_model_predict_equals_manual_scoring(tiny_model, tiny_backbone, images):
    """``medpeft.predict`` = preprocess, encode_image, encode_prompts and a softmax, by hand."""
    table = predict(tiny_model, images[:3], LABELS)
    tok, pre = tiny_backbone.tokenizer, tiny_backbone.preprocess
    with torch.no_grad():
        pixels = torch.stack([pre(Image.open(p).convert("RGB")) for p in images[:3]])
        img = tiny_model.encode_image(pixels)
        ids = torch.stack([tok([f"this is a photo of {label}"]) for label in LABELS])  # [C, 1, L]
        cls = tiny_model.encode_prompts(ids)
        probs = (tiny_model.logit_scale * img @ cls.T).softmax(dim=-1).numpy()
    np.testing.assert_allclose(table[LABELS].to_numpy(), probs, atol=1e-5)
    assert table["predicted"].tolist() == [LABELS[j] for j in probs.argmax(axis=1)]
