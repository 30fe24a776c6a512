"""``kline-rs download``: data.binance.vision dumps, checked against their CHECKSUM, resumable.

Each file: its ``.CHECKSUM`` first (404: no data that day or month, a counted skip); a file
already in the directory whose sha256 matches is skipped, one that does not is fetched anew;
the zip goes to ``name.part``, resumed with an HTTP ``Range`` request after a cut connection
or an earlier run, and is renamed only once its sha256 matches. A mismatch deletes the part
and fetches the file once more from the start; a second mismatch fails the file, naming both
hashes. Network errors, timeouts and 5XX/429 answers are retried with jittered exponential
backoff, at most ``retries`` times per file (kept parts are resumed). At most ``jobs`` files
are in flight; on a terminal a progress line counts files and bytes, and a summary ends the run.
Files land under the output directory in the server's own layout
(``data/spot/daily/aggTrades/BTCUSDT/…``), with their ``.CHECKSUM`` beside them, so
``sha256sum -c`` and ``kline-rs replay DIR/data/…`` work there.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import aiohttp

from kline_rs._core import KlineError
from kline_rs.public_data import (
    BASE_URL,
    DEFAULT_JOBS,
    DEFAULT_RETRIES,
    MAX_JOBS,
    MAX_RETRIES,
    DumpFile,
    Kind,
    Periods,
    Planned,
    plan,
)
from kline_rs.venues import VenueName

#: Longest a CHECKSUM file may be (Binance's are 91 bytes).
MAX_CHECKSUM_BYTES = 4096
_CHECKSUM = re.compile(r"^([0-9a-fA-F]{64}) [ *]?(\S+)\s*$")
_RETRYABLE = {408, 425, 429, 500, 502, 503, 504}

Outcome = Literal["downloaded", "present", "missing"]


class DownloadError(KlineError):
    """A file that could not be fetched (after the retries), or was refused."""


class ChecksumMismatchError(DownloadError):
    """A file whose sha256 differed from its CHECKSUM twice (it is deleted)."""


class _Retry(Exception):
    """A failed attempt worth repeating (network error, 5XX, 429)."""


@dataclass
class DownloadSummary:
    """What a download fetched, found present, did not find (404) and could not get."""

    downloaded: int = 0
    present: int = 0
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: Bytes received (parts resumed count only what was received this time).
    bytes: int = 0
    seconds: float = 0.0
    #: Monthly files not published (yet) whose days were fetched instead.
    replaced_by_days: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [
            f"downloaded {self.downloaded} files ({self.bytes / 1e6:.1f} MB) in "
            f"{self.seconds:.1f} s; skipped {self.present} already present (checksum verified), "
            f"{len(self.missing)} missing (404), {len(self.failed)} failed"
        ]
        if self.replaced_by_days:
            lines.append(
                f"not published monthly, fetched by day instead: {_some(self.replaced_by_days)}"
            )
        if self.missing:
            lines.append(f"missing (not on the server): {_some(self.missing)}")
        lines += [f"failed: {message}" for message in self.failed]
        return "\n".join(lines)


def _some(names: list[str], shown: int = 6) -> str:
    names = sorted(names)
    more = f" … and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def sha256_file(path: Path) -> str:
    return _sha256_of(path).hexdigest()


def parse_checksum(text: str, name: str) -> str:
    """``"<sha256>  <name>"`` → the lower-case hex digest; anything else is an error."""
    m = _CHECKSUM.match(text.strip())
    if m is None:
        raise DownloadError(f"{name}.CHECKSUM: not '<sha256>  <name>': {text[:100]!r}")
    if m[2] != name:
        raise DownloadError(f"{name}.CHECKSUM names another file: {m[2]!r}")
    return m[1].lower()


class _ProgressLine:
    """``files done/total, bytes`` on stderr, redrawn at most 5 times a second."""

    def __init__(self, summary: DownloadSummary, total: int, enabled: bool) -> None:
        self.summary = summary
        self.total = total
        self.enabled = enabled
        self._drawn = 0.0

    def draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < 0.2):
            return
        self._drawn = now
        s = self.summary
        done = s.downloaded + s.present + len(s.missing) + len(s.failed)
        sys.stderr.write(
            f"\r\x1b[2Kdownload: {done}/{self.total} files, {s.present} present, "
            f"{len(s.missing)} missing, {len(s.failed)} failed, {s.bytes / 1e6:.1f} MB"
        )
        sys.stderr.flush()

    def end(self) -> None:
        if self.enabled:
            self.draw(force=True)
            sys.stderr.write("\n")


class Downloader:
    """Fetches planned files into ``out_dir``; see the module doc for the rules."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        base_url: str = BASE_URL,
        jobs: int = DEFAULT_JOBS,
        retries: int = DEFAULT_RETRIES,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        read_timeout: float = 60.0,
        progress: bool = False,
    ) -> None:
        if not 1 <= jobs <= MAX_JOBS:
            raise ValueError(f"jobs must be within 1..{MAX_JOBS}, not {jobs}")
        if not 0 <= retries <= MAX_RETRIES:
            raise ValueError(f"retries must be within 0..{MAX_RETRIES}, not {retries}")
        self.out_dir = Path(out_dir)
        self.base_url = base_url.rstrip("/")
        self.jobs = jobs
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.read_timeout = read_timeout
        self.progress = progress
        self.summary = DownloadSummary()
        self._line = _ProgressLine(self.summary, 0, False)
        self._slots = asyncio.BoundedSemaphore(jobs)
        self._session: aiohttp.ClientSession | None = None

    async def run(self, files: Sequence[Planned]) -> DownloadSummary:
        started = time.perf_counter()
        self._line = _ProgressLine(self.summary, len(files), self.progress)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.read_timeout)
        connector = aiohttp.TCPConnector(limit=self.jobs)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self._session = session
            try:
                await asyncio.gather(*(self._planned(p) for p in files))
            finally:
                self._session = None
                self.summary.seconds = time.perf_counter() - started
                self._line.end()
        return self.summary

    async def _planned(self, p: Planned) -> None:
        outcome = await self._one(p.file, quiet_missing=bool(p.fallback))
        if outcome == "missing" and p.fallback:
            self.summary.replaced_by_days.append(p.file.name)
            self._line.total += len(p.fallback) - 1
            await asyncio.gather(*(self._one(day) for day in p.fallback))

    async def _one(self, f: DumpFile, *, quiet_missing: bool = False) -> Outcome | None:
        async with self._slots:
            try:
                outcome = await self._fetch(f)
            except DownloadError as e:
                self.summary.failed.append(str(e))
                outcome = None
        if outcome == "downloaded":
            self.summary.downloaded += 1
        elif outcome == "present":
            self.summary.present += 1
        elif outcome == "missing" and not quiet_missing:
            self.summary.missing.append(f.name)
        self._line.draw()
        return outcome

    async def _fetch(self, f: DumpFile) -> Outcome:
        url = f"{self.base_url}/{f.path}"
        dest = self.out_dir / f.path
        checksum_text = await self._small(url + ".CHECKSUM")
        if checksum_text is None:
            return "missing"
        expected = parse_checksum(checksum_text, f.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        checksum_file = dest.with_name(f.name + ".CHECKSUM")
        if dest.exists():
            if await asyncio.to_thread(sha256_file, dest) == expected:
                checksum_file.write_text(checksum_text)
                return "present"
            dest.unlink()  # stale or damaged: fetched anew
        part = dest.with_name(f.name + ".part")
        got = ""
        for _ in range(2):
            got_or_none = await self._to_part(url, part)
            if got_or_none is None:
                return "missing"
            got = got_or_none
            if got == expected:
                part.replace(dest)
                checksum_file.write_text(checksum_text)
                return "downloaded"
            part.unlink()
        raise ChecksumMismatchError(
            f"{f.name}: sha256 {got} does not match its CHECKSUM {expected} (fetched twice, "
            f"file deleted; from {url})"
        )

    async def _backoff(self, url: str, attempt: int, error: Exception) -> None:
        """Waits before retry ``attempt`` (jittered, exponential); fails past the last."""
        if attempt > self.retries:
            raise DownloadError(f"{url}: {error} (gave up after {self.retries} retries)")
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Downloader.run() opens the session")
        return self._session

    async def _small(self, url: str) -> str | None:
        """A small text file (a CHECKSUM); None if the server has none (404)."""
        attempt = 0
        while True:
            try:
                async with self._http.get(url) as r:
                    if r.status == 404:
                        return None
                    _check_status(url, r.status)
                    body = await r.content.read(MAX_CHECKSUM_BYTES + 1)
                    if len(body) > MAX_CHECKSUM_BYTES:
                        raise DownloadError(f"{url}: longer than {MAX_CHECKSUM_BYTES} bytes")
                    return body.decode("ascii", errors="replace")
            except (_Retry, aiohttp.ClientError, asyncio.TimeoutError) as e:
                attempt += 1
                await self._backoff(url, attempt, e)

    async def _to_part(self, url: str, part: Path) -> str | None:
        """The file at ``url`` into ``part`` (resumed from what it holds); its sha256, or None
        on 404."""
        attempt = 0
        while True:
            have = part.stat().st_size if part.exists() else 0
            try:
                return await self._receive(url, part, have)
            except (_Retry, aiohttp.ClientError, asyncio.TimeoutError) as e:
                attempt += 1
                await self._backoff(url, attempt, e)

    async def _receive(self, url: str, part: Path, have: int) -> str | None:
        headers = {"Range": f"bytes={have}-"} if have else None
        async with self._http.get(url, headers=headers) as r:
            if r.status == 404:
                return None
            if r.status == 416 and have:  # the part is whole already (or longer: wrong)
                return await asyncio.to_thread(sha256_file, part)
            _check_status(url, r.status)
            digest = hashlib.sha256()
            if r.status == 206 and have:
                first = _range_start(r.headers.get("Content-Range", ""))
                if first != have:
                    raise DownloadError(f"{url}: asked for bytes {have}-, got {first}-")
                digest = await asyncio.to_thread(_sha256_of, part)
                mode = "ab"
            else:
                mode = "wb"  # 200: the server sent the whole file
            with part.open(mode) as fh:
                async for chunk in r.content.iter_any():
                    fh.write(chunk)
                    digest.update(chunk)
                    self.summary.bytes += len(chunk)
                    self._line.draw()
            return digest.hexdigest()


def _sha256_of(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest


def _range_start(content_range: str) -> int | None:
    m = re.match(r"bytes (\d+)-", content_range)
    return int(m[1]) if m else None


def _check_status(url: str, status: int) -> None:
    if status in _RETRYABLE:
        raise _Retry(f"HTTP {status}")
    if status not in (200, 206):
        raise DownloadError(f"{url}: HTTP {status}")


def download(
    venue: VenueName,
    kind: Kind,
    symbols: list[str],
    start: date,
    end: date,
    out_dir: str | os.PathLike[str],
    *,
    intervals: list[str] | None = None,
    periods: Periods = "auto",
    base_url: str = BASE_URL,
    jobs: int = DEFAULT_JOBS,
    retries: int = DEFAULT_RETRIES,
    progress: bool = False,
) -> DownloadSummary:
    """Fetches ``kind`` dumps of ``symbols`` for ``start``..``end`` (inclusive, UTC days)."""
    files = plan(venue, kind, symbols, start, end, intervals=intervals, periods=periods)
    downloader = Downloader(
        out_dir, base_url=base_url, jobs=jobs, retries=retries, progress=progress
    )
    return asyncio.run(downloader.run(files))
