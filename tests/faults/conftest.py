"""Fixtures of the fault-survival tests; the helpers live in ``_faults_helpers`` (importable
because this folder is put on ``sys.path``: tests run with ``--import-mode=importlib``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
