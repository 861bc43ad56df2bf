"""IU-Xray (Open-i) -> conversation manifest for report generation.

Raw layout (the Kaggle "chest-xrays-indiana-university" release)::

    indiana_reports.csv       uid, MeSH, Problems, image, indication, comparison, findings, impression
    indiana_projections.csv   uid, filename, projection (Frontal | Lateral)
    images/images_normalized/<filename>

One sample per report (uid) that has a frontal image: the first frontal in file-name order is the image
(other frontals are counted; lateral views are not used). The answer is FINDINGS followed by IMPRESSION
(either alone when the other is empty); reports with neither, or with no frontal image, are dropped and
counted. IU-Xray has no official split: reports are split by uid with a seeded permutation (default
7:1:2 train/validate/test), so no patient's report is in two splits. The human turn is ``INSTRUCTION``.
"""

from __future__ import annotations

from medpeft.data.conversations import make_sample
from medpeft.data.prepare.context import PrepareContext
from medpeft.data.prepare.conversation import Item, PreparedConversations, finish
from medpeft.data.prepare.splits import group_split
from medpeft.data.prepare.tables import LINE, read_table, require_file
from medpeft.errors import ConfigError, DataError

REPORTS_CSV = "indiana_reports.csv"
PROJECTIONS_CSV = "indiana_projections.csv"
IMAGES = "images/images_normalized"
INSTRUCTION = "Describe the findings of the chest X-ray."
PROJECTIONS = ("Frontal", "Lateral")
DEFAULT_SPLIT = (0.7, 0.1, 0.2)


def report_text(findings: str, impression: str) -> str | None:
    """FINDINGS then IMPRESSION, whitespace collapsed; None when both are empty."""
    parts = [" ".join(t.split()) for t in (findings, impression)]
    text = " ".join(p for p in parts if p)
    return text or None


def build(
    ctx: PrepareContext, *, split_fractions: tuple[float, float, float] = DEFAULT_SPLIT
) -> PreparedConversations:
    """Read the IU-Xray layout under ``ctx.raw`` (see the module docstring)."""
    if len(split_fractions) != 3:
        raise ConfigError(f"split_fractions needs three numbers (train validate test), got {split_fractions}")
    reports_path = require_file(ctx.raw / REPORTS_CSV, "IU-Xray reports file")
    proj_path = require_file(ctx.raw / PROJECTIONS_CSV, "IU-Xray projections file")
    reports = read_table(
        reports_path, ["uid", "findings", "impression"], non_empty=["uid"], strip_values=True
    )
    proj = read_table(
        proj_path,
        ["uid", "filename", "projection"],
        non_empty=["uid", "filename", "projection"],
        strip_values=True,
    )
    ctx.report.read.update({"reports": len(reports), "projection rows": len(proj)})
    frontal: dict[str, list[str]] = {}
    for uid, filename, view, line in zip(
        proj["uid"], proj["filename"], proj["projection"], proj[LINE], strict=True
    ):
        if view not in PROJECTIONS:
            raise DataError(
                f"{PROJECTIONS_CSV} line {line}: field 'projection' is {view!r}, expected one of {PROJECTIONS}"
            )
        if view == "Frontal":
            frontal.setdefault(uid, []).append(filename)
    seen: dict[str, int] = {}
    candidates: list[tuple[str, str, str, str]] = []  # uid, text, filename, where
    for uid, findings, impression, line in zip(
        reports["uid"], reports["findings"], reports["impression"], reports[LINE], strict=True
    ):
        where = f"{REPORTS_CSV} line {line}"
        if uid in seen:
            raise DataError(f"{where}: uid {uid} appears twice (first on line {seen[uid]})")
        seen[uid] = line
        text = report_text(findings, impression)
        if text is None:
            ctx.report.drop("reports: neither findings nor impression", f"uid {uid}")
            continue
        if uid not in frontal:
            ctx.report.drop("reports: no frontal image", f"uid {uid}")
            continue
        files = sorted(frontal[uid])
        ctx.report.drop(
            "images: extra frontal image of a report (first one used)", f"uid {uid}", len(files) - 1
        )
        candidates.append((uid, text, files[0], where))
    unknown = sorted(set(frontal) - set(seen))
    ctx.report.drop("images: uid not in the reports file", unknown[0] if unknown else None, len(unknown))

    fractions = dict(zip(("train", "validate", "test"), split_fractions, strict=True))
    split_of = group_split([c[0] for c in candidates], seed=ctx.seed, fractions=fractions)
    items: list[Item] = []
    for uid, text, filename, where in candidates:
        src = ctx.raw / IMAGES / filename
        if not src.is_file():
            ctx.missing(
                "reports: frontal image file missing", str(src), f"{where}: image file not found: {src}"
            )
            continue
        sample = make_sample(
            f"iu-xray-{uid}", "", INSTRUCTION, text, "report",
            split=split_of[uid], dataset="iu-xray", organ="chest", modality="X-Ray", extra={"uid": uid},
        )  # fmt: skip
        items.append(Item(sample, key=filename.removesuffix(".png").removesuffix(".dcm"), src=src,
                          truth_key=f"{IMAGES}/{filename}"))  # fmt: skip
    ctx.report.note(f"seeded split by uid (report): train/validate/test = {split_fractions}")
    return finish(ctx, items, name="iu-xray", kind="report", source="Kaggle indiana_*.csv")
