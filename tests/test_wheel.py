"""The wheel on its own: installed into a bare venv (no cargo, no maturin, not the repo on the
path, dependencies as wheels only), a replay of real trades gives Binance's own minutes, the
demo runs, and so does the README's code (every python and sh block).

The wheel is `make wheel`'s release wheel when dist/ holds one newer than every source, else
a dev-profile wheel packed from the `make develop` build (seconds; a release build takes about
ten minutes here). `KLINE_RS_WHEEL=path` tests a given wheel. `KLINE_RS_SKIP_WHEEL=1` is the
only way to skip this file (and in CI, where every skip fails the run, it is not set).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_readme import BLOCK_TIMEOUT, README, blocks
from test_real_data import official_1m

REPO = Path(__file__).resolve().parent.parent
#: Dependency wheels, downloaded once and kept (target/ is not in git).
WHEELHOUSE = REPO / "target" / "wheel-test" / "wheelhouse"
SOURCE_SUFFIXES = {".rs", ".py", ".pyi", ".toml", ".lock", ".md"}

pytestmark = pytest.mark.skipif(
    os.environ.get("KLINE_RS_SKIP_WHEEL") == "1", reason="KLINE_RS_SKIP_WHEEL=1: wheel test off"
)


def sources() -> Iterator[Path]:
    """Everything a wheel is built from (README.md is its long description)."""
    yield from (REPO / n for n in ("Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md"))
    for top in (REPO / "rust", REPO / "python"):
        yield from (p for p in top.rglob("*") if p.suffix in SOURCE_SUFFIXES)


def dist_wheel_if_fresh() -> Path | None:
    wheels = list((REPO / "dist").glob("kline_rs-*.whl"))
    if len(wheels) != 1:
        return None
    newest_source = max(p.stat().st_mtime for p in sources())
    return wheels[0] if wheels[0].stat().st_mtime > newest_source else None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel under test and where it came from."""
    if given := os.environ.get("KLINE_RS_WHEEL"):
        return Path(given).resolve(), "KLINE_RS_WHEEL"
    if (fresh := dist_wheel_if_fresh()) is not None:
        return fresh, "make wheel (release)"
    out = tmp_path_factory.mktemp("wheel")
    maturin = Path(sys.executable).parent / "maturin"
    proc = subprocess.run(
        [str(maturin), "build", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, f"maturin build failed:\n{proc.stderr}"
    (built,) = out.glob("kline_rs-*.whl")
    return built, "maturin build (dev profile; dist/ has no fresh release wheel)"


def bare_env(venv: Path) -> dict[str, str]:
    """The environment of a user with only the venv: no build tools, no repo packages."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CARGO_HOME", "RUSTUP_HOME", "KLINE_RS_DATA"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"])
    return env


def run(venv: Path, *args: str | Path, cwd: Path, timeout: float = 300) -> str:
    """Runs a command found on the bare PATH; its stdout and stderr, or a failure with them."""
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=bare_env(venv), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def pip_install(venv: Path, requirement: str, cwd: Path) -> None:
    """Wheels only (nothing may need a compiler), through the kept wheelhouse."""
    binary = ("--only-binary", ":all:")
    run(venv, "python", "-m", "pip", "download", "-q", *binary, "-d", WHEELHOUSE, requirement,
        cwd=cwd, timeout=900)  # fmt: skip
    for ours in WHEELHOUSE.glob("kline_rs-*"):
        ours.unlink()  # pip download copies the wheel under test too: install it from its path
    run(venv, "python", "-m", "pip", "install", "-q", *binary, "--no-index",
        "--find-links", WHEELHOUSE, requirement, cwd=cwd, timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
def venv(wheel: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its required dependencies only."""
    root = tmp_path_factory.mktemp("bare")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    pip_install(root / "venv", str(wheel[0]), cwd=root)
    return root / "venv"


def test_the_wheel_is_one_abi3_manylinux_wheel(
    wheel: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, origin = wheel
    tag = path.name.removesuffix(".whl").split("-", 2)[2]
    assert re.fullmatch(r"cp310-abi3-manylinux_2_\d+_x86_64", tag), path.name
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/WHEEL"))
        wheel_file = z.read(f"{info}/WHEEL").decode()
        metadata = z.read(f"{info}/METADATA").decode()
    assert f"Tag: {tag}\n" in wheel_file
    assert {"kline_rs/_core.abi3.so", "kline_rs/_core.pyi", "kline_rs/py.typed"} <= names
    # The chart page's own files ship (plotly.js comes from the plotly package, not the wheel).
    assert {"kline_rs/serve/chart/index.html", "kline_rs/serve/chart/chart.js"} <= names
    assert not [n for n in names if n.endswith("plotly.min.js")]
    assert not [n for n in names if n.endswith(".so") and n != "kline_rs/_core.abi3.so"]
    assert "Requires-Python: >=3.10" in metadata
    assert "Requires-Dist: numpy>=1.24" in metadata
    with capsys.disabled():
        print(f"\n  wheel: {path.name}, {path.stat().st_size / 1e6:.1f} MB, from {origin}")


def test_the_bare_venv_has_no_build_tools_and_imports_the_wheel(venv: Path, tmp_path: Path) -> None:
    path = bare_env(venv)["PATH"]
    assert [t for t in ("cargo", "rustc", "maturin") if shutil.which(t, path=path)] == []
    where = run(venv, "python", "-c", "import kline_rs._core as c; print(c.__file__)", cwd=tmp_path)
    core = Path(where.strip())
    assert core.is_relative_to(venv) and core.name == "_core.abi3.so"


def test_a_replay_in_the_bare_venv_gives_binances_minutes(
    venv: Path, binance_data: Path, tmp_path: Path
) -> None:
    trades = json.loads((binance_data / "btcusdt_aggtrades_202790190.json").read_text())
    dump = tmp_path / "BTCUSDT-aggTrades-2020-01-02.csv"
    dump.write_text(
        "".join(
            f"{t['a']},{t['p']},{t['q']},{t['f']},{t['l']},{t['T']},{t['m']},{t['M']}\n"
            for t in trades
        )
    )
    out = run(venv, "kline-rs", "replay", dump, "--intervals", "1m,5m", "--out", "out",
              "--no-progress", cwd=tmp_path)  # fmt: skip
    assert "1,000 trades applied" in out, out
    got = (tmp_path / "out" / "BTCUSDT-1m.csv").read_text().splitlines()
    official = {line.split(",")[0]: line for line in official_1m(binance_data, 2)}
    assert len(got) == 9
    assert got[1:-1] == [official[line.split(",")[0]] for line in got[1:-1]]  # ends partial


def test_the_demo_runs_in_the_bare_venv(venv: Path, tmp_path: Path) -> None:
    out = run(venv, "kline-rs", "demo", "--duration", "5", "--speed", "60", "--db", "demo.sqlite",
              cwd=tmp_path, timeout=120)  # fmt: skip
    assert "# stored in demo.sqlite" in out, out
    rows = {m[0]: int(m[1]) for m in re.findall(r"^  (1m|5m) +(\d+) rows", out, re.M)}
    assert rows.get("1m", 0) > 0, out


def test_the_readmes_code_runs_in_the_bare_venv(
    venv: Path, wheel: tuple[Path, str], tmp_path: Path
) -> None:
    """Its python and sh blocks, in order in one directory as test_readme.py runs them, with the
    extras the blocks name (polars, pandas; pandas brings pyarrow; the clients `kline-rs serve`
    is shown with)."""
    pip_install(venv, f"{wheel[0]}[polars,pandas,clients]", cwd=tmp_path)
    runnable = [(lang, code, line) for lang, code, line in blocks(README.read_text())
                if lang in ("python", "sh")]  # fmt: skip
    assert runnable[0][0] == "python" and sum(lang == "python" for lang, _, _ in runnable) >= 3
    for lang, code, _ in runnable:
        shell = ["bash", "-euo", "pipefail", "-c"]
        run(venv, *(["python", "-c"] if lang == "python" else shell), code, cwd=tmp_path,
            timeout=BLOCK_TIMEOUT)  # fmt: skip
    # What the blocks wrote: a downloaded day, kline files from the replay, the demo's store.
    assert list((tmp_path / "downloads").rglob("BTCUSDT-aggTrades-2024-03-01.zip"))
    assert (tmp_path / "klines" / "BTCUSDT-1d.csv").read_text().count("\n") == 1
    assert (tmp_path / "demo-klines.sqlite").stat().st_size > 0
