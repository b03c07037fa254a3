"""Fixtures of the detection tests; the helpers they share are in ``_models_helpers.py``."""

from __future__ import annotations

import pytest

from gridwatch.models import DetectionSettings


@pytest.fixture
def settings() -> DetectionSettings:
    return DetectionSettings()
