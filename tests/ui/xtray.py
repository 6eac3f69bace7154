"""A real X display with a real system tray: Xvfb plus trayer (for the tray tests and the
screenshot script)."""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

TRAYER_ARGS = ["--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32",
               "--SetDockType", "true", "--SetPartialStrut", "true", "--transparent", "false",
               "--tint", "0x2b2b2b", "--expand", "true", "--padding", "4"]


def _read_display(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Xvfb writes the display number it picked to `fd` once it accepts clients."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise RuntimeError(f"Xvfb did not start (exit code {proc.poll()})")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                raise RuntimeError("Xvfb closed its display pipe without a display number")
            data += chunk
    return ":" + data.decode().strip()


@contextmanager
def x_display_with_tray(size: str = "1024x600", timeout: float = 20.0) -> Iterator[str]:
    """Start Xvfb on a free display and trayer on it; yield the DISPLAY value; stop both."""
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size}x24", "-nolisten", "tcp",
         "-noreset"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    trayer: subprocess.Popen[bytes] | None = None
    try:
        display = _read_display(read_fd, xvfb, timeout)
        env = dict(os.environ, DISPLAY=display)
        trayer = subprocess.Popen(["trayer", *TRAYER_ARGS], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield display
    finally:
        os.close(read_fd)
        for proc in (trayer, xvfb):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
