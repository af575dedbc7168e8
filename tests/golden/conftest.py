"""The golden tests borrow the feature tests' seeded portfolio builder (not the simulator,
which is tuned from time to time: a golden must move only when our code does)."""

from __future__ import annotations

import sys
from pathlib import Path

FEATURE_TESTS = Path(__file__).resolve().parents[1] / "features"
if str(FEATURE_TESTS) not in sys.path:
    sys.path.insert(0, str(FEATURE_TESTS))
