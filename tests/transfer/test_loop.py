"""The shared loop's bookkeeping: data order, schedule, output folder and resume checks."""

from __future__ import annotations

import json

import pytest

from medpeft.errors import ConfigError, OutputExistsError
from medpeft.transfer.finetune_loop import CONFIG_FILE, LoopConfig, claim_out_dir, epoch_batches


def test_epoch_order_is_seeded_and_covers_the_split() -> None:
    a = epoch_batches(10, 3, seed=1, epoch=0, processes=1, rank=0)
    assert a == epoch_batches(10, 3, seed=1, epoch=0, processes=1, rank=0)
    assert a != epoch_batches(10, 3, seed=1, epoch=1, processes=1, rank=0)
    assert a != epoch_batches(10, 3, seed=2, epoch=0, processes=1, rank=0)
    assert sorted(i for b in a for i in b) == list(range(10)) and [len(b) for b in a] == [3, 3, 3, 1]


def test_processes_get_equal_disjoint_shares() -> None:
    shares = [epoch_batches(10, 3, seed=0, epoch=0, processes=3, rank=r) for r in range(3)]
    assert [len(s) for s in shares] == [2, 2, 2]  # 4 batches padded to 6 by wrapping around
    single = epoch_batches(10, 3, seed=0, epoch=0, processes=1, rank=0)
    padded = single + single[:2]
    assert shares == [padded[r::3] for r in range(3)]  # the same batches, dealt round-robin


def test_out_dir_is_claimed_once(tmp_path) -> None:
    out = tmp_path / "run"
    assert claim_out_dir(out, {"lr": 1}, resume=False) is False
    assert json.loads((out / CONFIG_FILE).read_text()) == {"lr": 1}
    with pytest.raises(OutputExistsError, match="already holds results"):
        claim_out_dir(out, {"lr": 1}, resume=False)
    assert claim_out_dir(out, {"lr": 1}, resume=True) is False  # nothing checkpointed yet: start fresh
    with pytest.raises(ConfigError, match=r"settings differ.*lr: stored 1, now 2"):
        claim_out_dir(out, {"lr": 2}, resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a medpeft finetune run"):
        claim_out_dir(tmp_path / "other", {}, resume=True)


@pytest.mark.parametrize("field,value", [("epochs", 0), ("batch_size", 0), ("lr", 0.0), ("grad_accum", 0)])
def test_bad_loop_settings(tmp_path, field: str, value) -> None:
    with pytest.raises(ConfigError, match=field):
        LoopConfig(out_dir=tmp_path, **{field: value})


def test_precision_can_change_between_runs_in_one_process(tmp_path) -> None:
    from medpeft.runtime import make_accelerator

    assert make_accelerator("bf16", "cpu").mixed_precision == "bf16"
    assert make_accelerator("fp32", "cpu").mixed_precision == "no"
