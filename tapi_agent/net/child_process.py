"""What the agent's short-lived helper processes share: how one is started, in what
environment, and how its last words are read (issue 14).

Two children: the ID token check (`id_token_child`) and the credential store (`token_child`).
Each is a module of this package with a `main()` that reads one JSON request on stdin and
writes one JSON answer on stdout. From a pip install or a venv it runs as
`python -P -m <module>`; from the frozen app, as the console executable beside the running one
(`tapi-agent-cli <hidden flag>`, dispatched by `tapi_agent.app.main` before anything else: a
windowed executable may have no stdio), with `CREATE_NO_WINDOW` on Windows.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def child_command(module: str, flag: str) -> list[str]:
    """How to start the child `module`: this interpreter with `-m`, or the frozen app's own
    executable (its console twin `tapi-agent-cli` when there is one) with the hidden `flag`."""
    if getattr(sys, "frozen", False):
        exe = Path(sys.executable)
        cli = exe.with_name("tapi-agent-cli" + exe.suffix)
        return [str(cli if cli.is_file() else exe), flag]
    # -P: the current directory is not put on sys.path (the child imports only the package).
    return [sys.executable, "-P", "-m", module]


def child_env() -> dict[str, str]:
    """The agent's environment; from a source tree, the package's directory on PYTHONPATH so
    the child imports the same `tapi_agent` as the agent."""
    env = dict(os.environ)
    if not getattr(sys, "frozen", False):
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def no_window() -> dict[str, Any]:
    """Keyword arguments for starting the child without a console window (Windows)."""
    if sys.platform == "win32":
        import subprocess

        return {"creationflags": subprocess.CREATE_NO_WINDOW}
    return {}


def last_line(stderr: bytes) -> str:
    """The last non-blank line the child wrote to stderr (a traceback's exception), or ""; the
    caller takes its secrets out before showing it."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def redacted(text: str, secret: str | None) -> str:
    """`text` from or about a child with the credential it was given taken out: whole, as it
    reads inside JSON, and each token-like run of it, with and without its dots (a JWT's three
    parts, a refresh token inside a session's JSON)."""
    if not secret:
        return text
    parts = {secret, json.dumps(secret)[1:-1],
             *re.split(r"[^A-Za-z0-9._~+/=-]+", secret), *re.split(r"[^A-Za-z0-9_~+/=-]+", secret)}
    for part in sorted(parts, key=len, reverse=True):
        if len(part) >= 8:
            text = text.replace(part, "<redacted>")
    return text


def run_child(serve: Callable[[BinaryIO, BinaryIO], int]) -> int:
    """A child's entry point: `serve` on the process's stdin and stdout, or 3 when it has none
    (a windowed executable started without pipes)."""
    if sys.stdin is None or sys.stdout is None:
        return 3
    return serve(sys.stdin.buffer, sys.stdout.buffer)
