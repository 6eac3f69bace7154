"""Shared fixtures: offscreen Qt, system-tool requirements, the real mock backend on port 0."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# the OpenID provider harness (oidc-provider + a browser stand-in): fixtures for every test
from tests.oidc_provider import oidc_provider, oidc_provider_factory  # noqa: F401

# Qt renders offscreen unless a test brings its own display (the tray tests under Xvfb do).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

if TYPE_CHECKING:
    from tapi_agent.mock.server import MockServer


@pytest.fixture
def mock_server() -> Iterator[MockServer]:
    """The real mock backend on a free loopback port, short heartbeat, stopped afterwards."""
    from tapi_agent.mock.server import MockServer

    server = MockServer(port=0, heartbeat_ms=2000)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def approving_mock() -> Iterator[MockServer]:
    """The real mock with Reapit Connect approving every sign-in as JAS (no sign-in page)."""
    from tapi_agent.mock.server import MockServer

    server = MockServer(port=0, heartbeat_ms=2000, auto_approve="JAS")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog capturing the structured events (DESIGN.md section 7) at INFO and above."""
    import logging

    from tapi_agent.core.log import EVENTS_LOGGER

    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    return caplog
