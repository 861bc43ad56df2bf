"""FINDINGS/IMPRESSION extraction on the report shapes MIMIC-CXR actually has."""

from __future__ import annotations

from prepare_fixtures import REPORT_FINDINGS_BETWEEN, REPORT_FULL, REPORT_IMPRESSION_ONLY, REPORT_NO_SECTIONS

from medpeft.data.sections import extract_sections, findings_impression


def test_full_report_odd_spacing():
    s = extract_sections(REPORT_FULL)
    assert s.findings == "The heart is enlarged. Mild pulmonary edema."
    assert s.impression == "Cardiomegaly with mild edema."
    assert s.text == "The heart is enlarged. Mild pulmonary edema. Cardiomegaly with mild edema."


def test_lower_case_header_with_space_before_colon():
    s = extract_sections(REPORT_IMPRESSION_ONLY)
    assert s.findings is None
    assert s.impression == "Small right pleural effusion."


def test_other_sections_end_findings():
    s = extract_sections(REPORT_FINDINGS_BETWEEN)
    assert s.findings == "Lungs are clear."
    assert s.impression is None


def test_no_sections_returns_none():
    assert findings_impression(REPORT_NO_SECTIONS) is None
    assert findings_impression("") is None
    assert findings_impression("FINDINGS:\n\n   \nIMPRESSION:   \n") is None  # headers but empty


def test_inline_headers_and_unknown_caps_header():
    report = "COMPARISON: None. FINDINGS: No effusion. IMPRESSION: Normal.\nPORTABLE VIEW: ignore me"
    s = extract_sections(report)
    assert s.findings == "No effusion."
    assert s.impression == "Normal."


def test_prose_colon_is_not_a_header():
    report = "FINDINGS: Compared to prior: the tube is unchanged.\nnote: stable.\nIMPRESSION: Stable."
    s = extract_sections(report)
    assert s.findings == "Compared to prior: the tube is unchanged. note: stable."
    assert s.impression == "Stable."


def test_repeated_and_combined_sections():
    report = "FINDINGS AND IMPRESSION: Clear lungs.\nADDENDUM: x\nIMPRESSION: One.\nimpressions: Two."
    s = extract_sections(report)
    assert s.findings == "Clear lungs."
    assert s.impression == "One. Two."
