"""prepare iu-xray: one sample per report with a frontal image, FINDINGS + IMPRESSION, seeded uid split."""

from __future__ import annotations

import pandas as pd
import pytest
from a3data_fixtures import assert_no_image_in_two_splits, read_all, run, synth, truth
from prepare_fixtures import write_png

from medpeft.data.prepare.iu_xray import INSTRUCTION
from medpeft.data.synthetic.iu_xray import report_text
from medpeft.errors import DataError

IMAGES = "images/images_normalized"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("iu"), "iu-xray", n=20)


def _layout(root, reports, projections):
    """A hand-made IU-Xray folder: reports (uid, findings, impression), projections (uid, filename, view)."""
    root.mkdir(parents=True, exist_ok=True)
    cols = ["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"]
    pd.DataFrame(
        [{"uid": u, "MeSH": "normal", "Problems": "normal", "image": "Xray Chest", "indication": "",
          "comparison": "", "findings": f, "impression": i} for u, f, i in reports],
        columns=cols,
    ).to_csv(root / "indiana_reports.csv", index=False)  # fmt: skip
    pd.DataFrame(projections, columns=["uid", "filename", "projection"]).to_csv(
        root / "indiana_projections.csv", index=False
    )
    for _, filename, _ in projections:
        write_png(root / IMAGES / filename)
    return root


def test_round_trip_report_text_from_the_truth(raw, tmp_path):
    summary = run("iu-xray", raw, tmp_path / "out")
    samples = read_all(tmp_path / "out")
    rows = [s for split in samples.values() for s in split]
    reports = pd.read_csv(raw / "indiana_reports.csv", keep_default_na=False, dtype=str)
    dropped = sum(
        summary["dropped"].get(k, 0)
        for k in ("reports: no frontal image", "reports: neither findings nor impression")
    )
    assert len(rows) == len(reports) - dropped == summary["kept_total"] > 0
    gold = truth(raw)
    by_image = {k.rsplit("/", 1)[1].removesuffix(".dcm.png"): v for k, v in gold.items()}
    for s in rows:
        assert s.answer_type == "report" and s.question == INSTRUCTION and s.organ == "chest"
        record = by_image[s.image.rsplit("/", 1)[1].removesuffix(".dcm.png")]
        assert s.answer == " ".join(report_text(record["finding"], record["site"]))
        assert (s.lesion_mask is not None) == (record["finding"] is not None)
    assert_no_image_in_two_splits(samples)
    assert all(len({s.extra["uid"] for s in samples[a]} & {s.extra["uid"] for s in samples[b]}) == 0
               for a, b in (("train", "validate"), ("train", "test"), ("validate", "test")))  # fmt: skip


def test_split_is_seeded_by_uid(raw, tmp_path):
    def split_of(out):
        return {s.extra["uid"]: split for split, rows in read_all(out).items() for s in rows}

    run("iu-xray", raw, tmp_path / "a", seed=1)
    run("iu-xray", raw, tmp_path / "b", seed=1)
    run("iu-xray", raw, tmp_path / "c", seed=2)
    a = split_of(tmp_path / "a")
    assert a == split_of(tmp_path / "b") and a != split_of(tmp_path / "c")
    counts = pd.Series(list(a.values())).value_counts().to_dict()
    n = len(a)  # 7:1:2 by largest remainder
    assert counts["train"] == pytest.approx(0.7 * n, abs=1) and counts["test"] == pytest.approx(
        0.2 * n, abs=1
    )


def test_drops_are_counted_and_text_joins_sections(tmp_path):
    raw = _layout(
        tmp_path / "raw",
        [("1", "Heart normal.", "No acute disease."), ("2", "", "Clear lungs."), ("3", "", ""),
         ("4", "Lateral only.", ""), ("5", "Two frontals.", "")],
        [("1", "1_IM-0001-4001.dcm.png", "Frontal"), ("1", "1_IM-0001-3001.dcm.png", "Lateral"),
         ("2", "2_IM-0002-1001.dcm.png", "Frontal"), ("3", "3_IM-0003-1001.dcm.png", "Frontal"),
         ("4", "4_IM-0004-1001.dcm.png", "Lateral"), ("5", "5_IM-0005-2001.dcm.png", "Frontal"),
         ("5", "5_IM-0005-1001.dcm.png", "Frontal"), ("9", "9_IM-0009-1001.dcm.png", "Frontal")],
    )  # fmt: skip
    summary = run("iu-xray", raw, tmp_path / "out", split_fractions=(0.34, 0.33, 0.33))
    assert summary["dropped"] == {
        "reports: neither findings nor impression": 1,
        "reports: no frontal image": 1,
        "images: extra frontal image of a report (first one used)": 1,
        "images: uid not in the reports file": 1,
    }
    rows = {s.extra["uid"]: s for split in read_all(tmp_path / "out").values() for s in split}
    assert sorted(rows) == ["1", "2", "5"]
    assert rows["1"].answer == "Heart normal. No acute disease." and rows["2"].answer == "Clear lungs."
    assert rows["5"].image.endswith("5_IM-0005-1001.dcm.png")  # first frontal by file name


def test_bad_rows_are_named(tmp_path):
    raw = _layout(tmp_path / "raw", [("1", "a", "b")], [("1", "1_IM-0001-4001.dcm.png", "Oblique")])
    with pytest.raises(DataError, match=r"indiana_projections\.csv line 2: field 'projection' is 'Oblique'"):
        run("iu-xray", raw, tmp_path / "out")
    raw = _layout(
        tmp_path / "raw2", [("1", "a", "b"), ("1", "c", "d")], [("1", "1_IM-0001-4001.dcm.png", "Frontal")]
    )
    with pytest.raises(
        DataError, match=r"indiana_reports\.csv line 3: uid 1 appears twice \(first on line 2\)"
    ):
        run("iu-xray", raw, tmp_path / "out")
    raw = _layout(tmp_path / "raw3", [("1", "a", "b")], [("1", "1_IM-0001-4001.dcm.png", "Frontal")])
    (raw / IMAGES / "1_IM-0001-4001.dcm.png").unlink()
    with pytest.raises(DataError, match=r"indiana_reports\.csv line 2: image file not found"):
        run("iu-xray", raw, tmp_path / "out")
