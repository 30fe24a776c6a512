"""Installing the Debian packages a test needs (nats-server, chromium) where they are missing:
root with apt-get only, each apt-get step bounded in time."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence


def apt_install(packages: Sequence[str], timeout_s: float) -> str | None:
    """``apt-get update`` then ``apt-get install`` of ``packages``; None when both worked,
    else why not, in a sentence (not root, no apt-get, a step timed out or failed)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return (
            "not installed, and cannot be installed here (not root, or no apt-get): "
            f"install Debian's {' '.join(packages)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=timeout_s, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd)} took over {timeout_s:.0f} s"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"{' '.join(cmd)} failed: {' / '.join(tail)}"
    return None
