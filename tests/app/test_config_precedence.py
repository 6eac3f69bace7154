"""The order of the settings layers (DESIGN.md section 8, docs/IT-DEPLOYMENT.md's table):
defaults < MSI values < machine file < policy (beats a file lock) < user file < environment <
command line, and `diagnose` shows where each value came from."""

from __future__ import annotations

from pathlib import Path

from tapi_agent.config import MACHINE_KEY, POLICY_KEY, MemoryRegistry, load_settings
from tapi_agent.net.diagnose import render_settings

MSI = "HKLM\\" + MACHINE_KEY
POLICY = "HKLM\\" + POLICY_KEY


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_each_layer_beats_the_one_below(tmp_path: Path) -> None:
    registry = MemoryRegistry({MACHINE_KEY: {"ClientId": "from-msi", "RedirectPort": "50001",
                                             "ServerUrl": "https://msi.example.com"},
                               POLICY_KEY: {"LogLevel": "ERROR"}})
    machine = _write(tmp_path / "m.toml", '[auth]\nclient_id = "from-file"\n'
                     'redirect_port = 50002\n[calls]\nregion = "FR"\n[log]\nlevel = "DEBUG"\n')
    user = _write(tmp_path / "u.toml", '[calls]\nregion = "DE"\nlinger_s = 7\n')
    s = load_settings(machine_file=machine, user_file=user, registry=registry,
                      environ={"TAPI_AGENT_CALLS_LINGER_S": "8"},
                      cli={"server.url": "http://127.0.0.1:9"})
    assert (s["auth.client_id"], s.sources["auth.client_id"]) == ("from-file", str(machine))
    assert (s["auth.redirect_port"], s.sources["auth.redirect_port"]) == (50002, str(machine))
    assert (s["log.level"], s.sources["log.level"]) == ("ERROR", POLICY)
    assert (s["calls.region"], s.sources["calls.region"]) == ("DE", str(user))
    assert (s["calls.linger_s"], s.sources["calls.linger_s"]) == (8.0, "environment")
    assert (s["server.url"], s.sources["server.url"]) == ("http://127.0.0.1:9", "command line")
    assert s.sources["popup.corner"] == "default"
    assert not s.errors


def test_msi_values_apply_where_the_machine_file_is_silent(tmp_path: Path) -> None:
    registry = MemoryRegistry({MACHINE_KEY: {"ClientId": "from-msi", "RedirectPort": "50001"}})
    machine = _write(tmp_path / "m.toml", '[calls]\nregion = "FR"\n')
    s = load_settings(machine_file=machine, registry=registry, environ={})
    assert (s["auth.client_id"], s.sources["auth.client_id"]) == ("from-msi", MSI)
    assert s["auth.redirect_port"] == 50001 and not s.locked


def test_a_policy_beats_a_machine_file_lock_and_keeps_it_locked(tmp_path: Path) -> None:
    machine = _write(tmp_path / "m.toml", 'locked = ["server.url", "calls.open_record"]\n'
                     '[server]\nurl = "https://file.example.com"\n'
                     '[calls]\nopen_record = "answer"\n')
    user = _write(tmp_path / "u.toml", '[server]\nurl = "https://user.example.com"\n'
                  '[calls]\nopen_record = "ring"\n')
    registry = MemoryRegistry({POLICY_KEY: {"ServerUrl": "https://policy.example.com"}})
    s = load_settings(machine_file=machine, user_file=user, registry=registry, environ={})
    assert (s["server.url"], s.sources["server.url"]) == ("https://policy.example.com", POLICY)
    assert s.is_locked("server.url")
    # The file's own lock still holds where no policy speaks.
    assert (s["calls.open_record"], s.sources["calls.open_record"]) == ("answer", str(machine))
    # The user lost both, and was told so, naming who locked them; the policy was not refused.
    refused = {(e.source, e.key) for e in s.errors}
    assert refused == {(str(user), "server.url"), (str(user), "calls.open_record")}
    assert all(POLICY not in e.source for e in s.errors)


def test_diagnose_prints_every_setting_with_its_source_and_lock(tmp_path: Path) -> None:
    machine = _write(tmp_path / "m.toml", 'locked = ["calls.region"]\n[calls]\nregion = "FR"\n')
    registry = MemoryRegistry({MACHINE_KEY: {"ClientId": "from-msi"},
                               POLICY_KEY: {"AutoStart": 0}})
    s = load_settings(machine_file=machine, registry=registry, environ={})
    text = render_settings(s.values, s.sources, s.locked)
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert set(lines) == set(s.values)
    assert lines["auth.client_id"].endswith(f"from-msi  [{MSI}]")
    assert lines["app.autostart"].endswith(f"false  [{POLICY}, locked]")
    assert lines["calls.region"].endswith(f"FR  [{machine}, locked]")
    assert lines["popup.corner"].endswith("bottom-right  [default]")
