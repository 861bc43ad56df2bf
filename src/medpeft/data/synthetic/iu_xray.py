"""Synthetic IU-Xray (Open-i; the Kaggle "chest-xrays-indiana-university" layout).

Layout written (under ``out``)::

    indiana_reports.csv       uid,MeSH,Problems,image,indication,comparison,findings,impression
    indiana_projections.csv   uid,filename,projection (Frontal / Lateral)
    images/images_normalized/<uid>_IM-<nnnn>-<mmmm>.dcm.png

Each report (uid) has a frontal image (normal, or one localised finding at a known site) and usually a
lateral one; its FINDINGS/IMPRESSION state that finding and its site. As in the real data, a few reports
have only a lateral image, and a few have neither findings nor impression (``prepare`` drops and counts
both). The truth sidecar keeps each frontal image's finding, site and lesion mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from medpeft.data.synthetic.cxr import render_lateral
from medpeft.data.synthetic.output import Advance, image_rng, save_gray, save_mask
from medpeft.data.synthetic.vqa import VQA_FINDINGS, case_truth, render_case, sample_finding

STREAM = 11
IMAGES = "images/images_normalized"
NORMAL_FINDINGS = "The heart is normal in size. The lungs are clear. No pneumothorax or pleural effusion."
NORMAL_IMPRESSION = "No acute cardiopulmonary abnormality."


def total_images(n: int) -> int:
    """Upper bound on image files for ``n`` reports (a frontal and a lateral each)."""
    return 2 * n


def report_text(finding: str | None, site: str | None) -> tuple[str, str]:
    """(findings, impression) that state ``finding`` at ``site`` (the normal report for None)."""
    if finding is None:
        return NORMAL_FINDINGS, NORMAL_IMPRESSION
    name = VQA_FINDINGS[finding]
    return (
        f"The heart is normal in size. There is a {name} in the {site}.",
        f"{name[0].upper()}{name[1:]} in the {site}.",
    )


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` reports with their images and the two CSVs."""
    reports, projections = [], []
    truth: dict[str, Any] = {}
    counts = {"reports": n, "images": 0, "lateral_only": 0, "empty_report": 0}
    for index in range(n):
        rng = image_rng(seed, STREAM, index)
        uid = index + 1
        case = render_case(rng, image_size, sample_finding(rng))
        layout = rng.random()
        lateral_only, empty = layout < 0.05, 0.05 <= layout < 0.1
        views = (
            ["Lateral"] if lateral_only else (["Frontal", "Lateral"] if rng.random() < 0.8 else ["Frontal"])
        )
        for k, view in enumerate(views):
            filename = f"{uid}_IM-{1000 + index:04d}-{1001 + k:04d}.dcm.png"
            rel = f"{IMAGES}/{filename}"
            if view == "Frontal":
                image = case.rendered.image
                mask = (
                    save_mask(out, f"iu_xray/{filename[:-8]}", case.mask) if case.mask is not None else None
                )
                truth[rel] = {"id": filename, "uid": uid, **case_truth(case, mask)}
            else:
                drawn = {case.finding: 1.0} if case.finding else {}
                image = render_lateral(rng, image_size, image_size, drawn).image
            save_gray(out / rel, image)
            advance(1)
            counts["images"] += 1
            projections.append({"uid": uid, "filename": filename, "projection": view})
        findings, impression = ("", "") if empty else report_text(case.finding, case.site)
        problem = "normal" if case.finding is None else VQA_FINDINGS[case.finding].capitalize()
        reports.append(
            {
                "uid": uid,
                "MeSH": problem if case.finding is None else f"{problem}/{case.site}",
                "Problems": problem,
                "image": "Xray Chest PA and Lateral" if len(views) == 2 else "Xray Chest",
                "indication": "XXXX-year-old with cough.",
                "comparison": "None.",
                "findings": findings,
                "impression": impression,
            }
        )
        counts["lateral_only"] += lateral_only
        counts["empty_report"] += empty
    pd.DataFrame(reports).to_csv(out / "indiana_reports.csv", index=False)
    pd.DataFrame(projections).to_csv(out / "indiana_projections.csv", index=False)
    return {
        "counts": counts,
        "paths": {
            "reports_csv": "indiana_reports.csv",
            "projections_csv": "indiana_projections.csv",
            "images": IMAGES,
        },
        "truth": truth,
    }
