"""Golden tests of the generation metrics: the authors' normaliser, closed accuracy and open recall (A3TUNE.md §F,
LLaVA-Med run_eval.py / evaluate_metrics.py behaviour), exact match, token F1, BLEU/ROUGE through their
packages, and the seeded bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from medpeft.evaluation.generation_metrics import (
    bleu_scores,
    bootstrap_ci,
    closed_hit,
    exact_match,
    normalize_word,
    rouge_l,
    sample_scores,
    summarize,
    token_prf,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes, there is", "yes there is"),  # ", " -> the comma is deleted
        ("left,right", "left right"),  # no space beside it -> becomes a space
        ("The lung.", "lung"),  # article dropped, final period deleted
        ("An X-ray", "x ray"),  # hyphen without spaces -> space
        ("1,000 cells", "1000 cells"),  # digit-comma-digit: punctuation deleted, not spaced
        ("3.5 cm", "3.5 cm"),  # a period before a digit is kept
        ("Two kidneys", "2 kidneys"),  # number words
        ("none", "0"),
        ("it dont hurt", "it don't hurt"),  # contractions restored
        ("Im fine", "im fine"),  # the table's capitalised keys never match after lower-casing
        ("a  b   c", "b c"),  # 'a' is an article; whitespace collapsed
        ("(left) lung?", "left lung"),
    ],
)
def test_normalize_word_golden(text, expected):
    assert normalize_word(text) == expected


def test_normalize_word_removes_at_most_32_periods():
    # the authors pass re.UNICODE (32) as re.sub's count: the 33rd period survives
    text = "x." * 33
    out = normalize_word(text)
    assert out.count(".") == 1 and out.endswith("x.")


@pytest.mark.parametrize(
    ("pred", "gt", "hit"),
    [
        ("Yes, there is", "yes", 1),
        ("yes", "no", 0),
        ("No.", "no", 1),
        ("There is no square", "no", 1),
        ("left", "left", 0),  # neither yes nor no in the prediction -> 0, even when equal
        ("not normal", "normal", 1),  # 'no' is a substring of 'not': the authors' substring test
        ("yes", "Yes!", 1),
    ],
)
def test_closed_accuracy_golden(pred, gt, hit):
    assert closed_hit(pred, gt) == hit


def test_open_recall_and_f1_golden():
    assert token_prf("left lung", "right lung") == (0.5, 0.5, 0.5)
    p, r, f = token_prf("the right lung and the heart", "right lung")
    assert (p, r) == (0.5, 1.0) and f == pytest.approx(2 / 3)
    assert token_prf("", "lung") == (0.0, 0.0, 0.0)
    assert token_prf("heart", "lung") == (0.0, 0.0, 0.0)
    assert token_prf("lung lung", "lung") == (0.5, 1.0, pytest.approx(2 / 3))  # counts, not sets


def test_exact_match_uses_the_normalised_strings():
    assert exact_match("The Left Lung.", "left lung") == 1
    assert exact_match("left lung", "right lung") == 0


def test_sample_scores_split_closed_and_open():
    closed = sample_scores("Yes, there is", "yes", "closed")
    opened = sample_scores("left lung", "right lung", "open")
    assert set(closed) == {"exact_match", "f1", "precision", "recall", "closed_accuracy"}
    assert set(opened) == {"exact_match", "f1", "precision", "recall", "open_recall"}
    assert closed["closed_accuracy"] == 1.0 and opened["open_recall"] == 0.5


def test_bleu_and_rouge_through_their_packages():
    import sacrebleu
    from rouge_score import rouge_scorer

    preds = ["the heart is normal in size", "no pleural effusion"]
    refs = ["heart size is normal", "there is no pleural effusion"]
    got = bleu_scores(preds, refs)
    assert set(got) == {"bleu1", "bleu2", "bleu3", "bleu4"}
    ref4 = sacrebleu.corpus_bleu(preds, [refs], lowercase=True).score
    assert got["bleu4"] == pytest.approx(ref4)
    assert got["bleu1"] >= got["bleu2"] >= got["bleu3"] >= got["bleu4"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = [100 * scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs, strict=True)]
    assert rouge_l(preds, refs) == pytest.approx(expected)
    assert bleu_scores(["a b c d"], ["a b c d"])["bleu4"] == pytest.approx(100.0)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(1).random(50)
    a = bootstrap_ci(values, seed=3, n_boot=300)
    assert a == bootstrap_ci(values, seed=3, n_boot=300)
    assert a != bootstrap_ci(values, seed=4, n_boot=300)
    assert a[0] < values.mean() < a[1]
    assert bootstrap_ci([1.0]) is None


def test_summarize_reports_each_metric_over_its_own_samples():
    preds = ["yes", "no", "left lung", "the heart is normal"]
    answers = ["yes", "yes", "right lung", "heart normal"]
    types = ["closed", "closed", "open", "report"]
    per_sample, summary = summarize(preds, answers, types, n_boot=50)
    assert len(per_sample) == 4
    assert summary["closed_accuracy"] == 50.0 and summary["closed_accuracy_n"] == 2
    assert summary["open_recall"] == 50.0 and summary["open_recall_n"] == 1
    assert summary["exact_match_n"] == 4 and summary["exact_match"] == 25.0
    assert {"bleu1", "bleu4", "rouge_l"} <= set(summary) and summary["n_report"] == 1
    assert per_sample[3]["rouge_l"] == pytest.approx(summary["rouge_l"])
