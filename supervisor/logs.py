"""JSON-lines logging: one object per line with instance id, role and term on every line.

Log calls name an event and pass fields through `extra`:

    logger.info("leader_promoted", extra={"term": 7, "waited_ms": 3.1})

The formatter adds `ts`, `level`, `logger`, `event`, the process context (instance, role,
term from the `LogContext` the runtime keeps current) and scrubs every configured secret
value from the finished line, so a secret that slips into an exception text is masked too.
Python warnings (a library's DeprecationWarning, aiogram's unknown update type) are logged
too, as `python_warning` lines, never as raw text on stderr.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
SECRET_MASK = "***"
# Masking replaces text in the finished line: a shorter value could match keys, punctuation or
# ordinary words and rewrite the JSON itself. Config refuses secrets that short.
MIN_MASKED_SECRET_CHARS = 16
WARNINGS_LOGGER = "py.warnings"


class LogContext:
    """Process-wide fields added to every line (instance id, role, term)."""

    def __init__(self) -> None:
        self.instance_id: str = "-"
        self.role: str = "starting"
        self.term: int | None = None


CONTEXT = LogContext()


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Each secret as written and as JSON-escaped (quotes, backslashes) in the line;
        # longest first so a secret containing another is masked whole.
        forms = {form for s in secrets if len(s) >= MIN_MASKED_SECRET_CHARS
                 for form in (s, orjson.dumps(s).decode()[1:-1])}
        self._secrets = sorted(forms, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            "instance": CONTEXT.instance_id,
            "role": CONTEXT.role,
            "term": CONTEXT.term,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = orjson.dumps(entry, default=str).decode()
        for secret in self._secrets:
            line = line.replace(secret, SECRET_MASK)
        return line


def _warning_as_event(record: logging.LogRecord) -> bool:
    """Turn a captured warning (its text as the message) into a `python_warning` event."""
    record.warning = record.getMessage().strip()
    record.msg, record.args = "python_warning", ()
    return True


def setup_logging(*, level: str = "INFO", instance_id: str = "-",
                  secrets: Iterable[str] = ()) -> None:
    """Send all logging, Python warnings included, to stderr as JSON lines."""
    CONTEXT.instance_id = instance_id
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    logging.getLogger(WARNINGS_LOGGER).addFilter(_warning_as_event)  # once: same function
    # aiohttp's access log is one line per request: far too chatty for /health polling.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
