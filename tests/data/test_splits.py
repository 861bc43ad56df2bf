"""Seeded group splits and nested fractions (MGCA's 1% / 10% / 100% protocol)."""

from __future__ import annotations

import pytest

from medpeft.data.prepare.splits import fraction_name, group_split, nested_fraction, stratified_group_split
from medpeft.errors import ConfigError, DataError

LABELS = {f"id{i:04d}": int(i % 10 == 0) for i in range(1000)}  # 10% positive


def test_stratified_split_proportions_and_both_classes():
    split = stratified_group_split(LABELS, seed=0)
    assert set(split) == set(LABELS)
    for name, share in (("train", 0.70), ("validate", 0.15), ("test", 0.15)):
        ids = [k for k, s in split.items() if s == name]
        assert abs(len(ids) - share * 1000) <= 2
        assert {LABELS[k] for k in ids} == {0, 1}
        assert abs(sum(LABELS[k] for k in ids) - share * 100) <= 1


def test_split_depends_on_seed_not_on_order():
    shuffled = dict(reversed(list(LABELS.items())))
    assert stratified_group_split(LABELS, seed=5) == stratified_group_split(shuffled, seed=5)
    assert stratified_group_split(LABELS, seed=5) != stratified_group_split(LABELS, seed=6)


def test_group_split_and_bad_fractions():
    split = group_split(["a", "b", "a", "c"], seed=0, fractions={"train": 0.5, "validate": 0.5})
    assert set(split) == {"a", "b", "c"}
    with pytest.raises(ConfigError, match="sum to 1"):
        group_split(["a"], seed=0, fractions={"train": 0.5})
    with pytest.raises(DataError, match="class 1 has only 1 patient"):
        stratified_group_split({"a": 1, "b": 0, "c": 0, "d": 0}, seed=0, what="patient")


def test_nested_fractions():
    ids, labels = list(LABELS), list(LABELS.values())
    one, ten, full = (nested_fraction(ids, labels, f, seed=3) for f in (0.01, 0.1, 1.0))
    assert one < ten < full == set(ids)
    assert len(one) == 10 and len(ten) == 100  # 9 + 1 and 90 + 10 (stratified)
    assert {LABELS[k] for k in one} == {0, 1}
    assert nested_fraction(ids, labels, 0.1, seed=3) == ten
    assert nested_fraction(ids, labels, 0.1, seed=4) != ten
    assert nested_fraction(ids, None, 0.05, seed=0) < nested_fraction(ids, None, 0.5, seed=0)
    with pytest.raises(ConfigError, match=r"--fraction must be in \(0, 1\]"):
        nested_fraction(ids, labels, 0.0, seed=0)
    assert fraction_name(0.01) == "train_fraction_0.01.csv" and fraction_name(1.0) == "train_fraction_1.csv"
