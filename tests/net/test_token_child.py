"""The running agent's credential store calls go through a short-lived child process
(net/token_child.py, issue 14): the same TokenStore in the child (chunking and messages), a real
Secret Service, the store's errors with their in-process message, and a child that cannot start,
crashes, prints junk or hangs turned into a TokenStoreError that never holds the secret.

Test backends (tests/net/child_keyrings.py) are chosen in the child with PYTHON_KEYRING_BACKEND.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tapi_agent.net import token_child
from tapi_agent.net.token_child import CHILD_FLAG, ChildTokenStore
from tapi_agent.net.tokens import TokenStore, TokenStoreError
from tests.app.test_single_instance_process import _command
from tests.net.child_keyrings import FILE_ENV, FailingKeyring
from tests.net.test_tokens import WAIT_FOR_SECRET_SERVICE, run_on_a_secret_service

ROOT = Path(__file__).resolve().parents[2]
REFRESH_TOKEN = ("eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIn0." * 160)[:6000]
SECRET = json.dumps({"version": 1, "refresh_token": REFRESH_TOKEN,
                     "identity": {"negotiator_id": "JAS"}})  # a session, as Session saves it


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The child's keyring is a JSON file (tests.net.child_keyrings.FileKeyring)."""
    path = tmp_path / "keyring.json"
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.net.child_keyrings.FileKeyring")
    monkeypatch.setenv(FILE_ENV, str(path))
    return path


def _fake_child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _assert_no_secret(message: str) -> None:
    assert SECRET not in message and REFRESH_TOKEN not in message
    assert REFRESH_TOKEN[:40] not in message


# ------------------------------------------------------------------------------ round trips


def test_a_long_session_round_trips_through_the_child_chunked_in_the_store(
    file_keyring: Path
) -> None:
    store = ChildTokenStore("TapiAgentTest")
    assert store.available and store.description == "child keyrings FileKeyring"
    assert store.load("session") is None
    store.save("session", SECRET)
    entries = json.loads(file_keyring.read_text())
    head = entries["TapiAgentTest/session"]
    assert head.startswith("v1#5#")  # TokenStore's chunking, in the child: 5 entries of 2,560 B
    assert len(entries) == 6 and SECRET not in entries.values()
    assert store.load("session") == SECRET
    astral = "\U0001f4de" * 3000  # outside the BMP: surrogate pairs in the JSON between them
    store.save("session", astral)
    assert store.load("session") == astral
    store.delete("session")
    assert store.load("session") is None
    assert json.loads(file_keyring.read_text()) == {}
    store.delete("session")  # nothing stored: no error, as in-process


SECRET_SERVICE_DRIVER = WAIT_FOR_SECRET_SERVICE + textwrap.dedent("""
    import json
    from keyring.backends import SecretService
    from tapi_agent.net.token_child import ChildTokenStore
    from tapi_agent.net.tokens import TokenStore

    secret = json.dumps({"version": 1, "refresh_token": ("eyJhbGciOiJSUzI1NiJ9." * 300)[:6000],
                         "identity": {"negotiator_id": "JAS"}})
    store = ChildTokenStore("TapiAgentTest")
    result = {"available": store.available, "description": store.description}
    store.save("session", secret)
    # what the daemon holds, read in this process: chunked by the child's TokenStore
    result["head"] = SecretService.Keyring().get_password("TapiAgentTest", "session")
    result["inProcess"] = TokenStore("TapiAgentTest").load("session") == secret
    result["loaded"] = store.load("session") == secret
    store.save("session", "short")
    result["short"] = store.load("session")
    store.delete("session")
    result["afterDelete"] = store.load("session")
    result["inProcessAfterDelete"] = TokenStore("TapiAgentTest").load("session")
    print("RESULT " + json.dumps(result))
""")


def test_save_load_delete_through_the_child_on_a_real_secret_service(tmp_path: Path) -> None:
    done = run_on_a_secret_service(tmp_path, SECRET_SERVICE_DRIVER, timeout=120)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    result = json.loads(lines[0].removeprefix("RESULT "))
    assert result["available"] is True and "SecretService" in result["description"]
    assert result["head"].startswith("v1#5#")
    assert result["inProcess"] and result["loaded"]
    assert result["short"] == "short"
    assert result["afterDelete"] is None and result["inProcessAfterDelete"] is None


# --------------------------------------------------------------------------- store errors


@pytest.mark.parametrize(("call", "action"), [
    (lambda store: store.load("session"), "read"),
    (lambda store: store.save("session", SECRET), "read"),  # save reads the old head first
    (lambda store: store.delete("session"), "delete"),
])
def test_the_stores_error_comes_back_with_the_in_process_message(
    monkeypatch: pytest.MonkeyPatch, call: object, action: str
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.net.child_keyrings.FailingKeyring")
    in_process = TokenStore("TapiAgent", backend=FailingKeyring())
    with pytest.raises(TokenStoreError) as expected:
        call(in_process)  # type: ignore[operator]
    with pytest.raises(TokenStoreError) as caught:
        call(ChildTokenStore("TapiAgent"))  # type: ignore[operator]
    assert str(caught.value) == str(expected.value)
    assert f"Could not {action} the sign-in" in str(caught.value)
    assert FailingKeyring.REASON in str(caught.value)
    _assert_no_secret(str(caught.value))


def test_a_store_without_a_backend_is_unavailable_after_one_probe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    store = ChildTokenStore()
    assert store.available is False
    assert store.description == TokenStore().description == "fail Keyring"
    assert store.probe_problem is None  # the child answered: there is no store
    # cached: a second look starts no child (this command would fail if it ran)
    store._command = [str(tmp_path / "no-such-child")]
    assert store.available is False and store.probe_problem is None


def test_what_the_store_logs_in_the_child_is_logged_by_the_agent(
    file_keyring: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file_keyring.write_text(json.dumps({"TapiAgent/session": "v1#30000000#abcd"}))
    with caplog.at_level(logging.WARNING, logger="tapi_agent"):
        assert ChildTokenStore().load("session") is None  # an absurd head: no session
    assert any(r.name == "tapi_agent.net.tokens" and "claims more chunks" in r.getMessage()
               for r in caplog.records)


# ------------------------------------------------------------------------- child failures


def test_a_child_that_cannot_start_names_what_it_tried(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-tapi-agent-cli")
    store = ChildTokenStore(command=[missing, CHILD_FLAG])
    with pytest.raises(TokenStoreError, match="could not be started") as caught:
        store.save("session", SECRET)
    message = str(caught.value)
    assert missing in message and "Could not save the sign-in (TapiAgent/session)" in message
    _assert_no_secret(message)
    assert store.available is False  # the probe could not tell: no store, and why
    assert store.probe_problem is not None and missing in store.probe_problem


@pytest.mark.parametrize(("code", "expected"), [
    ("import sys; sys.stdin.read(); sys.stderr.write('Traceback...\\nImportError: no keyring\\n');"
     " sys.exit(3)", "failed (exit code 3): ImportError: no keyring"),
    ("import os, signal, sys; sys.stdin.read(); os.kill(os.getpid(), signal.SIGKILL)",
     "was ended by signal 9"),
    ("import sys; sys.stdin.read(); print('<html>not JSON</html>')",
     "gave an answer the agent does not understand"),
    ("import sys; sys.stdin.read(); print('{\"secret\": 42, \"ok\": true}')",
     "gave an answer the agent does not understand"),
    ("import sys; sys.stdin.read(); print('{\"ok\": false}')",
     "gave an answer the agent does not understand"),
])
def test_a_child_that_fails_or_prints_junk_gives_a_clear_error(code: str, expected: str) -> None:
    if "signal" in code and sys.platform == "win32":
        pytest.skip("no SIGKILL on Windows")
    with pytest.raises(TokenStoreError) as caught:
        ChildTokenStore(command=_fake_child(code)).load("session")
    message = str(caught.value)
    assert expected in message and "Could not read the sign-in" in message


def test_the_secret_never_shows_in_what_a_failing_child_said() -> None:
    # the child echoes its request (with the secret, JSON-escaped) to stderr, then fails
    echo = "import sys; sys.stderr.write(sys.stdin.read()); sys.exit(1)"
    with pytest.raises(TokenStoreError) as caught:
        ChildTokenStore(command=_fake_child(echo)).save("session", SECRET)
    message = str(caught.value)
    assert "exit code 1" in message and "<redacted>" in message
    _assert_no_secret(message)
    # ...nor in an internal error or a store error that quotes it
    quoting = ("import json, sys; request = json.load(sys.stdin); "
               "print(json.dumps({'error': {'store': 'no: ' + request['secret']}}))")
    with pytest.raises(TokenStoreError) as caught:
        ChildTokenStore(command=_fake_child(quoting)).save("session", SECRET)
    _assert_no_secret(str(caught.value))


def test_the_secret_is_not_on_the_childs_command_line_or_in_its_environment(
    tmp_path: Path
) -> None:
    seen = tmp_path / "seen.json"
    spy = ("import json, os, sys; request = json.load(sys.stdin); "
           f"open({str(seen)!r}, 'w').write(json.dumps("
           "[sys.argv, dict(os.environ), request['secret']])); print('{\"ok\": true}')")
    ChildTokenStore(command=_fake_child(spy)).save("session", SECRET)
    argv, environ, received = json.loads(seen.read_text())
    assert received == SECRET  # on stdin
    assert REFRESH_TOKEN not in json.dumps(argv) and REFRESH_TOKEN not in json.dumps(environ)


def test_a_child_that_never_answers_is_ended_and_named(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    hang = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
            "time.sleep(120)")
    with pytest.raises(TokenStoreError, match="gave no answer within 2 s") as caught:
        ChildTokenStore(command=_fake_child(hang), timeout_s=2).save("session", SECRET)
    _assert_no_secret(str(caught.value))
    if pid_file.exists():  # it got as far as writing its pid: it must be gone (and reaped)
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)


def test_a_request_the_child_cannot_read_is_an_internal_error_and_exit_2() -> None:
    done = subprocess.run([sys.executable, "-P", "-m", token_child.MODULE],
                          input=b'{"op": "shred", "service": "TapiAgent", "account": "a"}',
                          capture_output=True, timeout=60, check=False,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 2, done.stderr
    assert "unknown op 'shred'" in json.loads(done.stdout)["error"]["internal"]


# ------------------------------------------------------------------------------ frozen app


def test_the_frozen_apps_hidden_argument_runs_the_same_child() -> None:
    """`tapi-agent --token-store` (what the frozen app starts) answers on stdout, before the
    command line is parsed; `--help` does not show it."""
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    done = subprocess.run([*_command(), CHILD_FLAG], input='{"op": "probe", "service": "T"}',
                          text=True, capture_output=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["available"] is False
    help_text = subprocess.run([*_command(), "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    assert "usage" in help_text and CHILD_FLAG not in help_text
