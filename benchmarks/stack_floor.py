"""The stack's floor: the bare tray app plus what DESIGN.md's stack costs before any agent code.

    BENCH_SERVER=http://127.0.0.1:PORT python benchmarks/stack_floor.py

Issue 14 asks for an idle agent within 1.5x of the bare PySide6 tray app (`bare_tray.py`).
This process is that tray app plus, used once each as the agent uses them and then kept, the
parts DESIGN.md chooses for every agent: an asyncio loop in a worker thread, TLS with the OS
trust store (`truststore`), one HTTP request with `h11` over asyncio streams (the agent's HTTP
client since issue 14's third round; DESIGN.md named httpx, which cost ~8 MiB more), the
`websockets` client, `phonenumbers` parsing and formatting a UK number, `msgspec` decoding a
frame, `platformdirs`, `tomllib` and a rotating log file. No agent code. Its idle RSS beside the
bare app's is the least any agent on this stack can idle at; `bench_footprint.py` measures it
beside the agents. `keyring` is not in it since the seventh run: the agent reaches the
credential store through a short-lived child process (`tapi_agent/net/token_child.py`), so
keyring is never loaded in the process that idles (`--with-keyring` puts it back, with
keyring's failing backend resolved, as the earlier runs measured: about +2-3 MiB).

    BENCH_SERVER=... QT_QPA_PLATFORM=offscreen python benchmarks/stack_floor.py --steps

prints instead what each part adds to the RSS, in this order, after a QApplication (a part's
shared dependencies count where they first load, so the order matters), and exits.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
import threading

KEEP: list[object] = []
STEPS: list[tuple[str, float]] = []


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def step(name: str) -> None:
    STEPS.append((name, _rss_mib()))


def build_stack(server: str) -> None:
    step("start")
    import asyncio
    import ssl

    import truststore

    ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="worker", daemon=True).start()
    step("asyncio and ssl, a truststore context, the worker thread's loop")
    from urllib.parse import urlsplit

    import h11

    step("import h11")

    async def first_request() -> tuple[asyncio.StreamWriter, h11.Connection]:
        # One GET as the agent's client makes it (tapi_agent/net/http.py): h11 over a stream.
        parts = urlsplit(server)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        state = h11.Connection(h11.CLIENT)
        target = "/.well-known/openid-configuration"
        writer.write(state.send(h11.Request(method="GET", target=target,
                                            headers=[("Host", parts.netloc)])))
        writer.write(state.send(h11.EndOfMessage()))
        await writer.drain()
        while not isinstance(event := state.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                state.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response) and event.status_code != 200:
                raise RuntimeError(f"HTTP {event.status_code}")
        return writer, state

    client = asyncio.run_coroutine_threadsafe(first_request(), loop).result(30)
    step("h11's first request on the worker thread's asyncio streams")
    import websockets.asyncio.client

    step("websockets client")
    store = None
    if "--with-keyring" in sys.argv:
        import keyring

        store = keyring.get_keyring()
        step("keyring, its backend resolved")
    import phonenumbers

    number = phonenumbers.parse("07123 456789", "GB")
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    step("phonenumbers, a UK number parsed and formatted")
    import msgspec

    class Frame(msgspec.Struct):
        type: str
        seq: int

    frame = msgspec.json.decode(b'{"type":"notification","seq":1}', type=Frame)
    step("msgspec, a frame decoded")
    import logging
    import logging.handlers
    import tomllib

    import platformdirs

    log_dir = tempfile.mkdtemp(prefix="stack-floor-")
    handler = logging.handlers.RotatingFileHandler(os.path.join(log_dir, "floor.log"),
                                                   maxBytes=10_000_000, backupCount=5)
    logging.getLogger().addHandler(handler)
    logging.getLogger().warning("stack floor up: %s %s", shown, frame.seq)
    settings = tomllib.loads('[server]\nurl = "https://api.example.com"\n')
    KEEP.extend([ctx, loop, client, store, number, frame, handler, settings,
                 platformdirs.user_config_dir("TapiAgent"), websockets.asyncio.client.connect])
    step("platformdirs, tomllib, a rotating log file")


def main() -> int:
    if "--steps" in sys.argv:
        from PySide6.QtWidgets import QApplication

        app = QApplication(sys.argv[:1])
        before = _rss_mib()
        build_stack(os.environ["BENCH_SERVER"])
        for (_, prev), (name, now) in itertools.pairwise(STEPS):
            print(f"{now - prev:+6.1f} MiB  {name}")
        print(f"{_rss_mib() - before:+6.1f} MiB  in all, after the QApplication", flush=True)
        del app
        return 0
    build_stack(os.environ["BENCH_SERVER"])  # before Qt, so PySide6's import hook never sees it
    from bare_tray import main as tray

    return tray()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
