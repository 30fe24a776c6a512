"""Logging for the CLI: text lines as before, or one JSON object per line.

A JSON line holds ``time`` (UTC, ISO 8601 with ms), ``level``, ``logger`` and ``message``,
then every field given with ``extra=`` and ``exc`` for an exception's traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "kline-rs: %(name)s: %(message)s"

#: What every LogRecord has: anything else on a record came with ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(level: str = "warning", fmt: str = "text") -> None:
    """Logs of ``level`` and up to stderr, as text or JSON lines (replaces earlier set-up).
    Other libraries (websockets, aiohttp) log from warning up whatever ``level`` is: their
    debug logs are one line per frame."""
    if level not in LEVELS or fmt not in FORMATS:
        raise ValueError(f"log level {level!r} / format {fmt!r}: expected {LEVELS} / {FORMATS}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    others = max(logging.getLevelName(level.upper()), logging.WARNING)
    logging.basicConfig(level=others, handlers=[handler], force=True)
    logging.getLogger("kline_rs").setLevel(level.upper())
