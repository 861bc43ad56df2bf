"""Seeded splits and nested training fractions.

Splits are made over *groups* (patients, or images where each image is its own group) so no
patient lands in two splits, and stratified by the group's label so every class is in every split
(the reference RSNA script kept only positive patients). Fractions (MGCA's 1%/10%/100% protocol)
take prefixes of one seeded permutation per class, so 1% is a subset of 10% is a subset of 100%,
and the same seed gives the same images to every method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from medpeft.errors import ConfigError, DataError

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.70, "validate": 0.15, "test": 0.15}


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of ``n * fractions`` (sums to ``n``)."""
    raw = [n * f for f in fractions]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (raw[i] - counts[i], -i), reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _assign(
    assignment: dict[str, str],
    ids: Sequence[str],
    perm: np.ndarray,
    names: Sequence[str],
    counts: Sequence[int],
) -> None:
    """Cut the permuted ``ids`` into consecutive runs of ``counts`` and give each run its split name."""
    start = 0
    for name, count in zip(names, counts, strict=True):
        for j in perm[start : start + count]:
            assignment[ids[j]] = name
        start += count


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if not fractions or any(f <= 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be positive and sum to 1, got {dict(fractions)}")


def stratified_group_split(
    group_labels: Mapping[str, int],
    *,
    seed: int,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    what: str = "group",
) -> dict[str, str]:
    """Assign every group id a split name, stratified by its label.

    For each class (in sorted order) the sorted ids are permuted with one seeded generator and cut
    by ``fractions``; each class is guaranteed at least one id per split, else ``DataError`` says
    how many the class has. The result depends only on the ids, labels, fractions and seed.
    """
    _check_fractions(fractions)
    names = list(fractions)
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[str]] = {}
    for gid, label in group_labels.items():
        by_class.setdefault(int(label), []).append(gid)
    assignment: dict[str, str] = {}
    for label in sorted(by_class):
        ids = sorted(by_class[label])
        if len(ids) < len(names):
            raise DataError(
                f"class {label} has only {len(ids)} {what}(s); at least {len(names)} are needed to put "
                f"it in every split ({', '.join(names)})"
            )
        counts = _counts(len(ids), [fractions[n] for n in names])
        for i in range(len(counts)):  # guarantee one per split, taken from the largest split
            if counts[i] == 0:
                counts[i] = 1
                counts[counts.index(max(counts))] -= 1
        _assign(assignment, ids, rng.permutation(len(ids)), names, counts)
    return assignment


def group_split(
    groups: Sequence[str],
    *,
    seed: int,
    fractions: Mapping[str, float],
) -> dict[str, str]:
    """Seeded unstratified split of group ids (e.g. patients) by ``fractions`` (a split may be empty)."""
    _check_fractions(fractions)
    ids = sorted(set(groups))
    counts = _counts(len(ids), list(fractions.values()))
    assignment: dict[str, str] = {}
    _assign(assignment, ids, np.random.default_rng(seed).permutation(len(ids)), list(fractions), counts)
    return assignment


def check_fraction(fraction: float) -> float:
    """A training fraction must be in (0, 1]."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"--fraction must be in (0, 1], got {fraction}")
    return float(fraction)


def nested_fraction(
    ids: Sequence[str], labels: Sequence[int] | None, fraction: float, *, seed: int
) -> set[str]:
    """The ids of a seeded ``fraction`` of ``ids``, stratified by ``labels`` when given.

    One permutation per class (independent of ``fraction``), of which the first
    ``max(1, round(fraction * n_class))`` are taken: smaller fractions are prefixes of larger ones.
    """
    fraction = check_fraction(fraction)
    if labels is None:
        labels = [0] * len(ids)
    rng = np.random.default_rng([seed, 7919])  # its own stream: independent of the split's
    by_class: dict[int, list[str]] = {}
    for gid, label in zip(ids, labels, strict=True):
        by_class.setdefault(int(label), []).append(gid)
    chosen: set[str] = set()
    for label in sorted(by_class):
        members = sorted(set(by_class[label]))
        perm = rng.permutation(len(members))
        take = max(1, round(fraction * len(members)))
        chosen.update(members[j] for j in perm[:take])
    return chosen


def fraction_name(fraction: float) -> str:
    """File name of a fraction's manifest: ``train_fraction_0.01.csv``."""
    return f"train_fraction_{fraction:g}.csv"
