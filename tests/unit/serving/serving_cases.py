"""The request row and training frame the serving unit tests share (fixtures: conftest.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

ROW: dict[str, Any] = {"tenure": 3, "charges": 70.5, "contract": "one-year", "calls": 2}


def training_frame() -> pd.DataFrame:
    """Eight rows of the four features (``charges`` has a missing value, so it is optional)."""
    return pd.DataFrame(
        {
            "tenure": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "charges": [10.0, np.nan, 30.5, 40.0, 50.0, 60.0, 70.0, 80.0],
            "contract": ["one-year", "two-year"] * 4,
            "calls": np.array([1, 2, 3, 4, 5, 6, 7, 8], dtype="int64"),
        }
    )


LABELS = [0, 0, 0, 0, 1, 1, 1, 1]
