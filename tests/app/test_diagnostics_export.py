"""Export diagnostics: a zip support can read, with logs, settings and the diagnose report,
and never a token."""

from __future__ import annotations

import asyncio
import json
import time
import zipfile

from tapi_agent.config import Paths, load_settings
from tapi_agent.diagnostics import export_diagnostics
from tapi_agent.net.session import CallableTokenSource


def test_export_holds_logs_settings_and_report_but_no_token(mock_server, tmp_path):
    token = mock_server.mint_token("JAS")

    async def mint() -> tuple[str, float]:
        return token, time.time() + 3600

    paths = Paths(machine_config=tmp_path / "m.toml", user_config=tmp_path / "u.toml",
                  data_dir=tmp_path / "data", log_dir=tmp_path / "logs")
    paths.log_dir.mkdir()
    (paths.log_dir / "tapi-agent.log").write_text("connected as JAS\n")
    settings = load_settings(environ={}, cli={"server.url": mock_server.base_url})

    target = asyncio.run(export_diagnostics(
        tmp_path / "out" / "diag.zip", settings=settings, paths=paths,
        server_url=mock_server.base_url, tokens=CallableTokenSource(mint)))

    with zipfile.ZipFile(target) as zf:
        names = set(zf.namelist())
        assert {"about.txt", "settings.json", "diagnose.txt", "logs/tapi-agent.log"} <= names
        report = zf.read("diagnose.txt").decode()
        assert "websocket" in report.lower()
        data = json.loads(zf.read("settings.json"))
        assert data["settings"]["server.url"] == {"value": mock_server.base_url,
                                                  "source": "command line", "locked": False}
        for name in names:
            assert token not in zf.read(name).decode(errors="replace")


def test_export_of_an_unreachable_backend_still_writes_the_report(tmp_path):
    paths = Paths(machine_config=tmp_path / "m.toml", user_config=tmp_path / "u.toml",
                  data_dir=tmp_path / "data", log_dir=tmp_path / "no-logs")
    settings = load_settings(environ={}, cli={"server.url": "http://127.0.0.1:9"})
    target = asyncio.run(export_diagnostics(
        tmp_path / "diag.zip", settings=settings, paths=paths,
        server_url="http://127.0.0.1:9", tokens=None))
    with zipfile.ZipFile(target) as zf:
        assert "FAIL" in zf.read("diagnose.txt").decode().upper()
