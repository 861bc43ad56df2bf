"""prepare mimic-cxr --reports-for generation: one conversation per study, FINDINGS + IMPRESSION, official split."""

from __future__ import annotations

import pandas as pd
import pytest
from a3data_fixtures import read_all, run, synth

from medpeft.data.prepare.mimic_cxr import GENERATION_INSTRUCTION, study_dir
from medpeft.data.sections import findings_impression
from medpeft.errors import ConfigError


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("mimic"), "mimic-cxr", n=24)


def test_one_sample_per_study_with_its_report(raw, tmp_path):
    summary = run("mimic-cxr", raw, tmp_path / "out", reports_for="generation", on_missing="skip")
    samples = read_all(tmp_path / "out")
    rows = [s for split in samples.values() for s in split]
    assert len(rows) == summary["kept_total"] > 0
    studies = [s.extra["study_id"] for s in rows]
    assert len(studies) == len(set(studies))
    split_csv = pd.read_csv(raw / "mimic-cxr-2.0.0-split.csv", dtype=str)
    official = dict(zip(split_csv["dicom_id"], split_csv["split"], strict=True))
    meta = pd.read_csv(raw / "mimic-cxr-2.0.0-metadata.csv", dtype=str)
    view = dict(zip(meta["dicom_id"], meta["ViewPosition"], strict=True))
    for s in rows:
        assert s.answer_type == "report" and s.question == GENERATION_INSTRUCTION
        assert s.split == official[s.extra["dicom_id"]] and view[s.extra["dicom_id"]] in ("PA", "AP")
        text = (raw / f"{study_dir(s.extra['subject_id'], s.extra['study_id'])}.txt").read_text()
        assert s.answer == findings_impression(text)
    subjects = {split: {s.extra["subject_id"] for s in rows} for split, rows in samples.items()}
    assert not (subjects["train"] & subjects.get("test", set()))


def test_training_is_still_the_default_and_bad_value_is_refused(raw, tmp_path):
    run("mimic-cxr", raw, tmp_path / "out", on_missing="skip")
    assert (tmp_path / "out" / "train.csv").is_file() and not (tmp_path / "out" / "train.jsonl").exists()
    with pytest.raises(ConfigError, match="reports_for must be one of"):
        run("mimic-cxr", raw, tmp_path / "bad", reports_for="vqa")
    with pytest.raises(ConfigError, match="--fraction applies to image-label manifests"):
        run("mimic-cxr", raw, tmp_path / "bad2", reports_for="generation", on_missing="skip", fractions=[0.5])
    assert not (tmp_path / "bad2").exists() or not any((tmp_path / "bad2").iterdir())
