"""No secret leaves through what the agent writes for people: a password and a token planted
in every setting (and in log lines, an exception, and a log of an older version) are in
neither the logs, `diagnose`'s settings nor the diagnostics zip; and a URL's user:password@
never becomes a second Authorization header on the websocket upgrade."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zipfile
from pathlib import Path

from tapi_agent.config import SETTINGS, Paths, load_settings
from tapi_agent.core.redact import redact_text
from tapi_agent.diagnostics import export_diagnostics
from tapi_agent.logs import log_file, setup_logging
from tapi_agent.net.diagnose import render_settings
from tapi_agent.net.session import CallableTokenSource
from tapi_agent.net.stream import stream_url
from tests.app.test_logs import clean_logging

__all__ = ["clean_logging"]

PASSWORD = "pl4nted-S3cret"


def planted(token: str) -> dict[str, object]:
    """Every setting given a value that carries the password and the token."""
    url = f"https://agent:{PASSWORD}@host.example/?access_token={token}&code={token}"
    values: dict[str, object] = {}
    for s in SETTINGS:
        if s.type is dict:
            values[s.key] = {"01234 567890": f"Bearer {token}", "02": url}
        elif s.key == "network.proxy":
            values[s.key] = f"http://proxy-user:{PASSWORD}@proxy.example:8080"
        else:
            values[s.key] = url  # refused by most settings: then it is in the error message
    return values


def test_planted_secrets_are_in_no_log_no_diagnose_and_no_zip(
    mock_server, tmp_path: Path, clean_logging: None, capsys
) -> None:
    token = mock_server.mint_token("JAS")
    values = planted(token)
    user = tmp_path / "u.toml"
    import tomli_w

    nested: dict[str, dict[str, object]] = {}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        nested.setdefault(section, {})[name] = value
    user.write_text(tomli_w.dumps(nested), encoding="utf-8")
    settings = load_settings(machine_file=tmp_path / "m.toml", user_file=user, environ={},
                             cli={"server.url": mock_server.base_url})
    assert settings.errors  # most planted values are refused, each error quoting the value
    assert PASSWORD in settings.values["network.proxy"]  # accepted where a password belongs

    paths = Paths(machine_config=tmp_path / "m.toml", user_config=user,
                  data_dir=tmp_path / "data", log_dir=tmp_path / "logs")
    setup_logging(log_dir=paths.log_dir, json_path=str(tmp_path / "events.jsonl"),
                  qt_messages=False)
    log = logging.getLogger("tapi_agent.test")
    for err in settings.errors:  # what run_gui logs
        log.warning("settings: %s", err)
    log.info("proxy %s, POST /token refresh_token=%s&code_verifier=%s", values["network.proxy"],
             token, PASSWORD)
    log.info("headers: {'Authorization': 'Bearer %s'} body: {\"password\": \"%s\"}", token,
             PASSWORD)
    try:
        raise RuntimeError(f"refused https://x:{PASSWORD}@h.example with token {token}")
    except RuntimeError:
        log.exception("it failed")
    # a log written by an older version, before logs were redacted
    (paths.log_dir / "tapi-agent.log.1").write_text(
        f"old line: proxy http://u:{PASSWORD}@p.example:3128 Bearer {token}\n", encoding="utf-8")
    for handler in logging.getLogger().handlers:
        handler.flush()

    rendered = render_settings(settings.values, settings.sources, settings.locked)

    async def mint() -> tuple[str, float]:
        return token, time.time() + 3600

    target = asyncio.run(export_diagnostics(
        tmp_path / "diag.zip", settings=settings, paths=paths,
        server_url=mock_server.base_url, tokens=CallableTokenSource(mint)))

    written = {"diagnose settings": rendered,
               "human log": log_file(paths.log_dir).read_text(encoding="utf-8"),
               "json log": (tmp_path / "events.jsonl").read_text(encoding="utf-8")}
    with zipfile.ZipFile(target) as zf:
        for name in zf.namelist():
            written[f"zip:{name}"] = zf.read(name).decode(errors="replace")
        report = json.loads(zf.read("settings.json"))
    assert "zip:logs/tapi-agent.log.1" in written and "zip:logs/tapi-agent.log" in written
    for where, text in written.items():
        assert PASSWORD not in text, where
        assert token not in text, where
        for part in token.split("."):  # not even a piece of it
            assert part not in text, where
    # what support needs is still there: the proxy host, the errors, the log lines
    assert report["settings"]["network.proxy"]["value"] == "http://***@proxy.example:8080"
    assert "proxy.example:8080" in rendered
    assert "it failed" in written["human log"] and "RuntimeError" in written["human log"]
    assert "settings: " in written["zip:logs/tapi-agent.log"]


def test_redaction_keeps_what_is_not_a_secret() -> None:
    text = ("close code=1000 at 2026-01-02T03:04:05Z from https://host.example:443/x?state=s1 "
            "tokens: 2, negotiator JAS")
    assert redact_text(text) == text


def test_the_stream_url_never_carries_a_user_or_password() -> None:
    # websockets turns a URL's userinfo into an Authorization: Basic header, a second one
    # beside the bearer token, which sent the password along with every connection
    url = stream_url(f"https://agent:{PASSWORD}@notifications.example.com:8443/base")
    assert url == "wss://notifications.example.com:8443/base/notifications/stream?product=AgencyCloud"
