"""Synthetic SLAKE 1.0 (English + Chinese questions on chest X-rays with known lesions).

Layout written (under ``out``), as in the public ``Slake1.0`` release::

    Slake1.0/train.json, validate.json, test.json   lists of {img_id, img_name, question, answer, q_lang,
                                                    location, modality, answer_type, base_type,
                                                    content_type, triple, qid}
    Slake1.0/imgs/xmlab<N>/source.jpg               the image (+ detection.json: [{finding: [x, y, w, h]}])

Images are split 70/15/15 (an image's questions stay in its split, as in the release). Each image has the
English questions of ``vqa.questions`` plus one Chinese question (``q_lang`` "zh"), which ``prepare``
filters out. The truth sidecar keeps each image's finding, site and lesion mask.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medpeft.data.synthetic.output import Advance, image_rng, save_gray, save_mask
from medpeft.data.synthetic.vqa import case_truth, image_splits, questions, render_case, sample_finding

STREAM = 8
ROOT = "Slake1.0"
SPLITS = ("train", "validate", "test")
_CONTENT = {
    "presence": "Abnormality",
    "normal": "Abnormality",
    "abnormality": "Abnormality",
    "location": "Position",
}


def total_images(n: int) -> int:
    """Number of image files for ``n`` (exactly ``n``)."""
    return n


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` images with their questions into the SLAKE layout."""
    splits = image_splits(n, image_rng(seed, STREAM, -1), SPLITS, (0.7, 0.15, 0.15))
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    truth: dict[str, Any] = {}
    qid = 0
    for index in range(n):
        rng = image_rng(seed, STREAM, index)
        case = render_case(rng, image_size, sample_finding(rng))
        img_id = index + 1
        folder = f"xmlab{img_id}"
        rel = f"{ROOT}/imgs/{folder}/source.jpg"
        save_gray(out / rel, case.rendered.image)
        detection = [{r.finding: list(r.box)} for r in case.rendered.regions]
        (out / ROOT / "imgs" / folder / "detection.json").write_text(json.dumps(detection) + "\n")
        advance(1)
        base = {"img_id": img_id, "img_name": f"{folder}/source.jpg", "location": "Lung", "modality": "X-Ray"}
        qas = questions(case, rng, yes="Yes", no="No")
        for qa in qas:
            records[splits[index]].append(
                {
                    **base,
                    "question": qa.question,
                    "answer": qa.answer,
                    "q_lang": "en",
                    "answer_type": "CLOSED" if qa.closed else "OPEN",
                    "base_type": "vqa",
                    "content_type": _CONTENT[qa.kind],
                    "triple": ["vhead", "_", "_"],
                    "qid": qid,
                }
            )
            qid += 1
        records[splits[index]].append(
            {
                **base,
                "question": "这张图片是什么成像方式？",
                "answer": "X光",
                "q_lang": "zh",
                "answer_type": "OPEN",
                "base_type": "vqa",
                "content_type": "Modality",
                "triple": ["vhead", "_", "_"],
                "qid": qid,
            }
        )
        qid += 1
        mask = save_mask(out, f"slake/{folder}", case.mask) if case.mask is not None else None
        truth[rel] = {
            "id": folder,
            "split": splits[index],
            **case_truth(case, mask),
            "qa": [{"question": q.question, "answer": q.answer, "closed": q.closed} for q in qas],
        }
    for split in SPLITS:
        (out / ROOT / f"{split}.json").write_text(
            json.dumps(records[split], ensure_ascii=False, indent=1) + "\n"
        )
    return {
        "counts": {
            "images": n,
            "questions": qid,
            "english": qid - n,
            **{f"{s}_images": splits.count(s) for s in SPLITS},
        },
        "paths": {s: f"{ROOT}/{s}.json" for s in SPLITS} | {"images": f"{ROOT}/imgs"},
        "truth": truth,
    }
