"""Time kline-rs replay against polars and plain-Python peers on one simulated day of aggTrades."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIMULATE = HERE.parent / "python" / "kline_rs" / "fake" / "simulate.py"
PEERS = HERE / "peers"
TIME = Path("/usr/bin/time")
LAUNCHER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[2:], check=True, "
    "stdout=subprocess.DEVNULL); open(sys.argv[1], 'w').write("
    "str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))"
)


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one subprocess, via /usr/bin/time or a rusage launcher."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rss"
        if TIME.exists():
            wrap = [str(TIME), "-f", "%e %M", "-o", str(report)]
        else:
            wrap = [sys.executable, "-c", LAUNCHER, str(report)]
        start = time.perf_counter()
        subprocess.run([*wrap, *cmd], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        return seconds, int(report.read_text().split()[-1]) / 1024


def best_of(cmd: list[str], out: Path | None, repeat: int) -> tuple[float, float]:
    """Best wall time and the largest peak RSS over `repeat` runs, clearing `out` before each."""
    runs = []
    for _ in range(repeat):
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
        runs.append(measure(cmd))
    return min(s for s, _ in runs), max(m for _, m in runs)


def dataset(trades: int, symbols: int) -> Path:
    """The generated day, made once (into a temp dir renamed on success) and then reused."""
    data = HERE / ".data" / f"day-{trades}-{symbols}"
    if not data.exists():
        tmp = data.with_name(data.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        gen = [sys.executable, str(SIMULATE), str(tmp), "--trades", str(trades)]
        seconds, _ = measure([*gen, "--symbols", str(symbols)])
        tmp.rename(data)
        print(f"generated {data} in {seconds:.1f} s")
    return data


def version(dist: str) -> str:
    """Installed version of a distribution, or 'not installed'."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else what platform knows."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def machine() -> str:
    """One line naming the CPU, core count, Python and library versions."""
    return (
        f"{cpu_model()}, nproc {len(os.sched_getaffinity(0))}, {platform.system()}, "
        f"Python {platform.python_version()}, polars {version('polars')}, "
        f"numpy {version('numpy')}, kline_rs {version('kline_rs')}"
    )


def same_bytes(a: Path, b: Path) -> bool:
    """Whether both files exist with identical contents."""
    return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()


def compare(ours: Path, reference: Path) -> str:
    """Summary of byte-for-byte equality of kline-rs files against the python loop's."""
    names = sorted({p.name for p in ours.glob("*.csv")} | {p.name for p in reference.glob("*.csv")})
    differ = [n for n in names if not same_bytes(ours / n, reference / n)]
    summary = f"{len(names) - len(differ)}/{len(names)} files byte-identical to the python loop"
    return summary + (
        f"; {len(differ)} differ or missing: {' '.join(differ[:10])}" if differ else ""
    )


def main() -> None:
    """Command line: bench_replay.py [--trades N] [--symbols N] [--repeat N] [--skip-python]."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trades", type=int, default=10_000_000)
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--intervals", default="1m,5m,1h")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-python", action="store_true")
    args = ap.parse_args()
    data = dataset(args.trades, args.symbols)
    files = sorted(str(p) for p in data.glob("*-aggTrades-*.csv"))
    out = HERE / ".out"
    cli = Path(sys.executable).parent / "kline-rs"
    tools: list[tuple[str, list[str], Path | None, int]] = []
    if cli.exists():
        cmd = [str(cli), "replay", str(data), "--intervals", args.intervals, "--out"]
        tools.append(
            ("kline-rs replay", [*cmd, str(out / "kline-rs")], out / "kline-rs", args.repeat)
        )
    else:
        print(f"kline-rs CLI not found at {cli}: build it (make develop-release); skipping it")
    if importlib.util.find_spec("polars"):
        cmd = [sys.executable, str(PEERS / "polars_klines.py"), str(data), str(out / "polars")]
        tools.append(
            ("polars (floats)", [*cmd, "--intervals", args.intervals], out / "polars", args.repeat)
        )
    else:
        print("polars not installed in this interpreter: skipping the polars peer")
    if not args.skip_python:
        cmd = [sys.executable, str(PEERS / "python_loop.py"), str(data), str(out / "python")]
        tools.append(
            ("python loop (exact)", [*cmd, "--intervals", args.intervals], out / "python", 1)
        )
    tools.append(("cat > /dev/null (I/O floor)", ["cat", *files], None, args.repeat))
    results = {name: best_of(cmd, dest, n) for name, cmd, dest, n in tools}
    size = sum(Path(f).stat().st_size for f in files) / 1e6
    print(f"\ncommand: {shlex.join(['python', *sys.argv])}")
    print(f"machine: {machine()}")
    print(
        f"data: {args.trades:,} aggTrades, {len(files)} symbols, {size:.0f} MB CSV, "
        f"intervals {args.intervals}; best of {args.repeat} (python loop: 1 run)\n"
    )
    ours = results.get("kline-rs replay", (None, None))[0]
    print("| tool | seconds | M trades/s | peak MB | kline-rs speed-up vs this |")
    print("|---|---:|---:|---:|---:|")
    for name, (seconds, mb) in results.items():
        speedup = f"{seconds / ours:.2f}x" if ours else "n/a"
        rate = args.trades / 1e6 / seconds
        print(f"| {name} | {seconds:.2f} | {rate:.2f} | {mb:.0f} | {speedup} |")
    print(
        "\npolars: float sums, no rows for empty periods; python loop and kline-rs: exact decimals,"
        " empty periods as flat klines."
    )
    if ours and not args.skip_python:
        print(f"exactness: {compare(out / 'kline-rs', out / 'python')}")


if __name__ == "__main__":
    main()
