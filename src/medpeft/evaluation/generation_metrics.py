"""Metrics of generated answers: the authors' VQA definitions (A3TUNE.md §F), exact match, token F1, and for
reports BLEU-1…4 (sacrebleu) and ROUGE-L (rouge-score), with seeded bootstrap confidence intervals.

The authors' definitions (LLaVA-Med's ``run_eval.py``/``evaluate_metrics.py``, which A³Tune reuses), ported
behaviour for behaviour, quirks included, because published numbers were computed with them:

- :func:`normalize_word` — the VQA-eval normaliser (via ViLT): punctuation next to a space (or any punctuation
  when the text holds a digit-comma-digit) is deleted, other punctuation becomes a space; periods not followed
  by a digit are deleted, **at most 32 of them** (the authors pass ``re.UNICODE`` (= 32) as ``re.sub``'s
  ``count``); lower case; number words none/zero…ten → digits; articles a/an/the dropped; apostrophe-less
  contractions restored ("dont" → "don't"); remaining commas deleted.
- :func:`closed_hit` — 1 if "yes" or "no" occurs (as a substring) in the normalised prediction **and** the
  normalised ground truth is a substring of it; else 0.
- :func:`token_prf` — unigram counts of the normalised strings: tp = Σ min(counts), precision tp/(tp+fp),
  recall tp/(tp+fn) (the "open recall"), F1; all three 0 when either side is empty or tp = 0.

``exact_match`` here is the normalised strings being equal (the authors' function of that name is a different
token ratio and is not reported).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medpeft.errors import ConfigError

_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCT = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
# The lookbehind of the original is mistyped ("(?!<=\d)"): it is a lookahead that never fires before a period, so
# every period not followed by a digit is removed.
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_IN_NUMBER = re.compile(r"(\d)(\,)(\d)")
_PERIOD_COUNT = int(re.UNICODE)  # the authors' re.sub(pattern, "", text, re.UNICODE): count = 32

# The VQA-eval contraction table (apostrophe-less spelling -> spelling), keys as the authors have them: the
# capitalised ones (Id've, Im, Ive) can never match after lower-casing, exactly as in the original.
_CONTRACTIONS = dict(
    pair.split("=")
    for pair in (
        "aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've "
        "couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've "
        "hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's "
        "howd=how'd howll=how'll hows=how's Id've=I'd've I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd "
        "itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am mightnt=mightn't "
        "mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've "
        "neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at "
        "'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've "
        "shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd "
        "somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's "
        "someoned=someone'd someoned've=someone'd've someone'dve=someone'd've someonell=someone'll "
        "someones=someone's somethingd=something'd somethingd've=something'd've "
        "something'dve=something'd've somethingll=something'll thats=that's thered=there'd "
        "thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd "
        "theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas "
        "wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're "
        "whats=what's whatve=what've whens=when's whered=where'd wheres=where's whereve=where've whod=who'd "
        "whod've=who'd've who'dve=who'd've wholl=who'll whos=who's whove=who've whyll=why'll whyre=why're "
        "whys=why's wont=won't wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've "
        "wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've "
        "y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've "
        "youll=you'll youre=you're youve=you've"
    ).split()
)

VQA_METRICS = ("closed_accuracy", "open_recall", "exact_match", "f1", "precision", "recall")
REPORT_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l")


def normalize_word(text: str) -> str:
    """The authors' answer normaliser (module docstring), quirks included."""
    out = text
    has_number_comma = _COMMA_IN_NUMBER.search(text) is not None
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD.sub("", out, count=_PERIOD_COUNT)
    words = [_NUMBERS.get(w, w) for w in out.lower().split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words).replace(",", "")


def closed_hit(prediction: str, answer: str) -> int:
    """The authors' closed ("yes/no") accuracy of one answer (module docstring)."""
    pred, gt = normalize_word(prediction.lower()), normalize_word(answer.lower())
    return int(("yes" in pred or "no" in pred) and gt in pred)


def token_prf(prediction: str, answer: str) -> tuple[float, float, float]:
    """(precision, recall, F1) over normalised unigram counts (the authors' ``calculate_f1score``)."""
    # run_eval normalises both strings, then calculate_f1score normalises them again
    cand = Counter(normalize_word(normalize_word(prediction.lower())).split())
    ref = Counter(normalize_word(normalize_word(answer.lower())).split())
    tp = sum((cand & ref).values())
    if not cand or not ref or tp == 0:
        return 0.0, 0.0, 0.0
    precision = tp / sum(cand.values())
    recall = tp / sum(ref.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, answer: str) -> int:
    """1 when the normalised strings are equal."""
    return int(normalize_word(prediction.lower()) == normalize_word(answer.lower()))


def sample_scores(prediction: str, answer: str, answer_type: str) -> dict[str, float]:
    """Every per-sample score of one answer; ``closed_accuracy`` only for closed questions, ``open_recall``
    only for open ones (the authors' split), the rest for all."""
    precision, recall, f1 = token_prf(prediction, answer)
    scores: dict[str, float] = {
        "exact_match": float(exact_match(prediction, answer)),
        "f1": f1,
        "precision": precision,
        "recall": recall,
    }
    if answer_type == "closed":
        scores["closed_accuracy"] = float(closed_hit(prediction, answer))
    elif answer_type == "open":
        scores["open_recall"] = recall
    return scores


def bleu_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU-1…4 (sacrebleu, 13a tokenisation, lower-cased), in 0–100. BLEU-n is sacrebleu's BLEU with
    ``max_ngram_order=n`` (geometric mean of the 1…n-gram precisions, brevity penalty)."""
    from sacrebleu.metrics import BLEU

    out = {}
    for n in range(1, 5):
        bleu = BLEU(max_ngram_order=n, lowercase=True, effective_order=True)
        out[f"bleu{n}"] = float(bleu.corpus_score(list(predictions), [list(references)]).score)
    return out


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-sample ROUGE-L F-measure (rouge-score, Porter stemming), in 0–100."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [
        100.0 * scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)
    ]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    statistic: Callable[[np.ndarray], float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of ``statistic`` (default: the mean) over samples, seeded (None for < 2 values).
    ``values`` may be ``[N]`` or ``[N, ...]`` (rows are resampled)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape[0] < 2:
        return None
    if not 0 < level < 1:
        raise ConfigError(f"confidence level must be in (0, 1), got {level}")
    stat = statistic or (lambda a: float(a.mean()))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.shape[0], size=(n_boot, arr.shape[0]))
    boots = np.array([stat(arr[i]) for i in idx])
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def summarize(
    predictions: Sequence[str],
    answers: Sequence[str],
    answer_types: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """(per-sample scores, summary): each VQA metric's mean (in %), its sample count and bootstrap CI; for
    report samples corpus BLEU-1…4 and mean ROUGE-L (bootstrapped over report samples)."""
    n = len(predictions)
    if not (len(answers) == n == len(answer_types)):
        raise ConfigError("predictions, answers and answer types must have the same length")
    per_sample = [sample_scores(p, a, t) for p, a, t in zip(predictions, answers, answer_types, strict=True)]
    summary: dict[str, Any] = {
        "n": n,
        "n_closed": answer_types.count("closed"),
        "n_open": answer_types.count("open"),
    }
    for metric in VQA_METRICS:
        values = [s[metric] for s in per_sample if metric in s]
        if not values:
            continue
        ci = bootstrap_ci(values, n_boot=n_boot, seed=seed)
        summary[metric] = 100.0 * float(np.mean(values))
        summary[f"{metric}_n"] = len(values)
        summary[f"{metric}_ci"] = None if ci is None else [100.0 * ci[0], 100.0 * ci[1]]
    reports = [i for i, t in enumerate(answer_types) if t == "report"]
    if reports:
        preds = [predictions[i] for i in reports]
        refs = [answers[i] for i in reports]
        summary.update(bleu_scores(preds, refs))
        rl = rouge_l(preds, refs)
        for i, v in zip(reports, rl, strict=True):
            per_sample[i]["rouge_l"] = v
        summary["rouge_l"] = float(np.mean(rl))
        summary["rouge_l_ci"] = bootstrap_ci(rl, n_boot=n_boot, seed=seed)
        pairs = np.arange(len(reports))

        def _bleu4(rows: np.ndarray) -> float:
            chosen = rows.astype(int).tolist()
            return bleu_scores([preds[i] for i in chosen], [refs[i] for i in chosen])["bleu4"]

        summary["bleu4_ci"] = bootstrap_ci(pairs, statistic=_bleu4, n_boot=min(n_boot, 200), seed=seed)
        summary["n_report"] = len(reports)
    return per_sample, summary
