"""Reading the raw datasets' CSV tables strictly: every value a string, every row complete.

pandas silently pads a short row with empty strings, so a CSV cut off mid-row (an interrupted
download) would turn into rows with blank labels. We read with the ``csv`` module, check that every
record has as many fields as the header, and keep each row's file line number for error messages.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medpeft.errors import DataError

LINE = "_line"  # column holding the 1-based file line number of each row


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a DataError saying which file of the layout is missing."""
    if not path.is_file():
        raise DataError(f"{what} not found: expected {path}")
    return path


def read_table(
    path: Path,
    required: Sequence[str] = (),
    *,
    non_empty: Sequence[str] = (),
    strip_names: bool = False,
    strip_values: bool = False,
) -> pd.DataFrame:
    """Read a CSV as strings (ids keep their leading zeros), with a ``_line`` column.

    Raises ``DataError`` for a missing file, an empty file, unbalanced quotes, a record with the
    wrong number of fields (a truncated file), missing ``required`` columns, and an empty cell in a
    ``non_empty`` column; each message names the file and the line.
    """
    path = Path(path)
    require_file(path, "CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(f"{path} is empty (no header line)") from None
            if strip_names:
                header = [h.strip() for h in header]
            # some releases end the header with a comma (an unnamed empty column) but not every row
            trailing_blank = len(header) - len("\0".join(header).rstrip("\0").split("\0")) if header else 0
            rows: list[list[str]] = []
            lines: list[int] = []
            for record in reader:
                if not record or (len(record) == 1 and record[0].strip() == ""):
                    continue
                if len(record) == len(header) + 1 and record[-1] == "":
                    record = record[:-1]  # a trailing comma on the data line only
                elif len(header) - trailing_blank <= len(record) < len(header):
                    record = record + [""] * (len(header) - len(record))  # unnamed trailing columns
                if len(record) != len(header):
                    raise DataError(
                        f"{path} line {reader.line_num}: {len(record)} fields where the header has "
                        f"{len(header)}; is the file truncated or malformed?"
                    )
                rows.append(record)
                lines.append(reader.line_num)
    except csv.Error as err:
        raise DataError(f"{path} is not a readable CSV (truncated or unbalanced quotes?): {err}") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not a UTF-8 text CSV: {err}") from err
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path} lacks column(s) {', '.join(repr(c) for c in missing)} (it has: {', '.join(header)})"
        )
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{path} has duplicated column name(s) {dup}")
    df = pd.DataFrame(rows, columns=header, dtype=str)
    if strip_values:
        df = df.apply(lambda col: col.str.strip())
    df[LINE] = lines
    for col in non_empty:
        blank = df.index[df[col].str.strip() == ""]
        if len(blank):
            raise DataError(f"{path} line {df[LINE].iat[blank[0]]}: empty {col!r}")
    return df


def where(path: Path, df: pd.DataFrame, i: int) -> str:
    """'file line N' for row position ``i`` of a table read by :func:`read_table`."""
    return f"{Path(path).name} line {df[LINE].iat[i]}"
