"""Logging: rotating human log with phone numbers masked, JSON lines, Qt messages, crashes."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tapi_agent.core.log import log_event
from tapi_agent.logs import (
    BACKUP_COUNT,
    MAX_BYTES,
    crash_message,
    install_crash_handler,
    log_file,
    mask_phones,
    setup_logging,
)


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Put the root logger and the exception hooks back as pytest had them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    try:
        yield
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        root.setLevel(level)
        sys.excepthook, threading.excepthook = hooks


def _flush() -> None:
    for h in logging.getLogger().handlers:
        h.flush()


def test_human_log_rotates_at_10_mb_keeping_5_files(tmp_path: Path, clean_logging: None) -> None:
    setup_logging(log_dir=tmp_path / "logs", qt_messages=False)
    ours = [h for h in logging.getLogger().handlers
            if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert len(ours) == 1
    assert ours[0].maxBytes == MAX_BYTES == 10 * 1024 * 1024
    assert ours[0].backupCount == BACKUP_COUNT == 5
    assert Path(ours[0].baseFilename) == log_file(tmp_path / "logs")


def test_human_log_masks_phone_numbers_but_not_dates_or_ids(
    tmp_path: Path, clean_logging: None
) -> None:
    setup_logging(log_dir=tmp_path, qt_messages=False)
    logging.getLogger("tapi_agent.test").info(
        "call from %s to +44 (0)1234 567-890 on 2023-11-01T10:28:00 id ax2uyio8p port 52173",
        "07123 456789")
    _flush()
    text = log_file(tmp_path).read_text(encoding="utf-8")
    assert "07123 456789" not in text
    assert "***** ***789" in text
    assert "567-890" not in text and "-890" in text
    assert "2023-11-01T10:28:00" in text
    assert "ax2uyio8p" in text and "52173" in text


def test_tracebacks_in_the_log_are_masked_too(tmp_path: Path, clean_logging: None) -> None:
    setup_logging(log_dir=tmp_path, qt_messages=False)
    try:
        raise ValueError("no contact for 07123 456789")
    except ValueError:
        logging.getLogger("tapi_agent.test").exception("lookup failed")
    _flush()
    text = log_file(tmp_path).read_text(encoding="utf-8")
    assert "ValueError" in text
    assert "07123 456789" not in text


def test_mask_phones_leaves_short_numbers_and_times_alone() -> None:
    assert mask_phones("seq=41 latencyMs=1234 at 10:28:00") == "seq=41 latencyMs=1234 at 10:28:00"
    assert mask_phones("caller 07123456789") == "caller ********789"


def test_json_sink_writes_one_event_object_per_line(tmp_path: Path, clean_logging: None) -> None:
    sink = tmp_path / "events.jsonl"
    setup_logging(log_dir=tmp_path / "logs", json_path=str(sink), qt_messages=False)
    log_event("connection.state", state="connected", attempt=1, retryInMs=None)
    logging.getLogger("tapi_agent.test").warning("plain line for %s", "07123 456789")
    lines = [json.loads(x) for x in sink.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["event"] == "connection.state"
    assert lines[0]["state"] == "connected" and lines[0]["attempt"] == 1
    assert lines[0]["ts"].endswith("Z")
    assert lines[1]["event"] == "log" and "07123 456789" not in lines[1]["message"]


def test_setting_up_twice_replaces_rather_than_duplicates(
    tmp_path: Path, clean_logging: None
) -> None:
    sink = tmp_path / "events.jsonl"
    setup_logging(log_dir=tmp_path, json_path=str(sink), qt_messages=False)
    setup_logging(log_dir=tmp_path, json_path=str(sink), level="DEBUG", qt_messages=False)
    log_event("auth.state", state="signed_in", negotiatorId="JAS")
    assert len(sink.read_text(encoding="utf-8").splitlines()) == 1
    assert logging.getLogger().level == logging.DEBUG


def test_json_to_stdout_and_qt_warnings_are_routed_into_the_log(tmp_path: Path) -> None:
    # A subprocess: installing Qt's message handler here would replace pytest-qt's own.
    code = (
        "import pathlib, sys\n"
        "from tapi_agent.logs import setup_logging\n"
        "setup_logging(log_dir=pathlib.Path(sys.argv[1]), json_path='-')\n"
        "from PySide6.QtCore import qWarning\n"
        "qWarning('qt says hello from 07123 456789')\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, env=env, check=True)
    records = [json.loads(line) for line in out.stdout.splitlines()]
    qt = [r for r in records if r.get("logger", "").startswith("tapi_agent.qt")]
    assert qt, out.stdout + out.stderr
    assert qt[0]["level"] == "warning"
    assert "qt says hello" in qt[0]["message"]
    assert "07123 456789" not in qt[0]["message"]
    assert "qt says hello" in log_file(tmp_path).read_text(encoding="utf-8")


def test_crash_in_a_thread_is_logged_and_the_user_is_told(
    tmp_path: Path, clean_logging: None
) -> None:
    setup_logging(log_dir=tmp_path, qt_messages=False)
    told: list[str] = []
    install_crash_handler(told.append)

    def boom() -> None:
        raise RuntimeError("socket broke while calling 07123 456789")

    t = threading.Thread(target=boom, name="worker")
    t.start()
    t.join()
    assert len(told) == 1
    assert "RuntimeError" in told[0] and "log" in told[0]
    assert "07123 456789" not in told[0]
    _flush()
    text = log_file(tmp_path).read_text(encoding="utf-8")
    assert "uncaught exception in thread worker" in text
    assert "Traceback" in text


def test_crash_on_the_main_thread_goes_through_sys_excepthook(
    tmp_path: Path, clean_logging: None
) -> None:
    setup_logging(log_dir=tmp_path, qt_messages=False)
    told: list[str] = []
    install_crash_handler(told.append)
    try:
        raise KeyError("missing")
    except KeyError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert told == [crash_message(KeyError("missing"))]
    _flush()
    assert "uncaught exception in the main thread" in log_file(tmp_path).read_text("utf-8")


def test_a_failing_notify_does_not_escape_the_hook(tmp_path: Path, clean_logging: None) -> None:
    setup_logging(log_dir=tmp_path, qt_messages=False)

    def bad_notify(_text: str) -> None:
        raise OSError("tray gone")

    install_crash_handler(bad_notify)
    exc = ValueError("x")
    sys.excepthook(ValueError, exc, None)  # must not raise
    _flush()
    assert "could not tell the user" in log_file(tmp_path).read_text("utf-8")
