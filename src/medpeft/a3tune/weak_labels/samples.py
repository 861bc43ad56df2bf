"""The samples to label: a CSV (``id,image,question`` + optional ``dataset``, ``location``/``organ``/
``image_organ``, ``modality``; image paths relative to the CSV) or a folder holding one (a prepared A³Tune
manifest folder: ``manifest.csv``, else its only CSV).

Reading checks the structure (columns, empty ids); per-row problems (a missing image, an id seen twice, a
missing question) are found by the pipeline, which names the file, row and field, or skips and counts them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from medpeft.errors import DataError

REQUIRED = ("id", "image")
LOCATION_COLUMNS = ("location", "organ", "image_organ")


@dataclass(frozen=True)
class Sample:
    """One row: ``row`` is the CSV line number (header = 1) so errors can name it."""

    id: str
    image: Path
    question: str | None = None
    dataset: str | None = None
    location: str | None = None
    modality: str | None = None
    row: int = 0
    source: str = ""

    def where(self, field: str) -> str:
        return f"{self.source}: row {self.row} (id {self.id!r}), field {field!r}"


def find_manifest(data: str | Path) -> Path:
    """The CSV of ``data`` (a CSV file, or a folder with ``manifest.csv`` or exactly one CSV)."""
    data = Path(data)
    if data.is_file():
        return data
    if not data.is_dir():
        raise DataError(f"--data {data}: no such CSV file or folder")
    if (data / "manifest.csv").is_file():
        return data / "manifest.csv"
    csvs = sorted(data.glob("*.csv"))
    if len(csvs) != 1:
        found = ", ".join(p.name for p in csvs) or "none"
        raise DataError(
            f"--data {data}: expected manifest.csv or exactly one CSV in the folder (found {found})"
        )
    return csvs[0]


def _cell(row: dict[str, str | None], *names: str) -> str | None:
    for name in names:
        value = row.get(name)
        if value is not None and value.strip():
            return value
    return None


def read_samples(data: str | Path) -> list[Sample]:
    """All rows of the manifest as :class:`Sample`, in file order."""
    path = find_manifest(data)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from err
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(columns) or 'none'})"
        )
    samples = []
    for line, raw in enumerate(rows, start=2):
        row = {(k or "").strip(): v for k, v in raw.items()}
        sample_id = (row.get("id") or "").strip()
        if not sample_id:
            raise DataError(f"{path}: row {line}, field 'id': empty sample id")
        image = (row.get("image") or "").strip()
        samples.append(
            Sample(
                id=sample_id,
                image=(path.parent / image) if image else Path(""),
                question=_cell(row, "question"),
                dataset=_cell(row, "dataset"),
                location=_cell(row, *LOCATION_COLUMNS),
                modality=_cell(row, "modality"),
                row=line,
                source=str(path),
            )
        )
    return samples
