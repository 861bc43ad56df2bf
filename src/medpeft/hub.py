"""Adapters on the Hugging Face Hub: where an adapter name points, and how a folder is uploaded.

Every ``from_pretrained`` and every ``--adapter`` resolves its name here, so the rules are one: a local path
wins when it exists; ``hf-hub:org/name`` (optionally ``@revision`` and a file inside the repo) always means
the Hub; a bare ``org/name`` that is not a local path means the Hub. Files come through
``huggingface_hub.snapshot_download``/``hf_hub_download``, so the user's cache, ``HF_HUB_OFFLINE`` and the
token from the usual places (``HF_TOKEN``, ``hf auth login``) all work as they do for transformers and peft.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medpeft.errors import CheckpointError, ConfigError

HF_PREFIX = "hf-hub:"
# a Hub repo id: "org/name" (letters, digits, '-', '_', '.'; no leading '.' or '-')
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: What ``push_folder`` uploads: the card, the configs, the weights and ``medpeft eval``'s summaries. Not
#: ``predictions.csv`` (one row per image of a possibly credentialed dataset), plots or training checkpoints.
EVAL_FILES = ("results.md", "metrics.json", "summary.json")
UPLOAD_PATTERNS = (
    "README.md",
    "adapter_config.json",
    "a3tune_config.json",
    "*.safetensors",
    *EVAL_FILES,
    *(f"*/{name}" for name in EVAL_FILES),
)


@dataclass(frozen=True)
class HubRef:
    """A parsed Hub adapter name: the repo, an optional revision and an optional file inside the repo."""

    repo_id: str
    revision: str | None = None
    filename: str | None = None


def is_repo_id(text: str) -> bool:
    """True for ``org/name`` (the form peft's ``PeftModel.from_pretrained`` takes)."""
    return bool(_REPO_ID.match(text)) and ".." not in text


def parse_hub_name(spec: str, revision: str | None = None) -> HubRef:
    """``[hf-hub:]org/name[/file/in/repo][@revision]`` -> ``HubRef``; ``revision`` given twice must agree."""
    text = spec.removeprefix(HF_PREFIX)
    rev = None
    if "@" in text:
        text, rev = text.rsplit("@", 1)
        if not rev:
            raise ConfigError(f"adapter {spec!r}: empty revision after '@'")
    if rev and revision and rev != revision:
        raise ConfigError(f"adapter {spec!r}: revision {rev!r} in the name but revision={revision!r} given")
    parts = text.split("/")
    repo_id = "/".join(parts[:2])
    filename = "/".join(parts[2:]) or None
    if not is_repo_id(repo_id):
        raise ConfigError(
            f"adapter {spec!r}: {repo_id!r} is not a Hugging Face repo id (expected 'org/name')"
        )
    return HubRef(repo_id=repo_id, revision=rev or revision, filename=filename)


def resolve_adapter(
    spec: str | os.PathLike[str], *, revision: str | None = None, token: str | bool | None = None
) -> Path:
    """The local path (folder or file) that an adapter name stands for, downloading it if needed.

    ``spec``: a local folder or file (wins when it exists), ``hf-hub:org/name[/file][@rev]`` (always the Hub),
    or ``org/name`` (the Hub when no local path of that name exists). ``revision`` (branch, tag or commit)
    applies to Hub names. Raises ``CheckpointError`` naming what was tried.
    """
    text = os.fspath(spec)
    explicit = text.startswith(HF_PREFIX)
    if not explicit:
        local = Path(text).expanduser()
        if local.exists():
            return local
        if not is_repo_id(text.split("@", 1)[0]):
            raise CheckpointError(
                f"adapter not found: {text} (no adapter folder or file here, and not a Hugging Face repo id "
                "'org/name' or 'hf-hub:org/name')"
            )
    ref = parse_hub_name(text, revision)
    tried = f"the local path ./{text} (does not exist), then " if not explicit else ""
    return download(ref, token=token, tried=tried)


def download(ref: HubRef, *, token: str | bool | None = None, tried: str = "") -> Path:
    """Fetch ``ref`` through huggingface_hub (cache first; ``HF_HUB_OFFLINE=1`` uses the cache only)."""
    from huggingface_hub import constants, hf_hub_download, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{ref.repo_id}" + (f"/{ref.filename}" if ref.filename else "")
    where += f" (revision {ref.revision or 'main'})"
    try:
        if ref.filename:
            path = hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision, token=token)
        else:
            path = snapshot_download(ref.repo_id, revision=ref.revision, token=token)
    except (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
        HfHubHTTPError,
        OSError,
        ValueError,
    ) as err:
        offline = " HF_HUB_OFFLINE=1: only the cache was looked at." if constants.HF_HUB_OFFLINE else ""
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"adapter not found: tried {tried}the Hugging Face Hub repo {where}, cache {constants.HF_HUB_CACHE}."
            f"{offline} {type(err).__name__}: {reason}"
        ) from err
    return Path(path)


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    create_pr: bool = False,
) -> Any:
    """Create ``repo_id`` if needed (``exist_ok``) and upload the adapter files of ``folder`` in one commit.

    Only ``UPLOAD_PATTERNS`` go up (no training checkpoints or caches that happen to sit in the folder).
    Returns huggingface_hub's ``CommitInfo``."""
    from huggingface_hub import HfApi

    repo_id = repo_id.removeprefix(HF_PREFIX)
    if not is_repo_id(repo_id):
        raise ConfigError(f"{repo_id!r} is not a Hugging Face repo id (expected 'org/name')")
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not an adapter folder")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        commit_message=commit_message or "Upload medpeft adapter",
        revision=revision,
        create_pr=create_pr,
        allow_patterns=list(UPLOAD_PATTERNS),
        repo_type="model",
    )


__all__ = [
    "HF_PREFIX",
    "HubRef",
    "download",
    "is_repo_id",
    "parse_hub_name",
    "push_folder",
    "resolve_adapter",
]
