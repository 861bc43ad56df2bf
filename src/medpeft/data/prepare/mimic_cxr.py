"""MIMIC-CXR-JPG -> manifests for ACE-LoRA training (the paper's pre-training data).

Official patient-level split (``mimic-cxr-2.0.0-split.csv``), frontal images only (ViewPosition PA/AP
from the metadata CSV), text = FINDINGS + IMPRESSION of the study's report (studies with neither are
dropped and counted), and the 14 CheXpert labels joined **by study_id** (the reference code joined
by row position, which misaligns as soon as a table is filtered or sorted differently).

``reports_for="generation"`` (A³Tune) writes the conversation manifest instead: one sample per study
(its first frontal image in split-file order; further frontals counted), the human turn
``GENERATION_INSTRUCTION`` and the assistant turn FINDINGS + IMPRESSION, in the official split.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medpeft.data.conversations import make_sample
from medpeft.data.labels import CHEXPERT_LABELS
from medpeft.data.manifest import DatasetInfo
from medpeft.data.prepare.cache import ImageJob
from medpeft.data.prepare.context import PrepareContext, Prepared
from medpeft.data.prepare.conversation import Item, PreparedConversations, finish
from medpeft.data.prepare.tables import LINE, read_table, require_file
from medpeft.data.sections import findings_impression
from medpeft.errors import ConfigError, DataError

SPLIT_CSV = "mimic-cxr-2.0.0-split.csv"
METADATA_CSV = "mimic-cxr-2.0.0-metadata.csv"
CHEXPERT_CSV = "mimic-cxr-2.0.0-chexpert.csv"
SPLITS = ("train", "validate", "test")
FRONTAL = ("PA", "AP")
UNCERTAIN = {"zero": 0, "one": 1, "keep": -1}
BLANK = {"zero": 0, "keep": ""}
REPORTS_FOR = ("training", "generation")
GENERATION_INSTRUCTION = "Describe the findings of the chest X-ray."


def study_dir(subject_id: str, study_id: str) -> str:
    """``files/p10/p10000032/s50414267`` (relative to the dataset root)."""
    return f"files/p{subject_id[:2]}/p{subject_id}/s{study_id}"


def parse_label(value: str, where: str, column: str) -> float | None:
    """A CheXpert cell: 1, 0, -1 (uncertain) or blank; anything else is a DataError naming the cell."""
    text = value.strip()
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        number = None
    if number not in (1.0, 0.0, -1.0):
        raise DataError(f"{where}, column {column!r}: value {value!r} is not one of 1, 0, -1 or blank")
    return number


def map_label(value: float | None, *, uncertain: str, blank: str) -> int | str:
    """Apply the label policy (paper: blank -> 0, -1 -> 0)."""
    if value is None:
        return BLANK[blank]
    if value == -1.0:
        return UNCERTAIN[uncertain]
    return int(value)


def label_values(uncertain: str, blank: str) -> list[float | None]:
    """The values a manifest written with this policy may hold (for ``dataset.json``)."""
    values: set[float | None] = {0.0, 1.0, float(UNCERTAIN[uncertain])}
    if blank == "keep":
        values.add(None)
    return sorted(values, key=lambda v: (v is None, v))


def _check_policy(uncertain: str, blank: str) -> None:
    if uncertain not in UNCERTAIN:
        raise ConfigError(f"uncertain must be one of {tuple(UNCERTAIN)}, got {uncertain!r}")
    if blank not in BLANK:
        raise ConfigError(f"blank must be one of {tuple(BLANK)}, got {blank!r}")


def read_labels(path: Path) -> dict[str, tuple[str, int, list[float | None]]]:
    """study_id -> (subject_id, file line, 14 parsed values); validates every cell and duplicate studies."""
    table = read_table(
        path, ["subject_id", "study_id", *CHEXPERT_LABELS], non_empty=["subject_id", "study_id"]
    )
    out: dict[str, tuple[str, int, list[float | None]]] = {}
    columns = [table[c].tolist() for c in CHEXPERT_LABELS]
    for i, (subject, study, line) in enumerate(
        zip(table["subject_id"], table["study_id"], table[LINE], strict=True)
    ):
        study = study.strip()
        where = f"{path.name} line {line}"
        if study in out:
            raise DataError(f"{where}: study {study} is listed twice (first on line {out[study][1]})")
        values = [
            parse_label(col[i], where, name) for col, name in zip(columns, CHEXPERT_LABELS, strict=True)
        ]
        out[study] = (subject.strip(), line, values)
    return out


def _check_patient_level(split: pd.DataFrame, path: Path) -> None:
    """No subject in two splits: the official split is patient-level, anything else is a broken file."""
    first: dict[str, tuple[str, int]] = {}
    for subject, name, line in zip(split["subject_id"], split["split"], split[LINE], strict=True):
        seen = first.setdefault(subject, (name, line))
        if seen[0] != name:
            raise DataError(
                f"{path.name}: subject {subject} is in both '{seen[0]}' (line {seen[1]}) and '{name}' "
                f"(line {line}); the split must be patient-level"
            )


def build(
    ctx: PrepareContext,
    *,
    uncertain: str = "zero",
    blank: str = "zero",
    reports_dir: Path | None = None,
    views: tuple[str, ...] = FRONTAL,
    reports_for: str = "training",
) -> Prepared | PreparedConversations:
    """Read the MIMIC-CXR-JPG layout under ``ctx.raw`` (reports under ``reports_dir``, default the same root).

    ``reports_for`` is "training" (image-label manifest, ACE-LoRA) or "generation" (conversation manifest).
    """
    _check_policy(uncertain, blank)
    if reports_for not in REPORTS_FOR:
        raise ConfigError(f"reports_for must be one of {REPORTS_FOR}, got {reports_for!r}")
    raw, report = ctx.raw, ctx.report
    reports_root = Path(reports_dir) if reports_dir is not None else raw
    split_path = require_file(raw / SPLIT_CSV, "MIMIC-CXR split file")
    meta_path = require_file(raw / METADATA_CSV, "MIMIC-CXR metadata file")
    labels_path = require_file(raw / CHEXPERT_CSV, "MIMIC-CXR CheXpert label file")

    split = read_table(
        split_path,
        ["dicom_id", "study_id", "subject_id", "split"],
        non_empty=["dicom_id", "study_id", "subject_id", "split"],
        strip_values=True,
    )
    bad = split.index[~split["split"].isin(SPLITS)]
    if len(bad):
        i = bad[0]
        raise DataError(
            f"{SPLIT_CSV} line {split[LINE].iat[i]}: split {split['split'].iat[i]!r} is not one of {', '.join(SPLITS)}"
        )
    dup = split.index[split["dicom_id"].duplicated()]
    if len(dup):
        raise DataError(
            f"{SPLIT_CSV} line {split[LINE].iat[dup[0]]}: dicom_id {split['dicom_id'].iat[dup[0]]} listed twice"
        )
    _check_patient_level(split, split_path)
    meta = read_table(meta_path, ["dicom_id", "ViewPosition"], non_empty=["dicom_id"], strip_values=True)
    view_of = dict(zip(meta["dicom_id"], meta["ViewPosition"], strict=True))
    labels = read_labels(labels_path)
    report.read.update({"split rows": len(split), "metadata rows": len(meta), "label rows": len(labels)})

    split_studies = set(split["study_id"])
    for study, (_, line, _) in labels.items():
        if study not in split_studies:
            ctx.missing(
                "studies: in labels but not in split file",
                study,
                f"{CHEXPERT_CSV} line {line}: study {study} has labels but is not in {SPLIT_CSV}",
            )

    rows: list[dict] = []
    study_text: dict[str, str | None] = {}
    for dicom, study, subject, name, line in zip(
        split["dicom_id"], split["study_id"], split["subject_id"], split["split"], split[LINE], strict=True
    ):
        where = f"{SPLIT_CSV} line {line}"
        if dicom not in view_of:
            ctx.missing(
                "images: not in metadata file", dicom, f"{where}: dicom_id {dicom} is not in {METADATA_CSV}"
            )
            continue
        view = view_of[dicom]
        if view not in views:
            report.drop(
                f"images: view not {'/'.join(views)} (lateral or other)", f"{dicom} ({view or 'blank'})"
            )
            continue
        image = raw / study_dir(subject, study) / f"{dicom}.jpg"
        if not image.is_file():
            ctx.missing("images: file missing", str(image), f"{where}: image file not found: {image}")
            continue
        if study not in labels:
            ctx.missing(
                "images: study has no CheXpert labels",
                study,
                f"{where}: study {study} is not in {CHEXPERT_CSV}",
            )
            continue
        label_subject = labels[study][0]
        if label_subject != subject:
            raise DataError(
                f"{where}: study {study} belongs to subject {subject} in {SPLIT_CSV} but to subject "
                f"{label_subject} in {CHEXPERT_CSV} line {labels[study][1]}"
            )
        if study not in study_text:
            report_path = reports_root / f"{study_dir(subject, study)}.txt"
            if not report_path.is_file():
                study_text[study] = None
                ctx.missing(
                    "studies: report file missing",
                    str(report_path),
                    f"{where}: report not found: {report_path} (reports come from MIMIC-CXR's "
                    "mimic-cxr-reports.zip; point --reports-dir at the folder that holds its files/)",
                )
            else:
                try:
                    text = findings_impression(report_path.read_text(encoding="utf-8", errors="replace"))
                except OSError as err:
                    raise DataError(f"cannot read report {report_path}: {err}") from err
                study_text[study] = text
                if text is None:
                    report.drop("studies: report has neither FINDINGS nor IMPRESSION", str(report_path))
        text = study_text[study]
        if text is None:
            report.drop("images: study report missing or without FINDINGS/IMPRESSION", dicom)
            continue
        values = labels[study][2]
        row = {"split": name, "image_src": image, "dicom_id": dicom, "text": text}
        row.update(
            {
                c: map_label(v, uncertain=uncertain, blank=blank)
                for c, v in zip(CHEXPERT_LABELS, values, strict=True)
            }
        )
        row.update({"subject_id": subject, "study_id": study, "image_id": dicom, "view": view})
        rows.append(row)

    if reports_for == "generation":
        return _generation(ctx, rows)
    jobs = [
        ImageJob(
            r["dicom_id"], r["image_src"], f"{study_dir(r['subject_id'], r['study_id'])}/{r['dicom_id']}"
        )
        for r in rows
    ]
    results = ctx.images(jobs)
    columns = ["image", "text", *CHEXPERT_LABELS, "subject_id", "study_id", "image_id", "view"]
    splits: dict[str, pd.DataFrame] = {}
    for name in SPLITS:
        kept = [
            dict(r, image=ctx.rel(results[r["dicom_id"]].path))
            for r in rows
            if r["split"] == name and r["dicom_id"] in results
        ]
        splits[name] = pd.DataFrame(kept, columns=columns)
    report.note(
        f"labels joined by study_id; uncertain (-1) -> {UNCERTAIN[uncertain]!r}, blank -> {BLANK[blank]!r}"
    )
    info = DatasetInfo(
        name="mimic-cxr",
        task="multilabel",
        classes=list(CHEXPERT_LABELS),
        class_names=list(CHEXPERT_LABELS),
        label_values=label_values(uncertain, blank),
        has_text=True,
    )
    return Prepared(splits=splits, info=info, group_column="subject_id")


def _generation(ctx: PrepareContext, rows: list[dict]) -> PreparedConversations:
    """One conversation sample per study: its first frontal image and its FINDINGS + IMPRESSION."""
    items: list[Item] = []
    seen: set[str] = set()
    for r in rows:
        if r["study_id"] in seen:
            ctx.report.drop(
                "images: further frontal image of a study (generation uses the first)", r["dicom_id"]
            )
            continue
        seen.add(r["study_id"])
        sample = make_sample(
            f"mimic-cxr-{r['study_id']}", "", GENERATION_INSTRUCTION, r["text"], "report",
            split=r["split"], dataset="mimic-cxr", organ="chest", modality="X-Ray",
            extra={"subject_id": r["subject_id"], "study_id": r["study_id"], "dicom_id": r["dicom_id"]},
        )  # fmt: skip
        key = f"{study_dir(r['subject_id'], r['study_id'])}/{r['dicom_id']}"
        items.append(Item(sample, key=key, src=r["image_src"]))
    ctx.report.note("reports_for='generation': conversation manifest, one sample per study, official split")
    return finish(ctx, items, name="mimic-cxr", kind="report", source="MIMIC-CXR-JPG + reports")
