"""TokenStore: chunking under the 2,560-byte Windows limit, failures, a real Secret Service."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.compat import properties
from keyring.errors import PasswordDeleteError

from tapi_agent.net.tokens import (
    MAX_SECRET_UNITS,
    MemoryTokenStore,
    TokenStore,
    TokenStoreError,
    split_utf16,
)
from tests.helpers import require_tool


class FakeWinError(Exception):
    """What pywin32-ctypes raises from CredWrite (`pywintypes.error`): not a keyring error."""


class WindowsLikeKeyring(KeyringBackend):
    """A keyring that stores like Windows Credential Manager: the blob is UTF-16 and at most
    2,560 bytes; CredWrite fails with error 1783 beyond that."""

    @properties.classproperty
    def priority(cls) -> float:
        # never chosen by keyring's own discovery, only used where a test passes it in
        raise RuntimeError("test backend")

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.writes = 0
        self.fail_writes_after: int | None = None

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        blob = password.encode("utf-16-le")
        if len(blob) > 2560:
            raise FakeWinError(1783, "CredWrite", "The stub received bad data.")
        if self.fail_writes_after is not None and self.writes >= self.fail_writes_after:
            raise FakeWinError(1312, "CredWrite", "A specified logon session does not exist.")
        self.writes += 1
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("Password not found")


@pytest.fixture
def win() -> WindowsLikeKeyring:
    return WindowsLikeKeyring()


def jwt_like(n: int) -> str:
    return ("eyJhbGciOiJSUzI1NiJ9." * (n // 21 + 1))[:n]


def test_fake_backend_refuses_what_windows_refuses(win: WindowsLikeKeyring) -> None:
    win.set_password("S", "ok", "x" * 1280)  # 2,560 bytes: the limit itself is fine
    with pytest.raises(FakeWinError):
        win.set_password("S", "too-long", "x" * 1281)


def test_short_secret_is_one_entry(win: WindowsLikeKeyring) -> None:
    store = TokenStore("TapiAgent", backend=win)
    store.save("refresh", "abc")
    assert store.load("refresh") == "abc"
    assert list(win.entries) == [("TapiAgent", "refresh")]


def test_long_token_is_split_and_reassembled(win: WindowsLikeKeyring) -> None:
    store = TokenStore("TapiAgent", backend=win)
    token = jwt_like(6000)
    store.save("refresh", token)
    assert store.load("refresh") == token
    # 6,000 ASCII characters need five 1,280-unit chunks plus the head
    assert len(win.entries) == 6
    assert all(len(v.encode("utf-16-le")) <= 2560 for v in win.entries.values())


@pytest.mark.parametrize("length", [1277, 1278, 1280, 1281, 2560, 2561])
def test_lengths_around_the_limit_round_trip(win: WindowsLikeKeyring, length: int) -> None:
    store = TokenStore(backend=win)
    secret = jwt_like(length)
    store.save("acct", secret)
    assert store.load("acct") == secret


def test_characters_outside_the_bmp_count_twice_and_are_not_cut(win: WindowsLikeKeyring) -> None:
    store = TokenStore(backend=win)
    secret = "a" + "\U0001f4de" * 1500  # phone emoji: a surrogate pair each in UTF-16
    store.save("acct", secret)
    assert store.load("acct") == secret


def test_split_never_exceeds_the_unit_budget() -> None:
    pieces = split_utf16("ab\U0001f4decd" * 5, 3)
    assert "".join(pieces) == "ab\U0001f4decd" * 5
    assert all(len(p.encode("utf-16-le")) // 2 <= 3 for p in pieces)


def test_shorter_new_value_removes_leftover_chunks(win: WindowsLikeKeyring) -> None:
    store = TokenStore(backend=win)
    store.save("acct", jwt_like(6000))
    store.save("acct", jwt_like(3000))
    assert store.load("acct") == jwt_like(3000)
    assert len(win.entries) == 4  # head + 3 chunks; nothing of the 5-chunk value is left
    store.save("acct", "short")
    assert store.load("acct") == "short"
    assert len(win.entries) == 1


def test_delete_removes_head_and_chunks(win: WindowsLikeKeyring) -> None:
    store = TokenStore(backend=win)
    store.save("acct", jwt_like(4000))
    store.save("other", "keep me")
    store.delete("acct")
    assert store.load("acct") is None
    assert list(win.entries) == [("TapiAgent", "other")]
    store.delete("acct")  # deleting nothing is fine


def test_failed_save_keeps_the_old_value_readable(win: WindowsLikeKeyring) -> None:
    store = TokenStore(backend=win)
    old = jwt_like(3000)
    store.save("acct", old)
    win.fail_writes_after = win.writes + 2  # the third chunk of the new value fails
    with pytest.raises(TokenStoreError):
        store.save("acct", jwt_like(5000).upper())
    assert store.load("acct") == old
    assert len(win.entries) == 4  # the half-written chunks were removed


def test_failing_store_raises_a_readable_error_without_the_secret(
    win: WindowsLikeKeyring,
) -> None:
    win.fail_writes_after = 0
    store = TokenStore(backend=win)
    with pytest.raises(TokenStoreError) as err:
        store.save("acct", "s3cr3t-refresh-token")
    message = str(err.value)
    assert "will not survive a restart" in message
    assert "logon session does not exist" in message
    assert "s3cr3t" not in message


def test_missing_chunk_reads_as_no_session(win: WindowsLikeKeyring) -> None:
    store = TokenStore(backend=win)
    store.save("acct", jwt_like(4000))
    chunk = next(k for k in win.entries if k[1] != "acct")
    del win.entries[chunk]
    assert store.load("acct") is None


class CountingKeyring(WindowsLikeKeyring):
    """Counts reads and deletes: a corrupt head must not cost one call per claimed chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.deletes = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.reads += 1
        return super().get_password(service, username)

    def delete_password(self, service: str, username: str) -> None:
        self.deletes += 1
        super().delete_password(service, username)


@pytest.mark.parametrize("head", ["v1#30000000#abcd", "v1#99999999999999999999#abcd"])
def test_absurd_chunk_count_reads_as_no_session_at_no_cost(head: str) -> None:
    backend = CountingKeyring()
    backend.entries[("TapiAgent", "acct")] = head
    store = TokenStore(backend=backend)
    assert store.load("acct") is None
    assert backend.reads == 1  # the head only: no chunk names built, none fetched
    store.delete("acct")
    assert backend.entries == {}
    assert backend.deletes == 1


def test_the_largest_secret_round_trips_and_a_larger_one_is_refused(
    win: WindowsLikeKeyring,
) -> None:
    store = TokenStore(backend=win)
    biggest = jwt_like(MAX_SECRET_UNITS)
    store.save("acct", biggest)
    assert store.load("acct") == biggest
    # the same with characters outside the BMP, which push a unit into the next chunk
    astral = "\U0001F600" * (MAX_SECRET_UNITS // 2)
    store.save("acct", astral)
    assert store.load("acct") == astral
    with pytest.raises(TokenStoreError, match="longer than"):
        store.save("acct", biggest + "x")
    assert store.load("acct") == astral  # refused without touching the stored value


def test_no_keyring_backend_is_reported_unavailable() -> None:
    assert TokenStore(backend=fail.Keyring()).available is False
    assert TokenStore(backend=WindowsLikeKeyring()).available is True
    with pytest.raises(TokenStoreError):
        TokenStore(backend=fail.Keyring()).save("acct", "x")


def test_memory_store_has_the_same_api() -> None:
    store = MemoryTokenStore()
    assert store.load("a") is None
    store.save("a", "1")
    assert store.load("a") == "1"
    store.delete("a")
    store.delete("a")
    assert store.load("a") is None


WAIT_FOR_SECRET_SERVICE = textwrap.dedent("""
    import time
    from keyring.backends import SecretService

    # gnome-keyring-daemon may still be registering on the bus when the script starts.
    _deadline = time.monotonic() + 20
    while True:
        try:
            SecretService.Keyring().get_password("TapiAgentTest", "probe")
            break
        except Exception as exc:
            if time.monotonic() > _deadline:
                raise SystemExit(f"Secret Service not ready: {exc!r}")
            time.sleep(0.05)
""")

SECRET_SERVICE_SCRIPT = WAIT_FOR_SECRET_SERVICE + textwrap.dedent("""
    import sys
    from keyring.backends import SecretService
    from tapi_agent.net.tokens import TokenStore

    backend = SecretService.Keyring()
    store = TokenStore("TapiAgentTest", backend=backend)
    assert store.available
    token = ("eyJhbGciOiJSUzI1NiJ9." * 300)[:6000]
    store.save("refresh", token)
    # read back through a fresh store and backend: really stored in the daemon
    again = TokenStore("TapiAgentTest", backend=SecretService.Keyring())
    assert again.load("refresh") == token, "round trip failed"
    heads = backend.get_password("TapiAgentTest", "refresh")
    assert heads.startswith("v1#5#"), heads
    store.save("refresh", "short")
    assert again.load("refresh") == "short"
    store.delete("refresh")
    assert again.load("refresh") is None
    print("SECRET-SERVICE-OK")
""")


def run_on_a_secret_service(tmp_path: Path, script: str,
                            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `script` (Python source) under `dbus-run-session` with gnome-keyring's Secret Service
    on that private bus, its login keyring unlocked; keyring picks the Secret Service itself."""
    require_tool("dbus-run-session", "runs a private D-Bus session for gnome-keyring")
    require_tool("gnome-keyring-daemon", "the Secret Service implementation")
    path = tmp_path / "script.py"
    path.write_text(script, encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),  # the daemon writes its keyring files here, not in the real home
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    env.pop("PYTHON_KEYRING_BACKEND", None)  # the Secret Service, as on a desktop
    command = (
        "echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; "
        f"exec {sys.executable} {path}"
    )
    return subprocess.run(["dbus-run-session", "--", "sh", "-c", command], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_token_store_on_a_real_secret_service(tmp_path: Path) -> None:
    result = run_on_a_secret_service(tmp_path, SECRET_SERVICE_SCRIPT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SECRET-SERVICE-OK" in result.stdout


def test_importing_the_store_and_the_session_does_not_load_keyring() -> None:
    """keyring (and its chain) is imported when a TokenStore first touches its backend: the
    agent, which uses the store through a child process, never loads it (issue 14)."""
    code = ("import sys, tapi_agent.net.auth; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('keyring', 'importlib_metadata', 'jaraco', 'jeepney', 'secretstorage')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"
