"""The README's code runs as written: its ``python`` and ``sh`` blocks, in order, in one fresh
directory (a tutorial: a block may use what an earlier one wrote), with the venv's commands on
the PATH. ``text`` blocks (usage lines, diagrams) are not run. A block that fails, or a README
with fewer runnable blocks than the sections promising them, fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
#: ```lang … ``` at the start of a line; lang as written (empty for a bare fence).
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
#: Seconds a block may take (the demo runs for a few seconds, a replay of a small day less).
BLOCK_TIMEOUT = 180


def blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, code, line) of every fenced block."""
    return [
        (m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)
    ]


def test_every_block_says_what_it_is() -> None:
    """A bare fence would hide a block from this test: each names python, sh or text."""
    bare = [
        line for lang, _, line in blocks(README.read_text()) if lang not in ("python", "sh", "text")
    ]
    assert not bare, f"README.md blocks without python/sh/text at lines {bare}"


def test_the_readme_blocks_run_in_order(tmp_path: Path) -> None:
    runnable = [(lang, code, line) for lang, code, line in blocks(README.read_text())
                if lang in ("python", "sh")]  # fmt: skip
    assert sum(lang == "python" for lang, _, _ in runnable) >= 3, "the Python blocks went missing"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("KLINE_RS_DATA", None)  # the README must not lean on the test data
    for lang, code, line in runnable:
        cmd = (
            [sys.executable, "-c", code]
            if lang == "python"
            else ["bash", "-euo", "pipefail", "-c", code]
        )
        got = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
        )
        assert got.returncode == 0, (
            f"README.md line {line} ({lang}) failed with {got.returncode}:\n{code}\n"
            f"--- stdout\n{got.stdout[-2000:]}\n--- stderr\n{got.stderr[-4000:]}"
        )
