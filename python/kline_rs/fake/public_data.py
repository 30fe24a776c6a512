"""data.binance.vision's ``/data/…`` paths on the fake exchange: zips and their CHECKSUMs.

A zip is served from ``files_dir`` when it holds one of that name (by its relative path, or by
its bare name for the exchange's own venue: Binance's real files), else made from the market's
tape (one CSV member, ``kline_rs.fake.dump_csv``) once the file's days are over and not before
the symbol's listing day; anything else is S3's 404. ``Range: bytes=N-`` (and ``N-M``) is
answered with 206, as the CDN does. Faults (``Faults.dump_*``): a body cut off mid-way (the
connection dropped), one byte changed, a 503, ``Range`` ignored.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

from aiohttp import web

from kline_rs.fake.dump_csv import dump_csv, span_ms
from kline_rs.fake.faults import Faults
from kline_rs.fake.kline_rows import KlineBook
from kline_rs.fake.market import DAY_MS, Market
from kline_rs.fake.stats import ExchangeStats
from kline_rs.public_data import DAILY_INTERVALS, DumpFile, parse_path
from kline_rs.venues import Venue

#: Zips kept made (each is rebuilt the same from the tape when asked again).
CACHE_FILES = 32
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_NO_SUCH_KEY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    "<Message>The specified key does not exist.</Message><Key>{key}</Key></Error>"
)


class PublicData:
    """The ``/data/`` routes of one venue over one market."""

    def __init__(
        self,
        market: Market,
        venue: Venue,
        faults: Faults,
        stats: ExchangeStats,
        files_dir: str | Path | None = None,
    ) -> None:
        self.market = market
        self.venue = venue
        self.faults = faults
        self.stats = stats
        self.files_dir = Path(files_dir) if files_dir is not None else None
        self._book = KlineBook(venue)
        self._made: OrderedDict[str, bytes] = OrderedDict()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/data/{tail:.+}", self.handle)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.path.lstrip("/")
        asked = request.headers.get("Range")
        self.stats.dump_requests.append((key, asked))
        if self.faults.dump_errors > 0:
            self.faults.dump_errors -= 1
            return web.Response(status=503, text="Service Unavailable")
        checksum = key.endswith(".CHECKSUM")
        zip_key = key.removesuffix(".CHECKSUM")
        body = self.zip_bytes(zip_key)
        if body is None:
            return web.Response(
                status=404, text=_NO_SUCH_KEY.format(key=key), content_type="application/xml"
            )
        name = zip_key.rsplit("/", 1)[-1]
        if checksum:
            return web.Response(body=self.checksum_text(zip_key, name, body).encode())
        return await self._send(request, body, asked)

    def checksum_text(self, zip_key: str, name: str, body: bytes) -> str:
        """Binance's own CHECKSUM file where there is one, else ``<sha256>  <name>``."""
        real = self._real(zip_key)
        if real is not None:
            beside = real.with_name(real.name + ".CHECKSUM")
            if beside.is_file():
                return beside.read_text()
        return f"{hashlib.sha256(body).hexdigest()}  {name}"

    def zip_bytes(self, key: str) -> bytes | None:
        """The zip at ``key`` (``data/…/X.zip``), or None where Binance has none."""
        real = self._real(key)
        if real is not None:
            return real.read_bytes()
        f = parse_path(key)
        if f is None or not self._published(f):
            return None
        made = self._made.get(key)
        if made is None:
            made = self._make(f)
            self._made[key] = made
            if len(self._made) > CACHE_FILES:
                self._made.popitem(last=False)
        return made

    def _real(self, key: str) -> Path | None:
        if self.files_dir is None or ".." in key.split("/"):
            return None
        for candidate in (self.files_dir / key, self.files_dir / key.rsplit("/", 1)[-1]):
            if candidate.is_file() and (candidate.parent != self.files_dir or self._ours(key)):
                return candidate
        return None

    def _ours(self, key: str) -> bool:
        f = parse_path(key)
        return f is not None and f.venue == self.venue.name

    def _published(self, f: DumpFile) -> bool:
        inst = self.market.instruments.get(f.symbol)
        if f.venue != self.venue.name or inst is None:
            return False
        if f.interval is not None and f.period == "daily" and f.interval not in DAILY_INTERVALS:
            return False
        if f.interval == "1s" and self.venue.futures:
            return False
        _, end_ms = span_ms(f)
        listed_day = inst.listed_ms // DAY_MS * DAY_MS
        return end_ms > listed_day and end_ms <= self.market.now_ms

    def _make(self, f: DumpFile) -> bytes:
        inst = self.market.instruments[f.symbol]
        text = dump_csv(f, self.venue, inst, self.market.tape(f.symbol), self._book)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            info = zipfile.ZipInfo(f.name.removesuffix(".zip") + ".csv", (2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
        return out.getvalue()

    async def _send(
        self, request: web.Request, body: bytes, asked: str | None
    ) -> web.StreamResponse:
        size = len(body)
        if self.faults.dump_corruptions > 0:
            self.faults.dump_corruptions -= 1
            flip = size // 2
            body = body[:flip] + bytes([body[flip] ^ 0xFF]) + body[flip + 1 :]
        start, end = 0, size - 1
        m = None if self.faults.dump_ignore_range else _RANGE.match(asked or "")
        if m is not None:
            start = int(m[1])
            end = min(size - 1, int(m[2])) if m[2] else size - 1
            if start >= size or start > end:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/zip"}
        status = 200
        if m is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        part = body[start : end + 1]
        if self.faults.dump_cuts > 0 and len(part) > 1:
            self.faults.dump_cuts -= 1
            return await self._cut(request, part, status, headers)
        return web.Response(body=part, status=status, headers=headers)

    async def _cut(
        self, request: web.Request, part: bytes, status: int, headers: dict[str, str]
    ) -> web.StreamResponse:
        """Sends half of ``part`` under a Content-Length of all of it, then drops the
        connection."""
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(part)
        await response.prepare(request)
        await response.write(part[: len(part) // 2])
        if request.transport is not None:
            request.transport.close()
        return response
