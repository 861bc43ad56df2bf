"""`medpeft weak-labels` end to end (regions + tiny scorer) and its --help."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from wl_helpers import make_dataset

from medpeft import cli
from medpeft.commands import weak_labels as command

FLAGS = [
    "--data", "--out", "--proposer", "--checkpoint", "--scorer", "--adapter", "--top-k", "--query", "--preview",
    "--on-bad-image", "--device", "--batch-size", "--workers", "--seed", "--overwrite", "--quiet", "--bgr",
    "--dataset",
]  # fmt: skip


def subparser() -> argparse.ArgumentParser:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["weak-labels"]


def test_help_explains_every_flag(capsys):
    p = subparser()
    documented = {opt: a.help for a in p._actions for opt in a.option_strings}
    for flag in FLAGS:
        assert flag in documented, flag
        assert documented[flag] and len(documented[flag]) > 15, flag
    with pytest.raises(SystemExit):
        cli.main(["weak-labels", "--help"])
    text = capsys.readouterr().out
    assert all(flag in text for flag in FLAGS)


def test_cli_choices_match_the_library():
    from medpeft.a3tune.weak_labels import PROPOSERS, queries

    assert command.PROPOSERS == PROPOSERS
    assert command.QUERY_MODES == queries.QUERY_MODES and command.QUERY_DATASETS == queries.DATASETS


def test_end_to_end_on_a_tiny_csv(tmp_path, capsys):
    data = make_dataset(tmp_path / "d", n=2)
    out = tmp_path / "wl"
    argv = ["weak-labels", "--data", str(data), "--out", str(out), "--proposer", "regions", "--scorer", "tiny",
            "--dataset", "slake", "--top-k", "3", "--query", "clean", "--preview", "1", "--device", "cpu",
            "--quiet", "--seed", "0"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "weak labels for 2 samples" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert index["settings"]["proposer"]["name"] == "regions" and index["settings"]["scorer"] == "tiny"
    assert index["samples"]["s0"]["query"] == "Medical image of chest and lungs. Is there a lesion?"
    with np.load(out / "masks.npz", allow_pickle=False) as npz:
        assert npz["s0"].shape == (3, 256, 256) and npz["s0"].dtype == np.uint8
    assert (out / "preview.png").exists()
    # same command again: resumes; other settings: refused with a clear one-line error
    assert cli.main(argv) == 0
    assert "0 new, 2 resumed" in capsys.readouterr().out
    assert cli.main([*argv[:-2], "--seed", "1"]) == 1
    assert "other settings" in capsys.readouterr().err


def test_bad_data_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "x.csv").write_text("id,question\na,q\n")
    rc = cli.main(["weak-labels", "--data", str(tmp_path / "x.csv"), "--out", str(tmp_path / "o"),
                   "--proposer", "regions", "--scorer", "tiny", "--quiet"])  # fmt: skip
    assert rc == 1
    assert "missing column(s) image" in capsys.readouterr().err
