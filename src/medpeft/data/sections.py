"""FINDINGS / IMPRESSION extraction from MIMIC-CXR style free-text reports.

The paper trains on the FINDINGS and IMPRESSION sections only (the indication and comparison text
would leak non-image information). Real reports are messy: lower-case or spaced headers
(``Impression :``), text on the header line, other sections in between, one of the two missing.
A section ends where the next header starts. A header is a known report heading in any case at the
start of a line, or any ALL-CAPS heading followed by a colon; lower-case words before a colon in
running text ("note: ...") are not headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Headings seen in MIMIC-CXR reports; matched case-insensitively at a line start.
KNOWN_HEADERS = (
    "FINAL REPORT",
    "PRELIMINARY REPORT",
    "WET READ",
    "EXAMINATION",
    "EXAM",
    "INDICATION",
    "INDICATIONS",
    "HISTORY",
    "CLINICAL HISTORY",
    "CLINICAL INFORMATION",
    "REASON FOR EXAM",
    "REASON FOR EXAMINATION",
    "TECHNIQUE",
    "COMPARISON",
    "COMPARISONS",
    "PROCEDURE",
    "FINDINGS",
    "FINDING",
    "FINDINGS AND IMPRESSION",
    "IMPRESSION",
    "IMPRESSIONS",
    "CONCLUSION",
    "CONCLUSIONS",
    "RECOMMENDATION",
    "RECOMMENDATIONS",
    "RECOMMENDATION(S)",
    "NOTIFICATION",
    "ADDENDUM",
)
_FINDINGS = {"FINDINGS", "FINDING", "FINDINGS AND IMPRESSION"}
_IMPRESSION = {"IMPRESSION", "IMPRESSIONS", "CONCLUSION", "CONCLUSIONS"}

_KNOWN = "|".join(sorted((re.escape(h).replace(r"\ ", r"\s+") for h in KNOWN_HEADERS), key=len, reverse=True))
# A known heading at a line start (any case), e.g. "  impression :" or "Findings:".
_LINE_HEADER = re.compile(rf"(?im)^[ \t]*(?P<name>{_KNOWN})[ \t]*:")
# An ALL-CAPS heading at a line start that is not in the list, e.g. "PORTABLE AP CHEST:".
_CAPS_HEADER = re.compile(r"(?m)^[ \t]*(?P<name>[A-Z][A-Z0-9 /&()'-]{1,60}?)[ \t]*:")
# FINDINGS/IMPRESSION in capitals inside a line ("COMPARISON: None. FINDINGS: ...").
_INLINE_HEADER = re.compile(r"(?<![A-Za-z])(?P<name>FINDINGS|IMPRESSION)[ \t]*:")


@dataclass(frozen=True)
class ReportSections:
    """The two sections the paper uses; ``None`` where the report has no (non-empty) such section."""

    findings: str | None
    impression: str | None

    @property
    def text(self) -> str | None:
        """FINDINGS then IMPRESSION joined by a space, or ``None`` when both are missing."""
        parts = [p for p in (self.findings, self.impression) if p]
        return " ".join(parts) if parts else None


def _normalise(name: str) -> str:
    return " ".join(name.upper().split())


def _headers(report: str) -> list[tuple[int, int, str]]:
    """(start, end, canonical name) of every heading, in order, without overlaps."""
    found: dict[int, tuple[int, int, str]] = {}
    for pattern in (_LINE_HEADER, _CAPS_HEADER, _INLINE_HEADER):
        for m in pattern.finditer(report):
            start = m.start("name")
            if start not in found:
                found[start] = (start, m.end(), _normalise(m.group("name")))
    ordered = sorted(found.values())
    result: list[tuple[int, int, str]] = []
    for item in ordered:
        if result and item[0] < result[-1][1]:
            continue  # e.g. the inline pattern matching inside an already-found line header
        result.append(item)
    return result


def _clean(text: str) -> str | None:
    text = " ".join(text.split())
    return text or None


def extract_sections(report: str) -> ReportSections:
    """Split a report into its FINDINGS and IMPRESSION text (whitespace collapsed).

    Repeated sections are concatenated in report order; "FINDINGS AND IMPRESSION" counts as findings;
    "CONCLUSION" counts as impression.
    """
    headers = _headers(report)
    findings: list[str] = []
    impression: list[str] = []
    for i, (_, end, name) in enumerate(headers):
        stop = headers[i + 1][0] if i + 1 < len(headers) else len(report)
        body = _clean(report[end:stop])
        if body is None:
            continue
        if name in _FINDINGS:
            findings.append(body)
        elif name in _IMPRESSION:
            impression.append(body)
    return ReportSections(
        findings=" ".join(findings) if findings else None,
        impression=" ".join(impression) if impression else None,
    )


def findings_impression(report: str) -> str | None:
    """FINDINGS + IMPRESSION text of a report, or ``None`` when it has neither (caller drops and counts)."""
    return extract_sections(report).text
