"""`diagnose` against the real mock: every step passes when it runs, the failing step is named."""

from __future__ import annotations

import asyncio

from tapi_agent.mock.server import MockServer
from tapi_agent.net.diagnose import STEP_NAMES, DiagnoseReport, diagnose
from tapi_agent.net.session import CallableTokenSource, SessionGone


def tokens_for(server: MockServer, negotiator: str = "JAS") -> CallableTokenSource:
    async def mint() -> tuple[str, float]:
        import time

        return server.mint_token(negotiator), time.time() + 3600

    return CallableTokenSource(mint)


class Fixed:
    """A TokenSource with a fixed token (or a gone session)."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    async def access_token(self) -> str:
        if self.token is None:
            raise SessionGone("refresh refused")
        return self.token

    async def refresh(self) -> str:
        return await self.access_token()

    def expires_at(self) -> float | None:
        return None


def run(url: str, tokens: object, timeout_s: float = 3.0) -> DiagnoseReport:
    return asyncio.run(diagnose(url, tokens=tokens, timeout_s=timeout_s))  # type: ignore[arg-type]


def test_running_backend_passes_every_step_in_order(mock_server: MockServer) -> None:
    report = run(mock_server.base_url, tokens_for(mock_server))
    assert [s.name for s in report.steps] == list(STEP_NAMES)
    assert report.ok, report.render()
    assert report.failed is None
    assert "welcome for JAS" in report.step("websocket").detail
    assert report.step("TLS").detail == "not used (http on this PC)"
    assert "valid for" in report.step("token").detail
    text = report.render()
    assert text.splitlines()[-1].startswith("Result: OK")
    assert len(text.splitlines()) == len(STEP_NAMES) + 2


def test_stopped_backend_fails_at_tcp_and_says_what_to_do(mock_server: MockServer) -> None:
    url = mock_server.base_url
    tokens = tokens_for(mock_server)
    mock_server.stop()
    report = run(url, tokens)
    assert not report.ok
    assert report.failed is not None and report.failed.name == "TCP"
    assert report.step("DNS").ok
    assert all(report.step(n).skipped for n in ("TLS", "HTTP", "token", "websocket"))
    text = report.render()
    assert "FAIL  TCP" in text
    assert "What to do: is the backend running?" in text
    assert text.splitlines()[-1].startswith("Result: FAILED at step TCP")


def test_not_signed_in_is_a_failure(mock_server: MockServer) -> None:
    report = run(mock_server.base_url, None)
    assert not report.ok
    assert report.failed is not None and report.failed.name == "token"
    assert report.failed.detail == "not signed in"
    assert report.step("websocket").skipped


def test_session_gone_is_reported_as_not_signed_in(mock_server: MockServer) -> None:
    report = run(mock_server.base_url, Fixed(None))
    assert report.failed is not None and report.failed.name == "token"
    assert "not signed in" in report.failed.detail


def test_refused_token_fails_the_websocket_step_without_showing_the_token(
    mock_server: MockServer,
) -> None:
    report = run(mock_server.base_url, Fixed("garbage-token-value"))
    assert report.step("token").ok
    assert report.failed is not None and report.failed.name == "websocket"
    assert "401" in report.failed.detail
    assert "garbage-token-value" not in report.render()


def test_plain_http_to_another_host_fails_at_config() -> None:
    report = run("http://notifications.example.com", None)
    assert report.failed is not None and report.failed.name == "config"
    assert "unencrypted" in report.failed.detail
    assert report.step("DNS").skipped and report.step("TCP").skipped


def test_unknown_host_fails_at_dns() -> None:
    report = run("https://no-such-host.invalid", None, timeout_s=3.0)
    assert report.failed is not None and report.failed.name == "DNS"
    assert report.step("TCP").skipped
