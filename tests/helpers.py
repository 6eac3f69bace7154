"""Test helpers: system-tool requirements and waiting on conditions without sleeping blindly."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
H = TypeVar("H", bound=logging.Handler)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, why: str = "") -> str:
    """Path of system tool `name`; skip (developer machine) or fail (CI=true) when missing."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"system tool {name!r} is not installed{': ' + why if why else ''} (see .ci/run)"
    if IN_CI:
        pytest.fail(reason + " -- CI must run everything")
    pytest.skip(reason)


def wait_until(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


@contextlib.contextmanager
def capturing_events(handler: H) -> Iterator[H]:
    """Attach `handler` to the structured-event logger at DEBUG for the block's duration."""
    logger = logging.getLogger("tapi_agent.events")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    """The fields of every structured `name` event `caplog` captured (see the `log` fixture)."""
    return [r.fields for r in caplog.records  # type: ignore[attr-defined]
            if getattr(r, "event", None) == name]
