"""Smoke test of the real MSI on a Windows machine (the Windows workflow runs it on its runner).

    python installer/smoke_test.py dist/TapiAgent-<v>-x64.msi dist-next/TapiAgent-<v+1>-x64.msi

As an administrator, on a PC without TAPI Agent: the mock backend runs in this process; the
msiexec logs and the agent's JSON log go to smoke-logs/.

1. silent install with properties: exit code 0, the values in HKLM\\SOFTWARE\\TapiAgent, the Run
   entry, the Add/Remove Programs entry;
2. sign in as the agent does (the session goes to the Windows Credential Manager), start the
   installed agent with --log-json, post a call to the mock, see `pop.shown` in its log;
3. upgrade to the second (higher) MSI with the agent running: exit code 0 (not 3010), the agent
   closed by Restart Manager (`app.session_end`, reason installer) and started again;
4. uninstall: exit code 0, no program folder, no HKLM\\SOFTWARE\\TapiAgent, no Run value, no
   Add/Remove Programs entry, no agent process left.

Every wait has a deadline; the first failure stops the test with a message and exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MACHINE_KEY = r"SOFTWARE\TapiAgent"
RUN_KEY = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run"
UNINSTALL_KEY = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall"
INSTALLED = Path(r"C:\Program Files\TapiAgent")
CLIENT_ID = "tapi-agent"
REDIRECT_PORT = "52180"


class SmokeFailed(AssertionError):
    """One check of the smoke test failed."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise SmokeFailed(message)
    print(f"ok: {message}", flush=True)


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SmokeFailed(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.25)
    print(f"ok: {what}", flush=True)


def msiexec(*args: str, log: Path) -> int:
    result = subprocess.run(["msiexec", *args, "/l*v", str(log)], check=False)
    print(f"msiexec {' '.join(args)} -> {result.returncode}", flush=True)
    return result.returncode


def reg_values(key: str) -> dict[str, Any] | None:
    import winreg

    try:
        handle = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key, 0,
                                winreg.KEY_READ | winreg.KEY_WOW64_64KEY)
    except OSError:
        return None
    out: dict[str, Any] = {}
    with handle:
        i = 0
        while True:
            try:
                name, data, _kind = winreg.EnumValue(handle, i)
            except OSError:
                return out
            out[name] = data
            i += 1


def products() -> dict[str, dict[str, Any]]:
    import winreg

    out = {}
    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, UNINSTALL_KEY, 0,
                        winreg.KEY_READ | winreg.KEY_WOW64_64KEY) as handle:
        for i in range(winreg.QueryInfoKey(handle)[0]):
            code = winreg.EnumKey(handle, i)
            values = reg_values(f"{UNINSTALL_KEY}\\{code}") or {}
            if str(values.get("DisplayName", "")).startswith("TAPI Agent"):
                out[code] = values
    return out


def agent_pids() -> list[int]:
    out = subprocess.run(["tasklist", "/FI", "IMAGENAME eq tapi-agent.exe", "/FO", "CSV",
                          "/NH"], capture_output=True, text=True, check=False).stdout
    return [int(line.split('","')[1]) for line in out.splitlines() if line.startswith('"tapi')]


def events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return [json.loads(x) for x in lines if x.startswith("{") and x.endswith("}")]


def seen(log: Path, event: str, **fields: object) -> bool:
    return any(e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
               for e in events(log))


def sign_in(server: str) -> None:
    """Sign in as the agent does, so that the installed agent finds the session in the
    Credential Manager and connects by itself (the mock approves every sign-in)."""
    import httpx

    from tapi_agent.net.auth import ReapitConnect, Session
    from tapi_agent.net.tokens import TokenStore

    def browser(url: str) -> bool:
        threading.Thread(target=lambda: httpx.get(url, follow_redirects=True, timeout=20),
                         daemon=True).start()
        return True

    async def run() -> str:
        store = TokenStore()
        check(store.available, f"the Windows Credential Manager is usable ({store.description})")
        connect = ReapitConnect(server, CLIENT_ID)
        try:
            identity = await Session(connect, store).sign_in(port=0, open_browser=browser,
                                                             timeout_s=30)
        finally:
            await connect.aclose()
        return str(identity.negotiator_id)

    check(asyncio.run(run()) == "JAS", "signed in as JAS")


def post_call(mock: Any, call_id: str) -> None:
    import httpx

    body = {"type": "telephony", "subType": "incomingCall", "products": ["AgencyCloud"],
            "targets": {"negotiatorId": ["JAS"]},
            "payload": {"id": call_id, "created": datetime.now(UTC).isoformat(),
                        "callerId": "07123 456789", "destinationId": "01234 567890"}}
    response = httpx.post(f"{mock.base_url}/notifications", json=body,
                          headers={"Authorization": f"Bearer {mock.provider_token()}"})
    check(response.status_code == 202, f"the mock took call {call_id} ({response.status_code})")


def main(msi: Path, next_msi: Path, logs: Path) -> None:
    from tapi_agent.mock.server import MockServer

    logs.mkdir(parents=True, exist_ok=True)
    check(not products(), "no TAPI Agent installed before the test")
    mock = MockServer(port=0, heartbeat_ms=2000, auto_approve="JAS")
    mock.start()
    agent = None
    try:
        # 1. silent install with properties
        code = msiexec("/i", str(msi.resolve()), "/qn", f"SERVER_URL={mock.base_url}",
                       f"CLIENT_ID={CLIENT_ID}", f"REDIRECT_PORT={REDIRECT_PORT}", "AUTOSTART=0",
                       log=logs / "install.log")
        check(code == 0, "silent install exits 0")
        check(reg_values(MACHINE_KEY) == {"ServerUrl": mock.base_url, "ClientId": CLIENT_ID,
                                          "RedirectPort": REDIRECT_PORT, "AutoStart": "0"},
              "the properties are in HKLM\\SOFTWARE\\TapiAgent")
        run = (reg_values(RUN_KEY) or {}).get("TapiAgent", "")
        check(run == f'"{INSTALLED}\\tapi-agent.exe" --at-sign-in', f"the Run entry: {run}")
        (entry,) = products().values()
        check(entry.get("HelpLink") and entry.get("URLInfoAbout") and entry.get("Contact"),
              "Add/Remove Programs has a help link, an about link and a contact")
        version = subprocess.run([str(INSTALLED / "tapi-agent-cli.exe"), "--version"],
                                 capture_output=True, text=True, check=False)
        check(version.returncode == 0, f"the installed CLI runs: {version.stdout.strip()}")

        # 2. the installed agent shows a call
        sign_in(mock.base_url)
        log = logs / "agent-events.jsonl"
        agent = subprocess.Popen([str(INSTALLED / "tapi-agent.exe"), "--log-json", str(log)])
        wait_for(lambda: seen(log, "connection.state", state="connected"),
                 "the installed agent connects to the mock")
        post_call(mock, "smoke-1")
        wait_for(lambda: seen(log, "pop.shown", callId="smoke-1"), "pop.shown for smoke-1")

        # 3. upgrade with the agent running
        code = msiexec("/i", str(next_msi.resolve()), "/qn", log=logs / "upgrade.log")
        check(code == 0, "the upgrade with the agent running exits 0 (no reboot needed)")
        (entry,) = products().values()
        print(f"installed now: {entry.get('DisplayVersion')}")
        wait_for(lambda: agent.poll() is not None, "the old agent quit", timeout_s=30)
        check(seen(log, "app.session_end", reason="installer"),
              "the agent logged app.session_end (reason installer)")
        wait_for(agent_pids, "Restart Manager started the agent again", timeout_s=60)

        # 4. uninstall
        code = msiexec("/x", str(next_msi.resolve()), "/qn", log=logs / "uninstall.log")
        check(code == 0, "uninstall exits 0")
        check(not INSTALLED.exists(), "the program folder is gone")
        check(reg_values(MACHINE_KEY) is None, "HKLM\\SOFTWARE\\TapiAgent is gone")
        check("TapiAgent" not in (reg_values(RUN_KEY) or {}), "the Run value is gone")
        check(not products(), "the Add/Remove Programs entry is gone")
        wait_for(lambda: not agent_pids(), "no agent process is left", timeout_s=30)
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        for pid in agent_pids():
            subprocess.run(["taskkill", "/F", "/PID", str(pid)], check=False)
        mock.stop()


if __name__ == "__main__":
    if sys.platform != "win32" or len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        main(Path(sys.argv[1]), Path(sys.argv[2]), Path("smoke-logs"))
    except SmokeFailed as exc:
        print(f"SMOKE TEST FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
    print("smoke test passed")
