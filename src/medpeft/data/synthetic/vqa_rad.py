"""Synthetic VQA-RAD (questions on chest X-rays with known lesions).

Layout written (under ``out``), as in the public OSF release::

    VQA_RAD Dataset Public.json      list of {qid, phrase_type, qid_linked_id, image_case_url, image_name,
                                     image_organ, evaluation, question, question_rephrase,
                                     question_relation, question_frame, question_type, answer, answer_type}
    VQA_RAD Image Folder/synpic<N>.jpg

About 80 % of the images are training images (``phrase_type`` "freeform"/"para"), the rest test images
("test_freeform"/"test_para"). As in the real release, one test image also carries a training question
(the leakage ``prepare`` removes by default). The truth sidecar keeps each image's finding and lesion mask.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medpeft.data.synthetic.output import Advance, image_rng, save_gray, save_mask
from medpeft.data.synthetic.vqa import case_truth, image_splits, questions, render_case, sample_finding

STREAM = 9
JSON_FILE = "VQA_RAD Dataset Public.json"
IMAGES = "VQA_RAD Image Folder"
_TYPE = {"presence": "PRES", "normal": "ABN", "abnormality": "ABN", "location": "POS"}


def total_images(n: int) -> int:
    """Number of image files for ``n`` (exactly ``n``)."""
    return n


def write(out: Path, n: int, seed: int, image_size: int, advance: Advance) -> dict[str, Any]:
    """Write ``n`` images and the question JSON in the VQA-RAD layout."""
    plan = image_rng(seed, STREAM, -1)
    splits = image_splits(n, plan, ("train", "test"), (0.8, 0.2))
    rows: list[dict[str, Any]] = []
    truth: dict[str, Any] = {}
    leaked = None
    for index in range(n):
        rng = image_rng(seed, STREAM, index)
        case = render_case(rng, image_size, sample_finding(rng))
        name = f"synpic{10000 + index}.jpg"
        rel = f"{IMAGES}/{name}"
        save_gray(out / rel, case.rendered.image)
        advance(1)
        test = splits[index] == "test"
        qas = questions(case, rng)
        for j, qa in enumerate(qas):
            phrase = "freeform" if j % 2 == 0 else "para"
            rows.append(
                {
                    "qid": len(rows) + 1,
                    "phrase_type": f"test_{phrase}" if test else phrase,
                    "qid_linked_id": f"{index:05d}",
                    "image_case_url": f"https://medpix.nlm.nih.gov/case?id=synthetic-{index}",
                    "image_name": name,
                    "image_organ": "CHEST",
                    "evaluation": "not evaluated",
                    "question": qa.question,
                    "question_rephrase": "NULL",
                    "question_relation": "NULL",
                    "question_frame": "NULL",
                    "question_type": _TYPE[qa.kind],
                    "answer": qa.answer,
                    "answer_type": "CLOSED" if qa.closed else "OPEN",
                }
            )
        if test and leaked is None:  # the real split shares images between train and test
            leaked = name
            rows.append({**rows[-1], "qid": len(rows) + 1, "phrase_type": "freeform"})
        mask = save_mask(out, f"vqa_rad/{name[:-4]}", case.mask) if case.mask is not None else None
        truth[rel] = {
            "id": name,
            "split": splits[index],
            **case_truth(case, mask),
            "qa": [{"question": q.question, "answer": q.answer, "closed": q.closed} for q in qas],
        }
    (out / JSON_FILE).write_text(json.dumps(rows, indent=1) + "\n")
    return {
        "counts": {
            "images": n,
            "questions": len(rows),
            "test_images": splits.count("test"),
            "images_in_train_and_test": int(leaked is not None),
        },
        "paths": {"json": JSON_FILE, "images": IMAGES},
        "truth": truth,
    }
