"""Shared fixtures: where the real Binance data lives; in CI, no test may skip unexplained."""

from __future__ import annotations

import os
from collections.abc import Callable
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

#: Files tests keep for a person to look at (screenshots), listed at the end of the run.
ARTIFACTS = REPO / "test-artifacts"

_skipped: list[str] = []
_artifacts: list[Path] = []
#: Lines tests print in the run's summary (what a person reads in CI: kill counts, takeovers).
_reports: list[str] = []
#: At most this many summary lines (a test that reports in a loop cannot flood the log).
MAX_REPORTS = 200


@pytest.fixture
def save_artifact() -> Callable[[str, bytes], Path]:
    """``save(name, data)``: writes ``test-artifacts/<name>`` and lists it in the summary."""

    def save(name: str, data: bytes) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        path.write_bytes(data)
        _artifacts.append(path)
        return path

    return save


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(line)``: printed in the summary at the end of the run, after the test's name
    (``-q`` shows no test output otherwise)."""

    def add(line: str) -> None:
        if len(_reports) < MAX_REPORTS:
            _reports.append(f"{request.node.name}: {line}")

    return add


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for path in _artifacts:
        terminalreporter.write_line(f"test artefact: {path}")
    for line in _reports:
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if STRICT and _skipped:
        lines = "\n  ".join(_skipped[:50])
        print(f"\nFAILED: {len(_skipped)} tests skipped, none of them allowed:\n  {lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
