"""``generate_weak_labels``: images → proposals → filters → masked crops → CLIP scores → top-K masks, stored.

Per sample (A3TUNE.md §A): the image is squashed to ``size``² (256; ``resize="cv2"`` is the authors'
``cv2.resize`` INTER_LINEAR, which needs OpenCV; the default ``"pil"`` is PIL's antialiased bilinear, which
aliases less on large images), proposals are made on it, filtered (:mod:`.filters`), each kept mask's masked crop is
scored against the sample's query (:mod:`.queries`, :mod:`.scoring`), and the top K masks are kept
separately in score order (ties: proposal order). A sample whose every mask is filtered out gets K = 0
(the authors' code skipped it; its alignment loss is 0).

Runs are resumable: results are flushed every ``flush_every`` samples (:mod:`.store`), a second run with
the same settings skips finished ids, and a killed run resumes to the same bytes as an uninterrupted one
(every sample is seeded from ``seed`` and its position, and files are written in input order). A folder
holding results made with other settings is refused unless ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medpeft.a3tune.weak_labels.crops import masked_crops
from medpeft.a3tune.weak_labels.filters import FilterSettings, filter_masks
from medpeft.a3tune.weak_labels.proposer_factory import make_proposer
from medpeft.a3tune.weak_labels.proposers import MaskProposer
from medpeft.a3tune.weak_labels.queries import build_query, canonical_dataset, default_top_k
from medpeft.a3tune.weak_labels.samples import Sample, read_samples
from medpeft.a3tune.weak_labels.scoring import CropScorer, load_scorer, rank_crops, score_crops
from medpeft.a3tune.weak_labels.store import FORMAT, INDEX_FILE, MASKS_FILE, read_index, write_store
from medpeft.errors import ConfigError, DataError, MedpeftError, OutputExistsError
from medpeft.runtime import derive_seed, seed_everything

ON_BAD = ("error", "skip")
PREVIEW_FILE = "preview.png"


@dataclass
class Prepared:
    """A validated sample with its query and K, or the reason it is skipped."""

    position: int
    sample: Sample
    query: str | None = None
    top_k: int = 0
    problem: str | None = None


RESIZERS = ("pil", "cv2")


def load_rgb(path: Path, size: int, resize: str = "pil") -> np.ndarray:
    """The image as RGB uint8 squashed to ``size``² (aspect ratio not kept, as the authors)."""
    from PIL import Image

    from medpeft.data.images import load_image

    img = load_image(path).convert("RGB")
    if resize == "cv2":
        import cv2

        return cv2.resize(np.asarray(img), (size, size), interpolation=cv2.INTER_LINEAR)
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def prepare(samples: Sequence[Sample], query: str, dataset: str | None, top_k: int | None) -> list[Prepared]:
    """Validate ids and questions, build each query; problems are recorded, not raised, here."""
    seen: dict[str, int] = {}
    out = []
    for pos, s in enumerate(samples):
        item = Prepared(pos, s)
        if s.id in seen:
            item.problem = f"{s.where('id')}: sample id appears twice (first at row {seen[s.id]})"
        else:
            seen[s.id] = s.row
            ds = s.dataset or dataset
            try:
                if ds is None:
                    raise ConfigError("no dataset column and no --dataset: cannot choose the query template")
                item.query = build_query(query, ds, s.question, s.location)
                item.top_k = int(top_k) if top_k is not None else default_top_k(ds)
            except ConfigError as err:
                field = getattr(err, "field", "dataset")
                item.problem = f"{s.where(field)}: {err}"
        out.append(item)
    return out


def label_one(
    image: np.ndarray,
    query: str,
    top_k: int,
    proposer: MaskProposer,
    scorer: CropScorer,
    filters: FilterSettings,
    bgr: bool,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Top-K masks ``uint8 [K, H, W]`` of one image (RGB) and their index entry. ``bgr`` feeds the image to
    the proposer and its crops to the scorer in BGR order, as the authors' OpenCV arrays were."""
    if bgr:
        image = np.ascontiguousarray(image[..., ::-1])
    proposals = proposer.propose(image)
    kept = filter_masks(proposals, filters)
    scores = score_crops(scorer, masked_crops(image, kept), query)
    order = rank_crops(scores, top_k)
    h, w = image.shape[:2]
    masks = (
        np.stack([kept[i].seg for i in order]).astype(np.uint8)
        if len(order)
        else np.zeros((0, h, w), np.uint8)
    )
    entry = {
        "k": int(len(order)),
        "scores": [round(float(scores[i]), 6) for i in order],
        "boxes": [list(kept[i].bbox) for i in order],
        "areas": [int(kept[i].area) for i in order],
        "proposals": len(proposals),
        "after_filters": len(kept),
        "query": query,
    }
    return masks, entry


def _settings(
    proposer: MaskProposer, scorer: CropScorer, query: str, dataset: str | None, top_k: int | None,
    filters: FilterSettings, size: int, resize: str, bgr: bool, seed: int,
) -> dict[str, Any]:  # fmt: skip
    return {
        "proposer": proposer.describe(),
        "scorer": scorer.name,
        "query": query,
        "dataset": dataset,
        "top_k": top_k,
        "filters": filters.to_dict(),
        "size": size,
        "resize": resize,
        "bgr": bgr,
        "seed": seed,
    }


def _open_out(out: Path, settings: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """The finished entries to resume from ({} for a fresh folder); different settings are refused."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob(f".{MASKS_FILE}.*.tmp"), *out.glob(f".{INDEX_FILE}.*.tmp")]:
        stale.unlink(missing_ok=True)  # left by a run killed mid-flush; the renamed files are intact
    index = read_index(out)
    if index is None:
        if (out / MASKS_FILE).exists() and not overwrite:
            raise OutputExistsError(f"{out} holds {MASKS_FILE} without {INDEX_FILE}; pass --overwrite")
        return {}
    if index.get("settings") != settings:
        if not overwrite:
            raise OutputExistsError(
                f"{out} holds weak labels made with other settings ({INDEX_FILE}); "
                "choose another folder or pass --overwrite to replace them"
            )
        for name in (MASKS_FILE, INDEX_FILE, PREVIEW_FILE):
            (out / name).unlink(missing_ok=True)
        return {}
    return dict(index.get("samples", {}))


def generate_weak_labels(
    samples: Sequence[Sample] | str | Path,
    out: str | Path,
    *,
    proposer: MaskProposer | str,
    scorer: CropScorer | str,
    top_k: int | None = None,
    query: str = "official",
    dataset: str | None = None,
    filters: FilterSettings | None = None,
    size: int = 256,
    resize: str = "pil",
    bgr: bool = False,
    flush_every: int = 16,
    on_bad_image: str = "error",
    overwrite: bool = False,
    progress: bool = True,
    seed: int = 0,
    workers: int = 0,
    preview: int = 0,
) -> dict[str, Any]:
    """Label ``samples`` into ``out`` (``masks.npz`` + ``index.json``); returns a summary dict.

    ``samples`` may be a CSV/manifest folder (:func:`~.samples.read_samples`), ``proposer`` a name for
    :func:`~.proposers.make_proposer` (``regions``; the SAM backends need their checkpoint, so build those
    yourself) and ``scorer`` a backbone spec for :func:`~.scoring.load_scorer` (``tiny``, ``biomedclip``...).
    ``top_k`` None = the dataset's default (8 VQA, 4 reports). ``on_bad_image="skip"`` skips unreadable
    images, missing questions and repeated ids, counting them in the index; ``"error"`` raises a
    ``DataError`` naming the file, row and field.
    """
    if on_bad_image not in ON_BAD:
        raise ConfigError(f"on_bad_image must be one of {ON_BAD}, got {on_bad_image!r}")
    if flush_every < 1:
        raise ConfigError(f"flush_every must be at least 1, got {flush_every}")
    out = Path(out)
    if isinstance(samples, (str, Path)):
        samples = read_samples(samples)
    if isinstance(proposer, str):
        proposer = make_proposer(proposer, seed=seed)
    if isinstance(scorer, str):
        scorer = load_scorer(scorer, seed=seed)
    filters = filters or FilterSettings()
    if resize not in RESIZERS:
        raise ConfigError(f"resize must be one of {RESIZERS}, got {resize!r}")
    if resize == "cv2":
        try:
            import cv2  # noqa: F401
        except ImportError as err:
            raise ConfigError("resize='cv2' needs OpenCV: pip install opencv-python-headless") from err
    if dataset is not None:
        canonical_dataset(dataset)  # a wrong --dataset fails before any work
    settings = _settings(proposer, scorer, query, dataset, top_k, filters, size, resize, bgr, seed)
    prepared = prepare(samples, query, dataset, top_k)
    if on_bad_image == "error":
        bad = [p for p in prepared if p.problem]
        if bad:
            raise DataError(bad[0].problem + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    done = _open_out(out, settings, overwrite)
    valid_ids = {p.sample.id for p in prepared if not p.problem}
    done = {k: v for k, v in done.items() if k in valid_ids}
    skipped: dict[int, dict[str, Any]] = {
        p.position: {"id": p.sample.id, "row": p.sample.row, "reason": p.problem}
        for p in prepared
        if p.problem
    }
    todo = [p for p in prepared if not p.problem and p.sample.id not in done]
    order = [p.sample.id for p in prepared if not p.problem]
    new: dict[str, np.ndarray] = {}

    def index_doc(complete: bool) -> dict[str, Any]:
        entries = {**done}
        return {
            "format": FORMAT,
            "settings": settings,
            "samples": {i: entries[i] for i in order if i in entries},
            "n_skipped": len(skipped),
            "skipped": [skipped[k] for k in sorted(skipped)],
            "complete": complete,
        }

    def flush(complete: bool) -> None:
        write_store(out, index_doc(complete), new)
        new.clear()

    def load(p: Prepared) -> tuple[Prepared, np.ndarray | None, str | None]:
        try:
            return p, load_rgb(p.sample.image, size, resize), None
        except MedpeftError as err:
            return p, None, f"{p.sample.where('image')}: {err}"

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="weak labels", unit="img", disable=not progress, dynamic_ncols=True)
    pending = labelled_now = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for p, image, problem in _prefetch(pool, load, todo, window=max(2, 2 * workers)):
            if problem is not None:
                if on_bad_image == "error":
                    bar.close()
                    flush(False)  # keep what was finished before the bad image
                    raise DataError(problem)
                skipped[p.position] = {"id": p.sample.id, "row": p.sample.row, "reason": problem}
            else:
                seed_everything(derive_seed(seed, p.position))
                masks, entry = label_one(image, p.query, p.top_k, proposer, scorer, filters, bgr)
                new[p.sample.id] = masks
                done[p.sample.id] = entry
                labelled_now += 1
            pending += 1
            bar.update(1)
            if pending >= flush_every:
                flush(False)
                pending = 0
    bar.close()
    flush(True)
    summary = {
        "out": str(out),
        "labelled": len(done),
        "new": labelled_now,
        "resumed": len(done) - labelled_now,
        "n_skipped": len(skipped),
        "skipped": [skipped[k] for k in sorted(skipped)],
    }
    if preview > 0:
        from medpeft.a3tune.weak_labels.preview import write_preview

        shown = [p for p in prepared if p.sample.id in done][:preview]
        summary["preview"] = str(
            write_preview(out, [(p.sample, load_rgb(p.sample.image, size, resize)) for p in shown])
        )
    return summary


def _prefetch(pool: ThreadPoolExecutor, fn: Any, items: Sequence[Any], window: int) -> Iterator[Any]:
    """``fn`` over ``items`` in order, at most ``window`` in flight (images are decoded ahead of the model)."""
    futures = []
    for item in items:
        futures.append(pool.submit(fn, item))
        if len(futures) >= window:
            yield futures.pop(0).result()
    for fut in futures:
        yield fut.result()
