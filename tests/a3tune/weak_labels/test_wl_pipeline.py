"""The pipeline and its storage: round trip, resume, refusal of other settings, bad input, kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from wl_helpers import GridProposer, brightness_scorer, make_dataset, write_csv

from medpeft.a3tune.weak_labels import (
    FilterSettings,
    generate_weak_labels,
    load_weak_labels,
    mask_bbox,
    read_samples,
)
from medpeft.a3tune.weak_labels.pipeline import load_rgb
from medpeft.errors import DataError, OutputExistsError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def run(samples, out, **kw):
    kw.setdefault("dataset", "slake")
    kw.setdefault("progress", False)
    return generate_weak_labels(
        samples, out, proposer=kw.pop("proposer", GridProposer()), scorer=brightness_scorer(), **kw
    )


def test_round_trip_order_scores_and_boxes(tmp_path):
    samples = read_samples(make_dataset(tmp_path / "d", n=4))
    summary = run(samples, tmp_path / "out", flush_every=3)
    assert summary["labelled"] == 4 and summary["new"] == 4 and summary["n_skipped"] == 0
    wl = load_weak_labels(tmp_path / "out")
    assert wl.ids == [s.id for s in samples]  # input order
    with np.load(tmp_path / "out" / "masks.npz", allow_pickle=False) as npz:
        assert npz.files == wl.ids
    for sid in wl.ids:
        masks, entry = wl.masks(sid), wl.index["samples"][sid]
        assert masks.dtype == np.uint8 and masks.shape == (8, 256, 256)  # K = 8 for slake (10 proposals)
        assert entry["k"] == 8 and entry["proposals"] == 10
        assert entry["scores"] == sorted(entry["scores"], reverse=True)
        assert [list(mask_bbox(m.astype(bool))) for m in masks] == entry["boxes"]
        assert entry["query"] == "Medical image of chest and lungs. Is there a lesion?"
        # the brightest crop (the lesion) ranks first under the brightness scorer
        lesion = load_rgb(next(s.image for s in samples if s.id == sid), 256).mean(-1) > 150
        assert np.array_equal(masks[0].astype(bool), lesion)
        assert wl.token_masks(sid, grid=16, mode="official").shape == (8, 16, 16)
    assert wl.index["settings"]["scorer"] == "stub-brightness"


def test_top_k_override_and_empty_samples(tmp_path):
    samples = read_samples(make_dataset(tmp_path / "d", n=2))
    run(samples, tmp_path / "k3", top_k=3)
    assert load_weak_labels(tmp_path / "k3").masks("s0").shape == (3, 256, 256)
    run(samples, tmp_path / "none", filters=FilterSettings(max_area=1))
    wl = load_weak_labels(tmp_path / "none")
    assert wl.masks("s1").shape == (0, 256, 256) and wl.index["samples"]["s1"]["k"] == 0
    assert wl.token_masks("s1", grid=16) is None


def test_second_run_resumes_and_other_settings_are_refused(tmp_path):
    samples = read_samples(make_dataset(tmp_path / "d", n=3))
    out = tmp_path / "out"
    run(samples, out)
    before = {n: (out / n).read_bytes() for n in ("masks.npz", "index.json")}
    again = run(samples, out)
    assert again["new"] == 0 and again["resumed"] == 3
    assert {n: (out / n).read_bytes() for n in before} == before
    with pytest.raises(OutputExistsError, match="other settings"):
        run(samples, out, top_k=2)
    with pytest.raises(OutputExistsError, match="other settings"):
        run(samples, out, bgr=True)
    assert run(samples, out, top_k=2, overwrite=True)["new"] == 3
    assert load_weak_labels(out).masks("s0").shape[0] == 2


def bad_dataset(tmp_path: Path) -> list:
    good = make_dataset(tmp_path / "d", n=3)
    rows = [
        {"id": "s0", "image": "img0.png", "question": "Q?", "location": "chest"},
        {"id": "gone", "image": "missing.png", "question": "Q?", "location": "chest"},
        {"id": "s1", "image": "img1.png", "question": "", "location": "chest"},
        {"id": "s0", "image": "img2.png", "question": "Q?", "location": "chest"},
        {"id": "s2", "image": "img2.png", "question": "Q?", "location": "chest"},
    ]
    (tmp_path / "d" / "broken.png").write_bytes(b"not a png")
    rows.append({"id": "s3", "image": "broken.png", "question": "Q?", "location": "chest"})
    return read_samples(write_csv(good.parent / "bad.csv", rows))


def test_bad_input_is_named_or_skipped_and_counted(tmp_path):
    samples = bad_dataset(tmp_path)
    with pytest.raises(DataError, match=r"bad\.csv: row 4 \(id 's1'\), field 'question'.*and 1 more"):
        run(samples, tmp_path / "strict")
    ok = [s for s in samples if s.row in (2, 3)]
    with pytest.raises(DataError, match=r"bad\.csv: row 3 \(id 'gone'\), field 'image'.*missing\.png"):
        run(ok, tmp_path / "strict2")
    summary = run(samples, tmp_path / "lenient", on_bad_image="skip")
    assert summary["labelled"] == 2 and summary["n_skipped"] == 4
    index = load_weak_labels(tmp_path / "lenient").index
    assert list(index["samples"]) == ["s0", "s2"] and index["n_skipped"] == 4
    reasons = {(s["row"], s["id"]): s["reason"] for s in index["skipped"]}
    assert "field 'image'" in reasons[(3, "gone")]
    assert "field 'question'" in reasons[(4, "s1")]
    assert "appears twice" in reasons[(5, "s0")]
    assert "broken.png" in reasons[(7, "s3")]


def test_preview_is_a_png(tmp_path):
    samples = read_samples(make_dataset(tmp_path / "d", n=3))
    summary = run(samples, tmp_path / "out", preview=2, top_k=3)
    assert Path(summary["preview"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kill_after_first_flush_then_resume_gives_identical_bytes(tmp_path):
    data = make_dataset(tmp_path / "d", n=8)
    run(read_samples(data), tmp_path / "ref", flush_every=2)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "wl_killable.py"), str(data), str(out), "2", "0.4"], env=env
    )
    deadline = time.monotonic() + 120
    while not (out / "index.json").exists():
        assert proc.poll() is None, "the run ended before its first flush"
        assert time.monotonic() < deadline, "no flush within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = load_weak_labels(out).index
    assert partial["complete"] is False and 0 < len(partial["samples"]) < 8
    summary = run(read_samples(data), out, flush_every=2)
    assert summary["resumed"] == len(partial["samples"]) and summary["labelled"] == 8
    for name in ("masks.npz", "index.json"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    assert not list(out.glob(".*.tmp"))


def test_manifest_folder_and_names_for_proposer(tmp_path):
    from medpeft.a3tune.weak_labels.samples import find_manifest

    data = make_dataset(tmp_path / "d", n=2)
    data.rename(tmp_path / "d" / "manifest.csv")
    (tmp_path / "d" / "other.csv").write_text("id,image\n")
    assert find_manifest(tmp_path / "d").name == "manifest.csv"
    summary = generate_weak_labels(
        tmp_path / "d", tmp_path / "out", proposer="regions", scorer=brightness_scorer(), dataset="pathvqa",
        progress=False, top_k=2,
    )  # fmt: skip
    assert summary["labelled"] == 2
    index = load_weak_labels(tmp_path / "out").index
    assert index["settings"]["proposer"]["name"] == "regions"
    assert index["samples"]["s0"]["query"] == "Medical image of pathology.Is there a lesion?"
    (tmp_path / "d" / "manifest.csv").unlink()
    (tmp_path / "d" / "third.csv").write_text("id,image\n")
    with pytest.raises(DataError, match="exactly one CSV"):
        read_samples(tmp_path / "d")


def test_cv2_resize_is_the_authors_and_a_setting(tmp_path):
    cv2 = pytest.importorskip("cv2", reason="opencv not installed")
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(300, 410, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    got = load_rgb(tmp_path / "x.png", 256, "cv2")
    assert np.array_equal(got, cv2.resize(img, (256, 256), interpolation=cv2.INTER_LINEAR))
    assert not np.array_equal(got, load_rgb(tmp_path / "x.png", 256, "pil"))
    samples = read_samples(make_dataset(tmp_path / "d", n=2))
    run(samples, tmp_path / "out")
    with pytest.raises(OutputExistsError, match="other settings"):
        run(samples, tmp_path / "out", resize="cv2")
    from medpeft.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown dataset"):
        run(samples, tmp_path / "out2", dataset="imagenet")
