"""What the synthetic images and reports mean: local findings, class texture, report wording."""

from __future__ import annotations

import re

import numpy as np
import pytest

from medpeft.data.labels import CHEXPERT_LABELS
from medpeft.data.synthetic.cxr import FINDINGS, render_frontal, render_lateral
from medpeft.data.synthetic.findings import chexpert_findings, sample_chexpert_labels
from medpeft.data.synthetic.pathology import render_lc25000, render_mhist
from medpeft.data.synthetic.reports import report_corpus, write_report

SIZE = 128


def _render(finding: str | None, seed: int):
    return render_frontal(np.random.default_rng(seed), SIZE, SIZE, {} if finding is None else {finding: 1.0})


@pytest.mark.parametrize("finding", FINDINGS)
def test_every_finding_is_drawn_as_a_region(finding):
    rendered = _render(finding, 1)
    assert rendered.image.shape == (SIZE, SIZE) and rendered.image.dtype == np.float32
    assert 0.0 <= rendered.image.min() and rendered.image.max() <= 1.0
    assert rendered.mask(finding).any() and rendered.boxes(finding)
    for x, y, w, h in rendered.boxes(finding):
        assert 0 <= x and 0 <= y and x + w <= SIZE and y + h <= SIZE


def test_normal_images_have_no_regions_and_rendering_is_deterministic():
    a, b = _render(None, 5), _render(None, 5)
    assert a.regions == [] and np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, _render(None, 6).image)


def test_findings_are_local_and_at_random_places():
    centres = []
    for seed in range(6):
        mask = _render("consolidation", seed).mask("consolidation")
        assert mask.mean() < 0.1  # a patch, not the whole image
        ys, xs = np.nonzero(mask)
        centres.append((xs.mean(), ys.mean()))
    assert np.ptp(np.array(centres), axis=0).max() > SIZE * 0.2


def _lesion_contrast(finding: str, seeds: range) -> float:
    """Mean (z-scored) intensity inside the drawn mask minus the same pixels in normal images."""
    normals = np.stack([_render(None, 100 + s).image for s in seeds])
    normals = (normals - normals.mean(axis=(1, 2), keepdims=True)) / normals.std(axis=(1, 2), keepdims=True)
    baseline = normals.mean(axis=0)
    diffs = []
    for s in seeds:
        r = _render(finding, s)
        z = (r.image - r.image.mean()) / r.image.std()
        mask = r.mask(finding)
        diffs.append(z[mask].mean() - baseline[mask].mean())
    return float(np.mean(diffs))


@pytest.mark.parametrize(
    ("finding", "sign"),
    [
        ("consolidation", 1),
        ("effusion", 1),
        ("atelectasis", 1),
        ("nodule", 1),
        ("edema", 1),
        ("pneumothorax", -1),
    ],
)
def test_opacities_are_brighter_and_pneumothorax_darker_than_normal_lung(finding, sign):
    assert sign * _lesion_contrast(finding, range(6)) > 0.3


def test_cardiomegaly_draws_a_wide_heart():
    for seed in range(5):
        rendered = render_frontal(np.random.default_rng(seed), SIZE, SIZE, {"cardiomegaly": 1.0})
        (box,) = rendered.boxes("cardiomegaly")
        assert box[2] > 0.34 * SIZE  # cardiothoracic ratio above 0.5 of an ~0.67-wide thorax


def test_lateral_view_renders():
    r = render_lateral(np.random.default_rng(0), SIZE, 112, {"effusion": 1.0})
    assert r.view == "lateral" and r.image.shape == (SIZE, 112)


def test_unknown_finding_is_an_error():
    with pytest.raises(ValueError, match="unknown findings"):
        render_frontal(np.random.default_rng(0), SIZE, SIZE, {"pneumonitis": 1.0})


# ----------------------------------------------------------------------------- pathology


def _tile_stats(tile: np.ndarray) -> tuple[float, float]:
    """(fraction of near-white 'lumen/air' pixels, fraction of dark purple nuclear pixels)."""
    rgb = tile.astype(np.float32)
    white = (rgb.min(axis=-1) > 215).mean()
    nuclear = ((rgb[..., 0] < 140) & (rgb[..., 1] < 110)).mean()
    return float(white), float(nuclear)


def test_pathology_classes_carry_distinct_architecture():
    stats = {
        k: np.mean([_tile_stats(render_lc25000(np.random.default_rng(s), k, 96)) for s in range(3)], axis=0)
        for k in ("lung_n", "lung_aca", "lung_scc", "colon_n", "colon_aca")
    }
    assert stats["lung_n"][0] > max(stats[k][0] for k in ("lung_aca", "lung_scc", "colon_aca"))  # air spaces
    assert (
        stats["lung_scc"][1] > stats["lung_n"][1] and stats["colon_aca"][1] > stats["colon_n"][1]
    )  # crowding
    tile = render_lc25000(np.random.default_rng(0), "colon_n", 96)
    assert tile.shape == (96, 96, 3) and tile.dtype == np.uint8


def test_mhist_ssa_has_wider_lumens_than_hp():
    hp = np.mean([_tile_stats(render_mhist(np.random.default_rng(s), "HP", 112))[0] for s in range(4)])
    ssa = np.mean([_tile_stats(render_mhist(np.random.default_rng(s), "SSA", 112))[0] for s in range(4)])
    assert ssa > hp * 1.2


# ----------------------------------------------------------------------------- reports


def _labels(**values) -> dict:
    out = dict.fromkeys(CHEXPERT_LABELS)
    out.update({k.replace("_", " "): v for k, v in values.items()})
    return out


def test_reports_state_negate_and_hedge_labels():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        text = " ".join(
            write_report(rng, _labels(Pleural_Effusion=0.0, Consolidation=-1.0, Cardiomegaly=1.0)).split()
        )
        low = text.lower()
        assert "no pleural effusion" in low or "no effusion" in low or "no pleural effusion or" in low
        assert any(w in low for w in ("possible", "may", "cannot be excluded", "questionable"))
        assert any(w in low for w in ("cardiomegaly", "heart is enlarged", "cardiac silhouette is enlarged"))


def test_unmentioned_labels_stay_unmentioned():
    for seed in range(10):
        report = write_report(np.random.default_rng(seed), _labels(Pneumothorax=1.0))
        # The INDICATION may name a suspected disease (as real ones do); findings/impression may not.
        text = "\n".join(line for line in report.lower().splitlines() if "indication:" not in line)
        assert "pneumothorax" in text
        assert "effusion" not in text and "edema" not in text


def test_report_corpus_has_varied_sections_and_is_deterministic():
    corpus = report_corpus(200, seed=0)
    assert corpus == report_corpus(200, seed=0) and corpus != report_corpus(20, seed=1)
    has_f = np.array(["FINDINGS:" in r for r in corpus])
    has_i = np.array(["IMPRESSION:" in r for r in corpus])
    assert (has_f & has_i).mean() > 0.4
    assert (has_f & ~has_i).any() and (~has_f & has_i).any() and (~has_f & ~has_i).any()
    assert any("INDICATION:" in r for r in corpus) and any("COMPARISON:" in r for r in corpus)
    assert all(re.search(r"[a-z]", r) for r in corpus)
    assert len(set(corpus)) > 190  # varied wording


def test_uncertain_labels_are_sometimes_drawn_faintly():
    strengths = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        labels = sample_chexpert_labels(rng)
        strengths.extend(chexpert_findings(rng, labels).values())
    assert 1.0 in strengths and 0.6 in strengths
