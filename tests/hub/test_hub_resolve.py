"""Adapters by Hub name, offline: a temporary HF_HOME holding the Hub cache layout of adapter repos
(``hub/models--org--name/snapshots/<commit>/`` + ``refs/<branch or tag>``), as a user's cache looks after a
download. Loaded by repo id, by ``hf-hub:`` name, by revision (tag, ``@tag``, commit), a file in a repo,
an A³Tune adapter, and through ``--adapter``; a missing repo gives an error that says what was tried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from medpeft.ace_lora.config import AceLoraConfig
from medpeft.ace_lora.model import AceLoraModel
from medpeft.errors import CheckpointError, ConfigError
from medpeft.hub import HubRef, is_repo_id, parse_hub_name, resolve_adapter

MAIN = "1111111111111111111111111111111111111111"
V2 = "2222222222222222222222222222222222222222"
CFG = AceLoraConfig(rank=2, top_k=2, width=8)


def _adapter_sum(state: dict[str, torch.Tensor]) -> float:
    """One number per adapter: the float64 sum of all its tensors in key order (differs between v1 and v2)."""
    return float(sum(state[k].double().sum() for k in sorted(state)))


def _save(tiny_backbone, seed: int, folder: Path) -> float:
    import copy

    model = AceLoraModel(copy.deepcopy(tiny_backbone), CFG)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    model.save_pretrained(folder)
    model.save_official(folder / "ACE_LoRA.pt")
    return _adapter_sum(model.adapter_state_dict())


def _cache_repo(hub: Path, repo: str, snapshots: dict[str, Path], refs: dict[str, str]) -> None:
    base = hub / ("models--" + repo.replace("/", "--"))
    for commit, src in snapshots.items():
        dst = base / "snapshots" / commit
        dst.mkdir(parents=True)
        for f in src.iterdir():
            (dst / f.name).write_bytes(f.read_bytes())
    (base / "refs").mkdir(parents=True)
    for ref, commit in refs.items():
        (base / "refs" / ref).write_text(commit)


@pytest.fixture(scope="module")
def hf_home(tiny_backbone, tmp_path_factory):
    """HF_HOME with lab/ace (main -> v1, tag v2 -> v2) and lab/a3 (an A³Tune adapter); expected sums."""
    root = tmp_path_factory.mktemp("hub")
    sums = {"v1": _save(tiny_backbone, 1, root / "v1"), "v2": _save(tiny_backbone, 2, root / "v2")}
    assert sums["v1"] != sums["v2"]
    hub = root / "hf" / "hub"
    _cache_repo(hub, "lab/ace", {MAIN: root / "v1", V2: root / "v2"}, {"main": MAIN, "v2": V2})

    from medpeft.a3tune import A3TuneConfig, A3TuneModel
    from medpeft.backbones.llava import load_llava

    a3 = A3TuneModel(
        load_llava("llava-tiny", seed=0), A3TuneConfig(q_experts=2, k_experts=2, k_top=1, moe_rank=2)
    )
    with torch.no_grad():
        for p in a3.trainable_parameters().values():
            p.add_(0.01)
    a3.save_pretrained(root / "a3")
    sums["a3"] = _adapter_sum({k: v.detach() for k, v in a3.trainable_parameters().items()})
    _cache_repo(hub, "lab/a3", {MAIN: root / "a3"}, {"main": MAIN})
    return root / "hf", sums


SCRIPT = textwrap.dedent("""
    import json, sys, torch
    from medpeft.ace_lora.model import AceLoraModel
    from medpeft.backbones.clip import load_backbone
    from medpeft.commands.model_options import check_adapter
    from medpeft.errors import CheckpointError

    def total(state):
        return float(sum(state[k].double().sum() for k in sorted(state)))

    out = {}
    for case, spec, rev in [
        ("repo_id", "lab/ace", None),
        ("hf_hub", "hf-hub:lab/ace", None),
        ("revision_tag", "lab/ace", "v2"),
        ("at_tag", "hf-hub:lab/ace@v2", None),
        ("revision_commit", "lab/ace", "%(v2)s"),
        ("file_in_repo", "hf-hub:lab/ace/ACE_LoRA.pt", None),
        ("file_in_repo_v2", "hf-hub:lab/ace/ACE_LoRA.pt@v2", None),
    ]:
        model = AceLoraModel.from_pretrained(load_backbone("tiny"), spec, revision=rev)
        out[case] = total(model.adapter_state_dict())
    out["cli_path"] = check_adapter("lab/ace@v2")
    import tempfile
    from medpeft.ace_lora.conversion import convert
    conv = convert("hf-hub:lab/ace/ACE_LoRA.pt", tempfile.mkdtemp() + "/conv", backbone="tiny")
    out["convert"] = total(AceLoraModel.from_pretrained(load_backbone("tiny"), conv).adapter_state_dict())
    from medpeft.a3tune import A3TuneModel
    from medpeft.backbones.llava import load_llava
    a3 = A3TuneModel.from_pretrained(load_llava("llava-tiny", seed=0), "hf-hub:lab/a3")
    out["a3"] = total({k: v.detach() for k, v in a3.trainable_parameters().items()})
    for case, spec in [("missing", "lab/missing"), ("missing_tag", "hf-hub:lab/ace@nope")]:
        try:
            check_adapter(spec)
            out[case] = "loaded"
        except CheckpointError as err:
            out[case] = str(err)
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def offline_results(hf_home, tmp_path_factory):
    """Run every load in one fresh interpreter with HF_HOME set and HF_HUB_OFFLINE=1 (huggingface_hub reads
    both when imported, as in a user's shell)."""
    home, sums = hf_home
    cwd = tmp_path_factory.mktemp("cwd")  # no local lab/ace here
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN"):
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2] / "src"), env.get("PYTHONPATH", "")]
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT % {"v2": V2}],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT")), sums, home


@pytest.mark.parametrize(
    ("case", "version"),
    [
        ("repo_id", "v1"),
        ("hf_hub", "v1"),
        ("revision_tag", "v2"),
        ("at_tag", "v2"),
        ("revision_commit", "v2"),
        ("file_in_repo", "v1"),
        ("file_in_repo_v2", "v2"),
        ("a3", "a3"),
        ("convert", "v1"),
    ],
)
def test_loads_from_the_cache_offline(offline_results, case, version):
    got, sums, _ = offline_results
    assert got[case] == pytest.approx(sums[version], rel=1e-12, abs=1e-9)


def test_cli_adapter_resolves_into_the_cache(offline_results):
    got, _, home = offline_results
    assert Path(got["cli_path"]) == home / "hub" / "models--lab--ace" / "snapshots" / V2


def test_missing_repo_offline_says_what_was_tried(offline_results):
    got, _, home = offline_results
    msg = got["missing"]
    assert msg.startswith("adapter not found: tried the local path ./lab/missing (does not exist), then the ")
    assert "Hugging Face Hub repo lab/missing (revision main)" in msg
    assert f"cache {home / 'hub'}" in msg and "HF_HUB_OFFLINE=1: only the cache was looked at" in msg
    # hf-hub: never looks for a local path; the unknown tag is named
    tag = got["missing_tag"]
    assert "local path" not in tag and "repo lab/ace (revision nope)" in tag


def test_local_folder_of_the_same_name_wins(tiny_backbone, tmp_path, monkeypatch):
    """``org/name`` that exists on disk is the local folder: nothing is asked of the Hub (which would fail here:
    the cache is empty and offline is forced)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)
    want = _save(tiny_backbone, 3, tmp_path / "lab" / "ace")
    assert resolve_adapter("lab/ace") == Path("lab/ace")
    import copy

    model = AceLoraModel.from_pretrained(copy.deepcopy(tiny_backbone), "lab/ace")
    assert _adapter_sum(model.adapter_state_dict()) == pytest.approx(want, rel=1e-12)
    with pytest.raises(CheckpointError, match=r"repo lab/ace \(revision main\)"):
        resolve_adapter("hf-hub:lab/ace")  # the explicit Hub form does not fall back to the folder


def test_names_that_are_neither_path_nor_repo(tmp_path):
    with pytest.raises(
        CheckpointError, match=r"adapter not found: no/such/adapter \(no adapter folder or file"
    ):
        resolve_adapter("no/such/adapter")
    with pytest.raises(CheckpointError, match="adapter not found: missing.pt"):
        resolve_adapter("missing.pt")
    with pytest.raises(ConfigError, match="'bad' is not a Hugging Face repo id"):
        resolve_adapter("hf-hub:bad")


def test_parse_hub_name():
    assert parse_hub_name("lab/ace") == HubRef("lab/ace")
    assert parse_hub_name("hf-hub:lab/ace@v2") == HubRef("lab/ace", "v2")
    assert parse_hub_name("hf-hub:lab/ace", revision="v3") == HubRef("lab/ace", "v3")
    assert parse_hub_name("hf-hub:lab/ace/sub/ACE_LoRA.pt@v2") == HubRef("lab/ace", "v2", "sub/ACE_LoRA.pt")
    with pytest.raises(ConfigError, match="revision 'v2' in the name but revision='v3' given"):
        parse_hub_name("lab/ace@v2", revision="v3")
    with pytest.raises(ConfigError, match="empty revision"):
        parse_hub_name("lab/ace@")
    assert [is_repo_id(s) for s in ("lab/ace", "a/b.c-d_e", "lab", "a/b/c", "./a", "/a/b", "a/..")] == [
        True,
        True,
        False,
        False,
        False,
        False,
        False,
    ]
