"""The ``kline-rs`` command: ``download`` and ``replay`` dumps, ``run`` the live pipeline,
``demo`` it offline, ``serve`` a store over Binance's REST API."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, cast

from kline_rs import IntervalError, KlineError, __version__, _core, interval_name, scale
from kline_rs._core import tz_offset_name
from kline_rs.operate.config import ConfigError, parse_args
from kline_rs.operate.logs import FORMATS, LEVELS, setup_logging
from kline_rs.replay import MAX_JUMP_MS, replay

if TYPE_CHECKING:
    from kline_rs.records import ClosedKline
    from kline_rs.serve import ServeOptions

#: Binance's timeZone forms: hours (``8``, ``-1``) or hours:minutes (``+08:00``, ``-1:00``).


def _usage_errors() -> tuple[type[Exception], ...]:
    """Errors of what was asked for rather than of the run: exit 2, as argparse's own."""
    from kline_rs.live.symbols import UnknownSymbolsError
    from kline_rs.public_data import LayoutError
    from kline_rs.serve import RemoteBindError
    from kline_rs.storage.parquet import ExportFormatError

    return (UnknownSymbolsError, ExportFormatError, LayoutError, RemoteBindError)


def _lazy(module: str, name: str) -> Callable[[str], object]:
    """``module.name``, imported when first called: ``kline-rs replay`` imports neither numpy
    nor the live pipeline (their import took longer than a small replay)."""

    def call(text: str) -> object:
        check: Callable[[str], object] = getattr(importlib.import_module(module), name)
        return check(text)

    return call


def _intervals(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    try:
        for name in names:
            interval_name(name)
    except KlineError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return names


def _checked(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type: the text if ``check`` takes it, else its error as argparse's."""

    def parse(text: str) -> str:
        try:
            check(text)
        except KlineError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    return parse


def _symbols(text: str) -> frozenset[str]:
    from kline_rs.live.symbols import names

    try:
        got = names(text)
    except KlineError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not got:
        raise argparse.ArgumentTypeError("no symbol given")
    return got


def _tz(text: str) -> str:
    """A time-zone offset as Binance's ``timeZone`` takes it → ``+HH:MM`` (the core's rule)."""
    try:
        return tz_offset_name(text)
    except KlineError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _tz_joined(argv: Sequence[str]) -> list[str]:
    """``--tz -05:00`` → ``--tz=-05:00``: argparse takes a value starting with - for an option."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == "--tz" and arg[:1] == "-" and arg[1:2].isdigit():
            out[-1] = f"--tz={arg}"
        else:
            out.append(arg)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kline-rs", description="Exact Binance klines from trades.")
    p.add_argument("--version", action="version", version=f"kline-rs {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="aggTrades dumps (csv/zip) → Binance kline CSV files")
    r.add_argument("inputs", nargs="+", help="files, directories or glob patterns")
    r.add_argument("--intervals", type=_intervals, default=["1m"], help="e.g. 1m,5m,1h")
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument("--symbol", help="symbol for all inputs (default: from each file name)")
    r.add_argument(
        "--tz",
        dest="tz_offset",
        type=_tz,
        help="time-zone offset for 1d and up: [+-]hours[:minutes] within -12:00..+14:00, "
        "e.g. +08:00, -05:00 or 8 (Binance's timeZone forms; Z or UTC: leave it out)",
    )
    r.add_argument("--anchor-3d", help="YYYY-MM-DD the symbol's 3d grid starts (listing day)")
    r.add_argument("--skip-bad", action="store_true", help="count and skip bad rows")
    r.add_argument(
        "--max-jump",
        type=lambda t: None if t == "none" else _duration(t),
        default=MAX_JUMP_MS,
        help="refuse a trade this much after the previous one unless the next follows it "
        "(a halt); e.g. 30d, or none (default 7d)",
    )
    rule = r.add_mutually_exclusive_group()
    rule.add_argument(
        "--quote-rule",
        choices=["per-trade", "exact-sum"],
        default="per-trade",
        help="quote volume: each trade's p*q truncated to 8 decimals then summed, as Binance "
        "spot and USD-M (default); exact-sum: the exact sum of p*q",
    )
    rule.add_argument(
        "--contract-size",
        type=int,
        help="COIN-M dumps: the symbol's contractSize (100 for BTCUSD_*, 10 for the others); "
        "quote volumes are then base-asset volume, contracts x size / price, as Binance's",
    )
    r.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads (0: one per core): whole symbols side by side, or one symbol's parsers",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument(
        "--format",
        choices=["csv", "parquet"],
        default="csv",
        help="csv: Binance's kline CSV (default); parquet: exact decimal columns (needs pyarrow)",
    )
    r.add_argument("--header", action="store_true", help="CSV: a first line of column names")

    _download_parser(sub)

    live = sub.add_parser("run", help="follow Binance live; closed klines as JSON lines")
    live.add_argument(
        "--config", help="a TOML file of these options (same names); the command line overrides"
    )
    live.add_argument("--venue", choices=["spot", "usdm", "coinm"], default="spot")
    which = live.add_mutually_exclusive_group(required=True)
    which.add_argument("--symbols", type=_symbols, help="comma list, e.g. BTCUSDT,ETHUSDT")
    which.add_argument("--quote", help="every TRADING symbol with this quote asset, e.g. USDT")
    which.add_argument("--pattern", help="every TRADING symbol matching this regular expression")
    live.add_argument("--intervals", type=_intervals, default=["1m"], help="e.g. 1m,5m,1h")
    live.add_argument(
        "--db",
        type=_checked(_lazy("kline_rs.live.store", "check_db_target")),
        help="store klines here and resume from it: an SQLite file or postgresql:// URL",
    )
    live.add_argument(
        "--store-wait", type=float, default=60.0, help="seconds to wait for the store at start"
    )
    live.add_argument(
        "--lookback", type=_duration, default=0, help="history to rebuild at start, e.g. 2h"
    )
    live.add_argument(
        "--history",
        choices=["aggtrades", "klines"],
        default="aggtrades",
        help="lookback from REST aggTrades (exact, rebuilt) or REST klines (Binance's own)",
    )
    live.add_argument(
        "--stream",
        choices=["aggTrade", "trade"],
        default="aggTrade",
        help="follow aggTrade streams, or raw trade streams (every quote volume exact; "
        "history and gap repair from REST historicalTrades)",
    )
    live.add_argument("--flush-every", type=float, default=1.0, help="seconds between commits")
    live.add_argument(
        "--grace", type=int, default=250, help="ms to wait for stragglers before closing"
    )
    live.add_argument("--print", action="store_true", help="with --db, print klines as well")
    live.add_argument(
        "--format",
        choices=["jsonl", "binance-ws", "binance-rest"],
        default="jsonl",
        help="printed klines: our JSON lines (default), Binance's websocket kline events, or "
        "Binance's REST kline arrays (one symbol and interval)",
    )
    live.add_argument(
        "--ws-url",
        type=_checked(_lazy("kline_rs.feeds.binance", "ws_base")),
        help="websocket base URL (default: the venue's)",
    )
    live.add_argument("--rest-url", help="REST base URL (default: the venue's)")
    live.add_argument("--partitions", type=int, default=0, help="engine workers (0: per core)")
    live.add_argument("--duration", type=float, help="stop after this many seconds")
    _log_options(live)
    live.add_argument(
        "--metrics",
        type=_lazy("kline_rs.operate.server", "address"),
        help="serve /metrics (Prometheus) and /healthz on HOST:PORT, e.g. 127.0.0.1:9108",
    )
    live.add_argument(
        "--serve",
        type=_bind,
        metavar="HOST:PORT",
        help="serve the klines over Binance's REST and websocket API and the chart page, the "
        "open ones from the engine (see kline-rs serve)",
    )
    _access_arguments(live, "--serve")

    _capture_parser(sub)
    _aggregate_parser(sub)

    demo = sub.add_parser("demo", help="the live pipeline against a local fake exchange")
    demo.add_argument("--symbols", type=int, default=24, help="simulated symbols")
    demo.add_argument("--speed", type=float, default=30.0, help="market seconds per second")
    demo.add_argument("--duration", type=float, default=20.0, help="seconds to run")
    demo.add_argument("--db", default="demo-klines.sqlite", help="SQLite file (made afresh)")

    show = sub.add_parser("show", help="stored klines of one symbol and interval")
    show.add_argument(
        "db",
        type=_checked(_lazy("kline_rs.live.store", "check_db_target")),
        help="SQLite file or postgresql:// URL",
    )
    show.add_argument("symbol")
    show.add_argument("interval")
    show.add_argument("--venue", choices=["spot", "usdm", "coinm"], default="spot")
    show.add_argument("--last", type=int, default=10, help="how many of the latest")

    export = sub.add_parser(
        "export", help="stored klines to a Parquet file (exact decimals) or a kline CSV"
    )
    export.add_argument(
        "db",
        type=_checked(_lazy("kline_rs.live.store", "check_db_target")),
        help="SQLite file or postgresql:// URL",
    )
    export.add_argument(
        "out",
        type=_checked(_lazy("kline_rs.storage.parquet", "export_format")),
        help="*.parquet: Parquet, exact decimals; *.csv: Binance's kline CSV (one series)",
    )
    export.add_argument("--venue", choices=["spot", "usdm", "coinm"], default="spot")
    export.add_argument("--symbols", type=_symbols, help="comma list (default: all stored)")
    export.add_argument("--intervals", type=_intervals, help="e.g. 1m,1h (default: all stored)")
    export.add_argument(
        "--start", type=_time, help="from this open time: ms or ISO, e.g. 2024-01-02T10:00 (UTC)"
    )
    export.add_argument("--end", type=_time, help="before this open time: ms or ISO (UTC)")

    _serve_parser(sub)
    return p


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "serve",
        help="serve stored klines over Binance's REST API (ccxt, python-binance, SDKs)",
        description="Serves a store's klines at Binance's REST paths (/api/v3/klines, "
        "/fapi/v1/klines, /dapi/v1/klines, exchangeInfo, time, ping) and /krs/v1/klines; any "
        "interval, rolled up on request from a stored one. Loopback only unless "
        "--allow-remote.",
    )
    s.add_argument(
        "--config", help="a TOML file of these options (same names); the command line overrides"
    )
    s.add_argument(
        "--db",
        type=_checked(_lazy("kline_rs.live.store", "check_db_target")),
        help="the store (required): an SQLite file or postgresql:// URL",
    )
    s.add_argument("--venue", choices=["spot", "usdm", "coinm"], default="spot")
    s.add_argument(
        "--bind",
        type=_bind,
        default="127.0.0.1:8080",
        help="HOST:PORT to listen on (default 127.0.0.1:8080; port 0: any free one)",
    )
    _access_arguments(s, "--bind")
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    _log_options(s)


def _access_arguments(p: argparse.ArgumentParser, bind: str) -> None:
    """Who may use a server: ``serve``'s and ``run --serve``'s."""
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help=f"allow a {bind} address other than loopback (give --token too)",
    )
    p.add_argument(
        "--token",
        action="append",
        help="require this token on every request, as X-MBX-APIKEY: T or Authorization: "
        "Bearer T (a websocket URL may carry ?token=T; repeat for several clients, each its "
        "own weight budget; default: $KLINE_RS_TOKEN if set)",
    )
    p.add_argument(
        "--weight-limit",
        type=int,
        default=6000,
        help="request weight per client per minute, Binance's weights (default 6000)",
    )


def _serve_options(args: argparse.Namespace) -> ServeOptions:
    import os

    from kline_rs.serve import ServeOptions

    tokens = args.token or (
        [os.environ["KLINE_RS_TOKEN"]] if os.environ.get("KLINE_RS_TOKEN") else []
    )
    return ServeOptions(tokens=tuple(tokens), weight_per_minute=args.weight_limit)


def _bind(text: str) -> tuple[str, int]:
    from kline_rs.serve import bind_address

    try:
        return bind_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _download_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from kline_rs.public_data import (
        BASE_URL,
        DEFAULT_JOBS,
        DEFAULT_RETRIES,
        KINDS,
        MAX_JOBS,
        MAX_RETRIES,
    )

    d = sub.add_parser(
        "download",
        help="data.binance.vision dumps (aggTrades, trades, klines), checksum-verified",
        description="Fetches data.binance.vision zips into OUT in the server's layout "
        "(OUT/data/spot/daily/aggTrades/BTCUSDT/...), each checked against its .CHECKSUM; "
        "files already there and verified are skipped, interrupted ones resumed.",
    )
    d.add_argument("--venue", choices=["spot", "usdm", "coinm"], default="spot")
    d.add_argument("--kind", choices=KINDS, required=True)
    d.add_argument(
        "--interval", type=_intervals, help="klines only: e.g. 1m or 1m,1h (1M: the month)"
    )
    d.add_argument("--symbols", type=_symbols, required=True, help="comma list, e.g. BTCUSDT")
    d.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD (UTC)")
    d.add_argument(
        "--end", type=_day, help="last day, YYYY-MM-DD, included (default: yesterday, UTC)"
    )
    periods = d.add_mutually_exclusive_group()
    periods.add_argument(
        "--monthly", dest="periods", action="store_const", const="monthly",
        help="monthly files for every month the range touches",
    )  # fmt: skip
    periods.add_argument(
        "--daily", dest="periods", action="store_const", const="daily",
        help="daily files only (default: monthly for the whole months in the range, daily "
        "for the other days, and by day a month not published yet)",
    )  # fmt: skip
    d.add_argument("--out", required=True, help="directory (the server's layout below it)")
    d.add_argument(
        "--jobs", type=_bounded(1, MAX_JOBS), default=DEFAULT_JOBS,
        help=f"files in flight at once, 1..{MAX_JOBS} (default {DEFAULT_JOBS})",
    )  # fmt: skip
    d.add_argument(
        "--retries", type=_bounded(0, MAX_RETRIES), default=DEFAULT_RETRIES,
        help=f"per file, on network errors and 5XX (default {DEFAULT_RETRIES})",
    )  # fmt: skip
    d.add_argument("--base-url", default=BASE_URL, help=f"default {BASE_URL}")
    d.add_argument("--no-progress", action="store_true", help="no progress line")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD") from None


def _bounded(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = lo - 1
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number in {lo}..{hi}")
        return value

    return parse


def _time(text: str) -> int:
    """ms, or an ISO 8601 day or time (UTC unless it has an offset) → ms (the core's rule)."""
    try:
        return _core.parse_time(text)
    except KlineError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _duration(text: str) -> int:
    """``"90m"`` / ``"2h"`` / ``"1d"`` / ``"30s"`` / ``"1w"`` → ms (the core's interval lengths)."""
    try:
        shortest, longest = _core.interval_ms(text)
    except IntervalError:
        shortest = longest = -1
    if shortest != longest or shortest <= 0:  # months have no one length
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. 30s, 90m, 2h, 1d or 1w")
    return shortest


def _replay(args: argparse.Namespace) -> int:
    if args.header and args.format != "csv":
        print("kline-rs: error: --header is for CSV output: Parquet names its columns itself",
              file=sys.stderr)  # fmt: skip
        return 2
    summary = replay(
        args.inputs,
        args.out,
        args.intervals,
        symbol=args.symbol,
        tz_offset=args.tz_offset,
        anchor_3d=args.anchor_3d,
        skip_bad=args.skip_bad,
        max_jump_ms=args.max_jump,
        quote_rule=args.quote_rule
        if args.contract_size is None
        else f"contracts:{args.contract_size}",
        threads=args.threads,
        progress=not args.no_progress,
        format=args.format,
        header=args.header,
    )
    print(summary.describe(), file=sys.stderr)
    return 0


def _download(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta, timezone

    from kline_rs.download import download

    end = args.end or datetime.now(timezone.utc).date() - timedelta(days=1)
    summary = download(
        args.venue,
        args.kind,
        sorted(args.symbols),
        args.start,
        end,
        args.out,
        intervals=args.interval,
        periods=args.periods or "auto",
        base_url=args.base_url,
        jobs=args.jobs,
        retries=args.retries,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    print(summary.describe(), file=sys.stderr)
    return 1 if summary.failed else 0


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from kline_rs.live.output import JsonLines
    from kline_rs.live.pipeline import LivePipeline, PipelineConfig
    from kline_rs.live.status import with_status_line
    from kline_rs.live.symbols import Selection
    from kline_rs.rest import VenueName

    config = PipelineConfig(
        venue=cast(VenueName, args.venue),
        selection=Selection(symbols=args.symbols, quote=args.quote, pattern=args.pattern),
        intervals=args.intervals,
        ws_url=args.ws_url,
        rest_url=args.rest_url,
        partitions=args.partitions,
        db=args.db,
        lookback_ms=args.lookback,
        history=args.history,
        stream=args.stream,
        flush_every=args.flush_every,
        grace_ms=args.grace,
        store_wait=args.store_wait,
    )
    if args.format == "binance-rest" and (
        args.symbols is None or len(args.symbols) != 1 or len(args.intervals) != 1
    ):
        print(
            "kline-rs: error: --format binance-rest prints rows that name no symbol or "
            "interval: follow one symbol (--symbols) and one interval, or use binance-ws",
            file=sys.stderr,
        )
        return 2
    printer = JsonLines(sys.stdout, args.format) if args.print or not args.db else None
    sinks: list[Callable[[ClosedKline], None]] = [printer] if printer else []

    def on_kline(k: ClosedKline) -> None:
        for sink in sinks:
            sink(k)

    pipeline = LivePipeline(config, on_kline)
    if args.serve:
        from kline_rs.serve import check_bind

        check_bind(args.serve[0], args.allow_remote)  # before the run starts: exit 2

    async def serve_klines() -> None:
        from kline_rs.serve import Server
        from kline_rs.serve.live import pipeline_source

        await pipeline.started()
        source = pipeline_source(pipeline)
        sinks.append(source.on_closed)
        host, port = args.serve
        options = _serve_options(args)
        async with Server(source, host=host, port=port, allow_remote=args.allow_remote,
                          options=options) as server:  # fmt: skip
            print(f"kline-rs: serving {server.url}", file=sys.stderr, flush=True)
            await asyncio.Event().wait()

    async def job() -> None:
        from kline_rs.operate.server import serving

        serve = serving(pipeline, *args.metrics) if args.metrics else contextlib.nullcontext()
        async with serve:
            run = asyncio.create_task(with_status_line(pipeline, pipeline.run(args.duration)))
            tasks = {run, asyncio.create_task(serve_klines())} if args.serve else {run}
            try:
                # The run ends the job; a server that fails (its port taken) ends it too.
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await t

    try:
        asyncio.run(job())
    finally:
        if pipeline.has_started:
            summary = pipeline.summary()
            logging.getLogger("kline_rs.run").info("run ended", extra=summary.fields())
            print(f"kline-rs: {summary.line()}", file=sys.stderr)
    return 0


def _log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", choices=LEVELS, default="warning", help="default: warning")
    p.add_argument(
        "--log-format", choices=FORMATS, default="text", help="json: one JSON object per line"
    )


def _nats_urls(text: str) -> list[str]:
    """``--nats``: comma-separated server URLs."""
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise argparse.ArgumentTypeError("no NATS server given (nats://host:4222,…)")
    return urls


def _capture_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser(
        "capture", help="follow Binance live and publish each trade to NATS JetStream"
    )
    c.add_argument(
        "--nats",
        required=True,
        type=_nats_urls,
        help="NATS servers, comma-separated: nats://host:4222,…",
    )
    c.add_argument("--venue", choices=["spot", "usdm", "coinm"], default="spot")
    which = c.add_mutually_exclusive_group(required=True)
    which.add_argument("--symbols", type=_symbols, help="comma list, e.g. BTCUSDT,ETHUSDT")
    which.add_argument("--quote", help="every TRADING symbol with this quote asset, e.g. USDT")
    which.add_argument("--pattern", help="every TRADING symbol matching this regular expression")
    c.add_argument(
        "--ws-url",
        type=_checked(_lazy("kline_rs.feeds.binance", "ws_base")),
        help="websocket base URL (default: the venue's)",
    )
    c.add_argument("--rest-url", help="REST base URL (default: the venue's)")
    c.add_argument(
        "--max-bytes",
        type=int,
        default=scale.TRADES_MAX_BYTES,
        help="the stream's size bound when capture creates it (default "
        f"{scale.TRADES_MAX_BYTES // 2**30} GiB; past it capture stops with an error)",
    )
    c.add_argument("--duration", type=float, help="stop after this many seconds")
    _log_options(c)


def _capture(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import signal

    from kline_rs.live.symbols import Selection
    from kline_rs.rest import VenueName
    from kline_rs.scale.capture import Capture, CaptureConfig

    capture = Capture(
        CaptureConfig(
            nats=args.nats,
            venue=cast(VenueName, args.venue),
            selection=Selection(symbols=args.symbols, quote=args.quote, pattern=args.pattern),
            ws_url=args.ws_url,
            rest_url=args.rest_url,
            max_bytes=args.max_bytes,
        )
    )

    async def job() -> None:
        run = asyncio.create_task(capture.run(args.duration))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, run.cancel)  # cancelled, it still drains
        with contextlib.suppress(asyncio.CancelledError):
            await run

    try:
        asyncio.run(job())
    finally:
        print(f"kline-rs: capture: {capture.stats.line()}", file=sys.stderr, flush=True)
    return 0


def _aggregate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser(
        "aggregate",
        help="klines from the JetStream trade stream into a store, shards shared by leases",
    )
    a.add_argument(
        "--nats",
        required=True,
        type=_nats_urls,
        help="NATS servers, comma-separated: nats://host:4222,…",
    )
    a.add_argument("--db", required=True, help="the store: a postgresql:// URL")
    a.add_argument("--venue", choices=["spot", "usdm", "coinm"], default="spot")
    a.add_argument("--intervals", type=_intervals, help="comma list (default: all of Binance's)")
    a.add_argument(
        "--rest-url", help="REST base URL, for holes and 3d anchors (default: the venue's)"
    )
    a.add_argument(
        "--lease-ttl", type=float, default=scale.LEASE_TTL_S,
        help="seconds a shard's lease lasts unrenewed (the bucket's, when it creates it)",
    )  # fmt: skip
    a.add_argument("--flush-every", type=float, default=1.0, help="seconds between writes")
    a.add_argument(
        "--quiet-close", type=float, default=scale.QUIET_CLOSE_S,
        help="a shard with nothing to read this long closes klines by the wall clock less this",
    )  # fmt: skip
    a.add_argument(
        "--grace", type=int, default=scale.GRACE_MS,
        help=f"ms of trade time past a kline's close before it closes (default {scale.GRACE_MS})",
    )  # fmt: skip
    a.add_argument("--name", default="", help="this member's name (default: host-pid)")
    a.add_argument(
        "--klines-max-bytes", type=int, default=scale.KLINES_MAX_BYTES,
        help="the klines stream's size bound when this process creates it (default "
        f"{scale.KLINES_MAX_BYTES // 2**30} GiB; past it the oldest klines leave the stream)",
    )  # fmt: skip
    a.add_argument("--duration", type=float, help="stop after this many seconds")
    _log_options(a)


def _dump_tasks() -> None:
    """SIGUSR2: every asyncio task's stack to the log (where a process hangs)."""
    import asyncio
    import io

    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(file=out)
    logging.getLogger("kline_rs").warning("tasks:\n%s", out.getvalue())


def _postgres_only(db: str) -> str:
    from kline_rs.storage.base import is_postgres_url

    if not is_postgres_url(db):
        raise SystemExit(
            "kline-rs aggregate: --db must be a postgresql:// URL (several processes write "
            "the store at once, fenced by a PostgreSQL row)"
        )
    return db


def _aggregate(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from kline_rs.klines import INTERVALS
    from kline_rs.rest import VenueName
    from kline_rs.scale.aggregate import AggregateConfig, Aggregator

    agg = Aggregator(
        AggregateConfig(
            nats=args.nats,
            db=_postgres_only(args.db),
            venue=cast(VenueName, args.venue),
            intervals=args.intervals or INTERVALS,
            rest_url=args.rest_url,
            lease_ttl=args.lease_ttl,
            flush_every=args.flush_every,
            quiet_close=args.quiet_close,
            grace_ms=args.grace,
            name=args.name,
            klines_max_bytes=args.klines_max_bytes,
        )
    )

    async def job() -> None:
        run = asyncio.create_task(agg.run(args.duration))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agg.request_stop)  # writes and releases, then ends
        loop.add_signal_handler(signal.SIGUSR2, _dump_tasks)
        await run

    try:
        asyncio.run(job())
    finally:
        published = agg.publisher.published if agg.publisher is not None else 0
        print(f"kline-rs: aggregate: {agg.stats.line()}, klines published {published}",
              file=sys.stderr, flush=True)  # fmt: skip
    return 0


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from kline_rs.live.demo import run_demo

    asyncio.run(
        run_demo(symbols=args.symbols, speed=args.speed, duration=args.duration, db=args.db)
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from kline_rs.live.demo import print_stored

    print_stored(args.db, args.symbol, args.interval, venue=args.venue, last=args.last)
    return 0


def _export(args: argparse.Namespace) -> int:
    from kline_rs.storage.parquet import export_klines

    rows = export_klines(
        args.db,
        args.out,
        venue=args.venue,
        symbols=args.symbols,
        intervals=args.intervals,
        start=args.start,
        end=args.end,
    )
    print(f"{rows} klines written to {args.out}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import signal

    from kline_rs.serve import Server

    options = _serve_options(args)
    tokens = options.tokens
    host, port = args.bind
    server = Server(
        args.db, host=host, port=port, allow_remote=args.allow_remote, options=options,
        venue=args.venue,
    )  # fmt: skip

    async def job() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await server.source.refresh()
            served = ", ".join(s.symbol for s in server.source.symbols()[:10]) or "no symbols yet"
            auth = f", {len(tokens)} token(s) required" if tokens else ""
            print(f"kline-rs: serving {server.url} ({served}){auth}", file=sys.stderr, flush=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)

    asyncio.run(job())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = _tz_joined(sys.argv[1:] if argv is None else argv)
    try:
        command = "serve" if argv[:1] == ["serve"] else "run"
        args = parse_args(_parser(), argv, command)
    except ConfigError as e:
        print(f"kline-rs: error: {e}", file=sys.stderr)
        return 2
    setup_logging(getattr(args, "log_level", "warning"), getattr(args, "log_format", "text"))
    handlers = {
        "replay": _replay,
        "download": _download,
        "run": _run,
        "capture": _capture,
        "aggregate": _aggregate,
        "demo": _demo,
        "show": _show,
        "export": _export,
        "serve": _serve,
    }
    try:
        return handlers[args.command](args)
    except (KlineError, OSError, ValueError, ImportError) as e:  # StorageError: a KlineError
        print(f"kline-rs: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, _usage_errors()) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
