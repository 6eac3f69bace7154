"""Logging set-up: the rotating human log (phone numbers masked), the `--log-json` sink, Qt's
messages routed in, and a crash handler that logs and tells the user."""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from tapi_agent.core.log import JsonEventFormatter, mask_phone
from tapi_agent.core.redact import redact_text

LOG_FILE_NAME = "tapi-agent.log"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"

# Libraries that log every request at INFO; their chatter drowns the agent's own lines.
_QUIET = ("websockets", "asyncio", "keyring")

# Something that looks like a phone number: 7+ digits with spaces, dashes, dots or brackets,
# not glued to letters (ids), and not an ISO date or a time (which has 8 digits and dashes).
_PHONE = re.compile(r"(?<![\w.:/-])(?:\+|00)?\(?\d[\d ()\-]{5,}\d(?![\w:/]|\.\d)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

log = logging.getLogger("tapi_agent.logs")


def mask_phones(text: str) -> str:
    """`text` with every phone-number-looking run masked except its last three digits."""

    def repl(m: re.Match[str]) -> str:
        s = m.group(0)
        if sum(ch.isdigit() for ch in s) < 7 or _DATE.search(s):
            return s
        return mask_phone(s)

    return _PHONE.sub(repl, text)


class MaskPhonesFilter(logging.Filter):
    """Masks phone numbers and secrets (`core.redact`: URL passwords, tokens, codes) in a
    record's message (and traceback text) before any handler formats it; structured event
    fields are left alone (they carry neither)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_phones_masked", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format: let the handler report it as logging does
            return True
        record.msg = redact_text(mask_phones(message))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(mask_phones(record.exc_text))
        record._phones_masked = True
        return True


def _ours(handler: logging.Handler) -> bool:
    return bool(getattr(handler, "_tapi_agent", False))


def _mark(handler: logging.Handler) -> logging.Handler:
    handler._tapi_agent = True  # type: ignore[attr-defined]
    handler.addFilter(MaskPhonesFilter())
    return handler


def log_file(log_dir: Path) -> Path:
    """The current human log file in `log_dir`."""
    return log_dir / LOG_FILE_NAME


def setup_logging(*, log_dir: Path, level: str = "INFO", json_path: str | None = None,
                  qt_messages: bool = True) -> None:
    """Rotating human log in `log_dir` (10 MB x 5), optional JSON lines to `json_path` ('-' is
    stdout), Qt's messages routed in when `qt_messages`. Calling it again replaces the set-up."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if _ours(h)]:
        root.removeHandler(handler)
        handler.close()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    root.setLevel(numeric)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))

    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_file(log_dir), maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8",
            delay=True)
    except OSError as exc:
        # A read-only profile must not stop the agent: log to stderr instead and say so
        # (the windowed Windows build has no stderr at all: then there is nowhere to log).
        file_handler = (logging.StreamHandler(sys.stderr) if sys.stderr is not None  # type: ignore[assignment]
                        else logging.NullHandler())
        root.addHandler(_mark(file_handler))
        log.warning("cannot write the log in %s (%s); logging to stderr", log_dir, exc)
    else:
        root.addHandler(_mark(file_handler))
    file_handler.setFormatter(logging.Formatter(HUMAN_FORMAT))

    if json_path:
        json_handler: logging.Handler
        if json_path == "-":
            # The windowed Windows build has no stdout: `--log-json -` then writes nothing.
            json_handler = (_FlushingStreamHandler(sys.stdout) if sys.stdout is not None
                            else logging.NullHandler())
        else:
            Path(json_path).parent.mkdir(parents=True, exist_ok=True)
            json_handler = _FlushingFileHandler(json_path, encoding="utf-8")
        json_handler.setFormatter(JsonEventFormatter())
        root.addHandler(_mark(json_handler))

    if qt_messages:
        try:
            from tapi_agent.ui.qtlog import install_qt_message_handler
        except ImportError:  # Qt is not installed (a headless tool): nothing to route
            pass
        else:
            install_qt_message_handler()


class _FlushingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that flushes each line (a reader tails it live)."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.flush()


class _FlushingFileHandler(logging.FileHandler):
    """A file handler that flushes each line (tests and IT tools tail it live)."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.flush()


def crash_message(exc: BaseException) -> str:
    """What the user is told about an unexpected error: short, no traceback, numbers masked."""
    detail = mask_phones(str(exc))[:200]
    kind = type(exc).__name__
    return (f"Something went wrong ({kind}{': ' + detail if detail else ''}). "
            "TAPI Agent keeps running; the details are in the log (Open log folder).")


def install_crash_handler(notify: Callable[[str], None]) -> None:
    """Log any uncaught exception (main thread, other threads, Qt slots) and call `notify` with
    a short message for the user. `notify` may be called from any thread: pass something
    thread-safe, such as a Qt signal's `emit`."""
    crash_log = logging.getLogger("tapi_agent.crash")

    def handle(kind: type[BaseException], exc: BaseException, tb: TracebackType | None,
               where: str) -> None:
        if issubclass(kind, KeyboardInterrupt | SystemExit):
            sys.__excepthook__(kind, exc, tb)
            return
        crash_log.critical("uncaught exception in %s", where, exc_info=(kind, exc, tb))
        try:
            notify(crash_message(exc))
        except Exception:  # telling the user must never raise out of the hook
            crash_log.exception("could not tell the user about the crash")

    def excepthook(kind: type[BaseException], exc: BaseException,
                   tb: TracebackType | None) -> None:
        handle(kind, exc, tb, "the main thread")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        handle(args.exc_type, args.exc_value, args.exc_traceback, f"thread {name}")

    sys.excepthook = excepthook
    threading.excepthook = thread_hook
