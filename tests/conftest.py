"""Shared fixtures: where the real Binance data lives; in CI, no test may skip unexplained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("KLINE_RS_DATA", REPO.parent / "shared" / "data")) / "binance"

if REPO.name == "mutants":
    # `make mutants-py`: mutmut runs the tests in its copy of the package (src/ there); any
    # subprocess a test starts must import that mutated copy too, not the installed one.
    os.environ["PYTHONPATH"] = str(REPO / "src")

#: Skips CI accepts, as substrings of the skip reason, each with why. Empty: in CI every test
#: runs (real data, PostgreSQL and pyarrow are all installed by `.ci/run` / `make`).
ALLOWED_SKIPS: tuple[str, ...] = ()

#: Set by `.ci/run`: a skip not in ALLOWED_SKIPS fails the run.
STRICT = os.environ.get("KLINE_RS_STRICT_SKIPS") == "1"

_skipped: list[str] = []


@pytest.fixture(scope="session")
def binance_data() -> Path:
    """The real Binance data folder (../shared/data/binance); skip where absent."""
    if not DATA.is_dir():
        pytest.skip(f"real Binance data not found at {DATA} (set KLINE_RS_DATA)")
    return DATA


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if not any(allowed in reason for allowed in ALLOWED_SKIPS):
            _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if STRICT and _skipped:
        lines = "\n  ".join(_skipped[:50])
        print(f"\nFAILED: {len(_skipped)} tests skipped, none of them allowed:\n  {lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
