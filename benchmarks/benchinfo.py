"""What the benchmark tables print about the machine and the libraries measured."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Sequence
from pathlib import Path


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine(dists: Sequence[str], extra: str = "") -> str:
    """CPU model, usable CPUs, OS, Python, ``extra``, the versions of ``dists`` and kline_rs."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    libs = ", ".join(f"{d} {version(d)}" for d in dists)
    return (
        f"{names[0] if names else platform.processor()}, nproc {len(os.sched_getaffinity(0))}, "
        f"{platform.system()}, Python {platform.python_version()}, {extra}{libs}, "
        f"kline_rs {version('kline_rs')}"
    )
