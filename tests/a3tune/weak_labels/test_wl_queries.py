"""Golden query strings per dataset and branch (A3TUNE.md §A.3), official (typos kept) and clean."""

from __future__ import annotations

import pytest

from medpeft.a3tune.weak_labels import clean_query, default_top_k, official_query
from medpeft.errors import ConfigError

Q = "What organ is shown?"

GOLDEN = [
    # dataset, location, official, clean
    ("slake", "chest", "Medical image of chest and lungs. What organ is shown?",
     "Medical image of chest and lungs. What organ is shown?"),
    ("slake", "abdomen", "Medical imgaing of abdomen.What organ is shown?",
     "Medical imaging of abdomen. What organ is shown?"),
    ("slake", "brain", "Medical image of brain.What organ is shown?", "Medical image of brain. What organ is shown?"),
    ("vqa-rad", "chest", "Medical image of chest and lungs. What organ is shown?",
     "Medical image of chest and lungs. What organ is shown?"),
    ("vqa-rad", "abd", "Medical imgaing of abdomen CT.What organ is shown?",
     "Medical imaging of abdomen CT. What organ is shown?"),
    ("vqa-rad", "head", "Medical image of head.What organ is shown?", "Medical image of head. What organ is shown?"),
    ("pathvqa", None, "Medical image of pathology.What organ is shown?",
     "Medical image of pathology. What organ is shown?"),
    ("mimic-cxr", None, "Medical image of lungs and chest X-ray.", "Medical image of lungs and chest X-ray."),
    ("iu-xray", None, "Medical image of lungs and chest X-ray.", "Medical image of lungs and chest X-ray."),
]  # fmt: skip


@pytest.mark.parametrize(("dataset", "location", "official", "clean"), GOLDEN)
def test_golden_strings(dataset, location, official, clean):
    assert official_query(dataset, Q, location) == official
    assert clean_query(dataset, Q, location) == clean


def test_branch_test_is_case_sensitive_officially_and_not_when_clean():
    # The authors test `"chest" in location` literally; an upper-case organ falls to the generic branch.
    assert official_query("vqa-rad", Q, "CHEST") == "Medical image of CHEST.What organ is shown?"
    assert clean_query("vqa-rad", Q, "CHEST") == "Medical image of CHEST and lungs. What organ is shown?"
    assert official_query("slake", Q, "Chest_heart") == "Medical image of Chest_heart.What organ is shown?"
    assert clean_query("slake", Q, "ABD") == "Medical imaging of abdomen. What organ is shown?"


def test_turn_datasets_drop_the_image_tag_and_reports_ignore_the_question():
    assert official_query("omnimedvqa", "<image>\nWhat is it?") == "What is it?"
    assert official_query("ol3i", "<image>\nIs it?") == "Is it?"
    assert official_query("mimic-cxr", None) == "Medical image of lungs and chest X-ray."


def test_missing_inputs_and_defaults():
    with pytest.raises(ConfigError, match="question"):
        official_query("slake", None, "chest")
    with pytest.raises(ConfigError, match="location"):
        official_query("slake", Q, "")
    with pytest.raises(ConfigError, match="unknown dataset"):
        official_query("imagenet", Q)
    assert [default_top_k(d) for d in ("slake", "vqa-rad", "pathvqa", "mimic-cxr", "iu-xray", "omnimedvqa")] == [
        8, 8, 8, 4, 4, 4,
    ]  # fmt: skip
