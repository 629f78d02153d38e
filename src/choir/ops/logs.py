"""Structured logs: one JSON object per line (``ts``, ``level``, ``logger``, ``msg``, then any
extra fields), with a filter that keeps message contents, prompts and secrets out.

Choir's own code never passes a content, a prompt, a cookie, a token or a signature to a
logger (it logs ids and counts). The filter is the second line, for what libraries log:
- records below DEBUG (uvicorn's TRACE dumps ASGI messages) and the wire dumps of the
  WebSocket library (``< TEXT '...'``, ``> Cookie: ...``, logged at DEBUG) are dropped;
- an extra field whose name says it holds a secret or a text (``content``, ``prompt``,
  ``cookie``, ``token``, ``signature``, ...) is replaced by ``[redacted]``;
- in the rendered text, session cookies, bearer tokens, JSON fields that carry user text
  and the values of URL query parameters (a search query is a person's words) are
  replaced by ``[redacted]``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, Final

REDACTED: Final = "[redacted]"
# Extra fields whose value is never written, matched as substrings of the lowercased key.
SENSITIVE_KEYS: Final = (
    "content",
    "prompt",
    "text",
    "html",
    "cookie",
    "token",
    "session",
    "signature",
    "secret",
    "password",
    "authorization",
    "api_key",
    "nonce",
)
_SCRUBS: Final = (
    (re.compile(r"(choir_session=)[^;\s'\"]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)((?:set-)?cookie:\s*)[^\r\n]+"), r"\1" + REDACTED),
    (
        re.compile(r'"(content|prompt|text|html|signature|message|token)"\s*:\s*"(?:[^"\\]|\\.)*"?'),
        r'"\1":"' + REDACTED + '"',
    ),
    (
        re.compile(r"'(content|prompt|text|html|signature|message|token)'\s*:\s*'(?:[^'\\]|\\.)*'?"),
        r"'\1':'" + REDACTED + "'",
    ),
    # Query values of any URL or request path: a search query is a person's words.
    (re.compile(r"([?&][A-Za-z0-9_.~-]+=)[^&\s\"'#]*"), r"\1" + REDACTED),
)
# The attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)
_MARKER: Final = "_choir_json_handler"


def scrub(text: str) -> str:
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def _is_wire_dump(record: logging.LogRecord) -> bool:
    # The websockets library logs every frame and header as "< ..." / "> ..." at DEBUG.
    msg = record.msg
    return record.levelno <= logging.DEBUG and isinstance(msg, str) and msg[:2] in ("< ", "> ")


class RedactFilter(logging.Filter):
    """Drops wire dumps and redacts secrets; attached to the JSON handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.DEBUG or _is_wire_dump(record):
            return False
        for key in list(record.__dict__):
            if key not in _STANDARD_ATTRS and any(s in key.lower() for s in SENSITIVE_KEYS):
                record.__dict__[key] = REDACTED
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, int | float | bool | type(None)) else scrub(str(value))
                )
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = scrub(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


class JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes JSON lines to ``stream``, or to whatever ``sys.stderr`` is at the time of each
    record when none is given (so a replaced stderr, as under a test runner, is followed)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._fixed: IO[str] | None = stream
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self.addFilter(RedactFilter())
        setattr(self, _MARKER, True)

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: IO[str] | None) -> None:
        self._fixed = value


def configure(level: str = "INFO", stream: IO[str] | None = None) -> JsonHandler:
    """Send every log record through one JSON handler on the root logger. Idempotent: a second
    call replaces the handler the first installed. uvicorn's own loggers lose their text
    handlers and propagate to it, and a plain handler from ``logging.basicConfig`` is removed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        # Exact type: subclasses (a test runner's capture handler) are someone else's.
        if getattr(handler, _MARKER, False) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    handler = JsonHandler(stream)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.propagate = True
    return handler


def installed_handler() -> JsonHandler | None:
    return next((h for h in logging.getLogger().handlers if isinstance(h, JsonHandler)), None)
