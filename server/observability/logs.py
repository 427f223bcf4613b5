"""The server's logs: text for people, or one JSON object a line (`--log-format json`) for machines.

Every record's `extra` fields (task, status, event, seq, worker, ...) become JSON fields; in text the
message already says what matters. Nothing secret is logged on purpose (the service logs task ids,
never tokens; uvicorn's access log, whose URLs may hold tokens, stays off), and as a second line of
defence anything that looks like a token, key or bearer credential in a message or field is masked,
and so is every value of a URL's query string, whatever its name (uvicorn logs each socket
handshake's URL, and a client may put a key under any name: `?key=`, `?t=`): lines keep the names.
"""

from __future__ import annotations

import datetime
import logging
import re
import sys
from typing import Any, TextIO

import orjson

from latentcast.server.observability.console import ConsoleHandler, ConsoleProgress

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_SECRET = re.compile(
    r"(?i)((?:[?&]|\b)(?:token|tasktoken|api[_-]?key|x-api-key|signature|authorization)[\"']?\s*[=:]\s*[\"']?"
    r"(?:bearer\s+)?)([^\s&\"',;]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]{8,})")
# a query string: after a character of a path, up to what ends a URL in a log line (a quote, a
# space, or punctuation that ends the sentence around it)
_QUERY = re.compile(r"(?<=[^\s?])\?([^\s\"'<>#]*[^\s\"'<>#,.;:!)\]])")
# an API key or its Wiro secret (server.security.keys), wherever it stands
_KEY_SHAPED = re.compile(r"\b(lcs?_)[A-Za-z0-9_-]{16,}")
_SECRET_FIELDS = frozenset({"token", "tasktoken", "api_key", "apikey", "key", "authorization", "signature", "password"})

# Attributes every LogRecord has; whatever else a record carries came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    """`text` with values of token=, api_key=, Authorization: Bearer ... and the like masked."""
    if not text:
        return text
    text = _QUERY.sub(_query_names, _SECRET.sub(r"\1***", text))
    return _KEY_SHAPED.sub(r"\1***", _BEARER.sub(r"\1***", text))


def _query_names(match: re.Match[str]) -> str:
    """`?a=1&b=2` as `?a=***&b=***`: which parameters came, not what they said."""
    return "?" + "&".join(f"{item.partition('=')[0]}=***" if "=" in item else item for item in match[1].split("&"))


class JSONFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...extra fields, "exception"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for field, value in vars(record).items():
            if field in _STANDARD or field.startswith("_"):
                continue
            entry[field] = "***" if field.lower() in _SECRET_FIELDS else _jsonable(value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _jsonable(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value))


def configure_logging(
    log_format: str = "text", *, progress: bool = False, stream: TextIO | None = None, level: int = logging.INFO
) -> ConsoleProgress | None:
    """Send every logger's records (uvicorn's too, when it is run with `log_config=None`) to
    `stream` (stderr) in `log_format`; returns the console progress bar when `progress` is on
    (text logs only)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of {', '.join(LOG_FORMATS)}")
    stream = stream or sys.stderr
    bar = ConsoleProgress(stream) if progress and log_format == "text" else None
    handler: logging.Handler = ConsoleHandler(stream, bar) if bar is not None else logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs each request with its whole URL, and a webhook's URL may hold its receiver's
    # secret: the webhook sender logs each attempt itself, naming the host only.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    global _progress
    _progress = bar
    return bar


_progress: ConsoleProgress | None = None


def console_progress() -> ConsoleProgress | None:
    """The progress bar `configure_logging` set up for this process, if any."""
    return _progress
