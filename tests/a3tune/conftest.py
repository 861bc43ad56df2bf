"""Fixtures of the A³Tune tests; helpers live in ``a3_helpers.py``."""

from __future__ import annotations

import pytest
from a3_helpers import NAMES


@pytest.fixture(params=NAMES)
def name(request) -> str:
    return request.param
