"""The text each mask crop is scored against (A3TUNE.md §A.3): built from the *question*, never the answer.

``official_query`` reproduces the authors' strings byte for byte, typos included ("imgaing", no space after
the prefix's full stop in most branches, a case-sensitive ``"chest" in location`` / ``"abd" in location``
test). ``clean_query`` is the same content written properly (case-insensitive branch test, one space).

=============  ===================================================================================
dataset        official text
=============  ===================================================================================
slake          chest: ``f"Medical image of {loc} and lungs. " + q``; abd: ``"Medical imgaing of abdomen." + q``;
               else ``f"Medical image of {loc}." + q``
vqa-rad        as slake, the abd branch is ``"Medical imgaing of abdomen CT." + q``
pathvqa        ``"Medical image of pathology." + q``
mimic-cxr,     ``"Medical image of lungs and chest X-ray."`` (reports: no question)
iu-xray
omnimedvqa,    the question with ``"<image>\\n"`` removed
ol3i
=============  ===================================================================================
"""

from __future__ import annotations

from medpeft.data.datasets import REGISTRY, WEAK_LABEL_K, resolve_dataset
from medpeft.errors import ConfigError

# The datasets the authors' query templates cover: the registry's conversation datasets (VQA and reports;
# MIMIC-CXR reports too), plus two the authors label whose raw layouts medpeft does not prepare.
VQA_DATASETS = tuple(n for n, e in REGISTRY.items() if e.kind == "vqa")
REPORT_DATASETS = tuple(n for n, e in REGISTRY.items() if e.weak_label_k == WEAK_LABEL_K["report"])
TURN_DATASETS = ("omnimedvqa", "ol3i")
DATASETS = VQA_DATASETS + REPORT_DATASETS + TURN_DATASETS
QUERY_MODES = ("official", "clean")
REPORT_TEXT = "Medical image of lungs and chest X-ray."
_TURN_ALIASES = {"omni": "omnimedvqa", "cares": "omnimedvqa"}


class QueryFieldError(ConfigError):
    """A sample lacks what its query template needs; ``field`` names the CSV column."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def canonical_dataset(dataset: str) -> str:
    name = dataset.strip().lower()
    name = _TURN_ALIASES.get(name, name)
    if name not in TURN_DATASETS:
        try:
            name = resolve_dataset(name)
        except ConfigError:
            pass
    if name not in DATASETS:
        raise ConfigError(
            f"unknown dataset {dataset!r} for the query template: use one of {', '.join(DATASETS)}"
        )
    return name


def default_top_k(dataset: str) -> int:
    """K of the authors: 8 for the VQA sets, 4 for reports, OmniMedVQA and OL3I (the registry's weak_label_k)."""
    name = canonical_dataset(dataset)
    return REGISTRY[name].weak_label_k if name in REGISTRY else WEAK_LABEL_K["report"]


def _needs(value: str | None, what: str, dataset: str, field: str) -> str:
    if value is None or not str(value).strip():
        raise QueryFieldError(f"the {dataset} query template needs a {what}", field)
    return str(value)


def official_query(dataset: str, question: str | None, location: str | None = None) -> str:
    """The authors' exact string (see the module table)."""
    ds = canonical_dataset(dataset)
    if ds in REPORT_DATASETS:
        return REPORT_TEXT
    q = _needs(question, "question", ds, "question")
    if ds == "pathvqa":
        return "Medical image of pathology." + q
    if ds in TURN_DATASETS:
        return q.replace("<image>\n", "")
    loc = _needs(location, "location (organ) column", ds, "location")
    if "chest" in loc:
        return f"Medical image of {loc} and lungs. " + q
    if "abd" in loc:
        return "Medical imgaing of abdomen." + q if ds == "slake" else "Medical imgaing of abdomen CT." + q
    return f"Medical image of {loc}." + q


def clean_query(dataset: str, question: str | None, location: str | None = None) -> str:
    """The same content without the typos: one space, "imaging", case-insensitive branch test."""
    ds = canonical_dataset(dataset)
    if ds in REPORT_DATASETS:
        return REPORT_TEXT
    q = " ".join(_needs(question, "question", ds, "question").replace("<image>", " ").split())
    if ds == "pathvqa":
        return f"Medical image of pathology. {q}"
    if ds in TURN_DATASETS:
        return q
    loc = " ".join(_needs(location, "location (organ) column", ds, "location").split())
    if "chest" in loc.lower():
        return f"Medical image of {loc} and lungs. {q}"
    if "abd" in loc.lower():
        return f"Medical imaging of abdomen. {q}" if ds == "slake" else f"Medical imaging of abdomen CT. {q}"
    return f"Medical image of {loc}. {q}"


def build_query(mode: str, dataset: str, question: str | None, location: str | None = None) -> str:
    if mode == "official":
        return official_query(dataset, question, location)
    if mode == "clean":
        return clean_query(dataset, question, location)
    raise ConfigError(f"unknown query mode {mode!r}: use one of {', '.join(QUERY_MODES)}")
