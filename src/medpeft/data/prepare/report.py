"""What a ``prepare`` run kept and dropped, and why: the content of ``prepare_summary.json``.

Nothing is dropped silently: every skip goes through :meth:`PrepareReport.drop` with a reason, so
the counts (and a few example ids per reason) reach the summary file and the command's output.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_EXAMPLES = 5


@dataclass
class PrepareReport:
    """Counters for one run: rows read, rows dropped per reason (with examples), rows kept per split."""

    dataset: str
    read: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def drop(self, reason: str, example: str | None = None, count: int = 1) -> None:
        """Count ``count`` items dropped for ``reason``; remember the first few examples."""
        if count <= 0:
            return
        self.dropped[reason] += count
        if example is not None:
            shown = self.examples.setdefault(reason, [])
            if len(shown) < _EXAMPLES:
                shown.append(str(example))

    def note(self, text: str) -> None:
        """A fact worth printing that is not a drop (e.g. how uncertain labels were mapped)."""
        self.notes.append(text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "read": dict(self.read),
            "kept": dict(self.kept),
            "kept_total": sum(self.kept.values()),
            "dropped": dict(self.dropped),
            "dropped_examples": self.examples,
            "notes": list(self.notes),
        }


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines for the command line."""
    lines = [f"prepared {summary.get('dataset')} -> {summary.get('out')}"]
    counts = summary.get("class_counts") or summary.get("answer_types") or {}
    unit = summary.get("unit", "images")
    for split, n in summary.get("kept", {}).items():
        per_class = counts.get(split, {})
        shown = ", ".join(f"{c} {k}" for c, k in per_class.items()) if 0 < len(per_class) <= 6 else ""
        lines.append(f"  {split:<22} {n:>8} {unit}" + (f"  ({shown})" if shown else ""))
    for name, n in summary.get("fractions", {}).items():
        lines.append(f"  {name:<22} {n:>8} images")
    dropped = summary.get("dropped", {})
    if dropped:
        lines.append("  dropped (reason: count):")
        for reason, n in dropped.items():
            examples = summary.get("dropped_examples", {}).get(reason, [])
            eg = f"  (e.g. {', '.join(examples[:3])})" if examples else ""
            lines.append(f"    {reason}: {n}{eg}")
    else:
        lines.append("  dropped nothing")
    for note in summary.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)
