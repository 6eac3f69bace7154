"""The `tapi-agent` command line: version, demo without the mock, log levels."""

from __future__ import annotations

import pytest

from tapi_agent import __version__, app


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        app.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"tapi-agent {__version__}"


def test_demo_without_the_mock_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(app, "_mock_available", lambda: False)
    assert app.main(["demo"]) == 2
    assert "pip install 'tapi-agent[mock]'" in capsys.readouterr().err


def test_unknown_log_level_is_refused_with_the_allowed_values(capsys):
    with pytest.raises(SystemExit) as exc:
        app.main(["--log-level", "LOUD"])
    assert exc.value.code == 2
    assert "DEBUG" in capsys.readouterr().err
