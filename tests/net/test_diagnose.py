"""`diagnose` against the real mock: every step passes when it runs, the failing step is named."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tapi_agent.mock.server import MockServer
from tapi_agent.net.diagnose import STEP_NAMES, DiagnoseReport, diagnose
from tapi_agent.net.session import CallableTokenSource, SessionGone
from tests.helpers import require_tool
from tests.net.test_tokens import WAIT_FOR_SECRET_SERVICE


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
    mock_server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    report = run(mock_server.base_url, Fixed("garbage-token-value"))
    assert "garbage-token-value" not in caplog.text  # not even in DEBUG logs
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


SIGN_IN_SCRIPT = WAIT_FOR_SECRET_SERVICE + textwrap.dedent("""
    import asyncio, sys
    import httpx
    from tapi_agent.net.auth import ReapitConnect, Session
    from tapi_agent.net.tokens import TokenStore

    async def main(url: str) -> None:
        def browser(address: str) -> bool:
            # sign_in runs the opener in a thread, as webbrowser may block: so may we
            page = httpx.get(address, follow_redirects=True, timeout=20)
            assert page.status_code == 200, page.text
            return True

        store = TokenStore()
        assert store.available, store.description
        session = Session(ReapitConnect(url, "tapi-agent"), store)
        await session.sign_in(port=0, open_browser=browser, timeout_s=20)

    asyncio.run(main(sys.argv[1]))
    print("SIGNED-IN")
""")


def cli_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no user settings, no TAPI_AGENT_* overrides and no D-Bus session."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAPI_AGENT_") and k != "DBUS_SESSION_BUS_ADDRESS"}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    })
    return env


def test_cli_diagnose_exits_0_against_a_running_mock_with_a_stored_session(
    tmp_path: Path,
) -> None:
    require_tool("dbus-run-session", "a private D-Bus session for the credential store")
    require_tool("gnome-keyring-daemon", "the Secret Service holding the session")
    server = MockServer(port=0, auto_approve="JAS")
    server.start()
    try:
        script = tmp_path / "sign_in.py"
        script.write_text(SIGN_IN_SCRIPT, encoding="utf-8")
        python = shlex.quote(sys.executable)
        url = shlex.quote(server.base_url)
        command = (
            "echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; "
            f"{python} {shlex.quote(str(script))} {url} || exit 99; "
            f"exec {python} -m tapi_agent diagnose --server {url} --timeout 5"
        )
        result = subprocess.run(
            ["dbus-run-session", "--", "sh", "-c", command], env=cli_env(tmp_path),
            capture_output=True, text=True, timeout=90, check=False,
        )
    finally:
        server.stop()
    output = result.stdout + result.stderr
    assert "SIGNED-IN" in result.stdout, output
    assert result.returncode == 0, output
    assert "Result: OK" in result.stdout
    assert "welcome for JAS" in result.stdout


def test_cli_diagnose_exits_non_zero_against_a_stopped_mock_naming_the_step(
    mock_server: MockServer, tmp_path: Path
) -> None:
    url = mock_server.base_url
    mock_server.stop()
    result = subprocess.run(
        [sys.executable, "-m", "tapi_agent", "diagnose", "--server", url, "--timeout", "3"],
        env=cli_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "FAILED at step TCP" in result.stdout
    assert "is the backend running?" in result.stdout
