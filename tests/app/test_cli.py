"""The `tapi-agent` command line: version, demo without the mock, log levels."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapi_agent import __version__, app
from tapi_agent.config import Paths


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


COMMON_OPTIONS = [
    ("--server", "https://tapi.example.test", "server", "https://tapi.example.test"),
    ("--config", "/tmp/agent-settings.toml", "config", Path("/tmp/agent-settings.toml")),
    ("--log-json", "/tmp/agent-events.jsonl", "log_json", "/tmp/agent-events.jsonl"),
    ("--log-level", "debug", "log_level", "DEBUG"),
]


@pytest.mark.parametrize("command", ["demo", "diagnose", "sign-out"])
@pytest.mark.parametrize("place", ["before", "after"])
@pytest.mark.parametrize(("flag", "value", "dest", "expected"), COMMON_OPTIONS,
                         ids=[o[0] for o in COMMON_OPTIONS])
def test_common_option_counts_before_or_after_the_subcommand(flag, value, dest, expected,
                                                             place, command):
    argv = [flag, value, command] if place == "before" else [command, flag, value]
    args = app.build_parser().parse_args(argv)
    assert args.command == command
    assert getattr(args, dest) == expected


@pytest.mark.parametrize("command", ["demo", "diagnose", "sign-out"])
def test_common_options_absent_everywhere_stay_unset(command):
    args = app.build_parser().parse_args([command])
    assert (args.server, args.config, args.log_json, args.log_level) == (None, None, None, None)


@pytest.mark.parametrize("argv", [["--server", "https://before.example.test", "diagnose"],
                                  ["diagnose", "--server", "https://before.example.test"]])
def test_server_given_either_side_of_diagnose_reaches_the_settings(argv, tmp_path):
    args = app.build_parser().parse_args(argv)
    paths = Paths(machine_config=tmp_path / "machine.toml", user_config=tmp_path / "user.toml",
                  data_dir=tmp_path / "data", log_dir=tmp_path / "logs")
    assert app.load_app_settings(args, paths)["server.url"] == "https://before.example.test"


def test_a_common_option_given_on_both_sides_takes_the_later_value():
    args = app.build_parser().parse_args(
        ["--log-level", "ERROR", "demo", "--log-level", "DEBUG"])
    assert args.log_level == "DEBUG"
