"""Shared fixtures: where the real Binance data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("KLINE_RS_DATA", REPO.parent / "shared" / "data")) / "binance"


@pytest.fixture(scope="session")
def binance_data() -> Path:
    """The real Binance data folder (../shared/data/binance); skip where absent."""
    if not DATA.is_dir():
        pytest.skip(f"real Binance data not found at {DATA} (set KLINE_RS_DATA)")
    return DATA
