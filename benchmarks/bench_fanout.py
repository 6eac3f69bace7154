"""Fan-out: one hunt-group notification to 10, 100 and 1,000 connected negotiators.

    .venv/bin/python benchmarks/bench_fanout.py [--quick] [--sizes 10,100]
                                                [--rounds N] [--httpx]

Measures the time from the provider's request leaving the driver to the moment the last of N
negotiators has the frame (and the first; and `acceptedToLast`, from the frame's `sentAt`, the
server's accept time at millisecond resolution, which leaves the HTTP request out), for:
- `floor`: `floor_broadcast.py`, a minimal websockets server broadcasting one frame to N clients;
- `mock`: the mock backend, `POST /notifications` with N targets (B0001..BNNNN), one socket each;
(The first runs also measured `mock+patch` variants, proposals the product has since made:
`results/before/fanout.json`.)
The N clients live in their own process (`fanout_clients.py`); each server in its own.
The provider's POST goes out over one raw keep-alive socket, built before the clock starts, as
the floor's trigger is a few bytes on an open websocket (`--httpx` also runs the mock driven
by httpx, the driver before, whose own Python cost landed in the mock's figures).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect as ws_connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend import bench_negotiator
from common import (
    BENCH_DIR,
    PYTHON,
    ROOT,
    Backend,
    child_env,
    envelope,
    fmt,
    parse_iso,
    percentiles,
    raise_nofile,
    write_result,
)


class Clients:
    """The client process: N sockets, answers `report CALL_ID`."""

    def __init__(self, url: str, count: int, mint: str = "") -> None:
        cmd = [PYTHON, str(BENCH_DIR / "fanout_clients.py"), "--url", url, "--count", str(count)]
        if mint:
            cmd += ["--mint", mint]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=child_env(), cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("fan-out clients did not start")
        assert json.loads(line)["ready"] == count

    def report(self, call_id: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"report {call_id}\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class RawPost:
    """The provider's side: one keep-alive HTTP/1.1 connection, a request in one write.

    The floor is triggered over an open websocket by a few lines of framing; httpx spends
    about 0.5 ms of Python per request before its bytes leave, which the mock's figure would
    otherwise carry (the blocking twin of `common.RawHttp`)."""

    def __init__(self, base_url: str, token: str) -> None:
        host, port = base_url.split("://", 1)[1].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.head = (f"POST /notifications HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                     "Content-Length: ")

    def request(self, data: bytes) -> bytes:
        """Everything `post` sends for `data`, built before the clock starts."""
        return f"{self.head}{len(data)}\r\n\r\n".encode() + data

    def post(self, request: bytes) -> tuple[int, bytes]:
        """Send a built request; (status, body)."""
        self.sock.sendall(request)
        status = int(self.file.readline().split()[1])
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, self.file.read(length)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class HttpxPost:
    """The driver as it was (httpx), kept for `--httpx` to show what the driver costs."""

    def __init__(self, base_url: str, token: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})

    def request(self, data: bytes) -> bytes:
        return data

    def post(self, request: bytes) -> tuple[int, bytes]:
        resp = self.http.post("/notifications", content=request)
        return resp.status_code, resp.content

    def close(self) -> None:
        self.http.close()


def _round(clients: Clients, call_id: str, t0: float, count: int) -> dict[str, float]:
    got = clients.report(call_id)
    if got["count"] != count:
        raise RuntimeError(f"{call_id}: only {got['count']} of {count} clients got it")
    accepted = parse_iso(got["sentAt"])
    return {"first": (got["first"] - t0) * 1000, "last": (got["last"] - t0) * 1000,
            "acceptedToLast": (got["last"] - accepted) * 1000}


def run_floor(count: int, rounds: int) -> dict[str, Any]:
    server = subprocess.Popen([PYTHON, str(BENCH_DIR / "floor_broadcast.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=child_env(), cwd=ROOT)
    assert server.stdout is not None and server.stdin is not None
    port = json.loads(server.stdout.readline())["port"]
    clients = Clients(f"ws://127.0.0.1:{port}/stream", count)
    targets = [bench_negotiator(i + 1) for i in range(count)]
    samples = []
    try:
        with ws_connect(f"ws://127.0.0.1:{port}/trigger") as trigger:
            for r in range(rounds + 1):
                call_id = f"floor-{count}-{r}"
                body = json.dumps(envelope("incomingCall", call_id, targets, hunt_group=True))
                t0 = time.time()
                trigger.send(body)
                trigger.recv()
                sample = _round(clients, call_id, t0, count)
                if r:  # round 0 warms up
                    samples.append(sample)
    finally:
        clients.stop()
        server.stdin.close()
        server.wait(15)
    return _summary(samples)


def run_mock(count: int, rounds: int, *,
             driver: type[RawPost] | type[HttpxPost] = RawPost) -> dict[str, Any]:
    backend = Backend.start("--negotiators", str(count))
    clients = Clients(backend.ws_url, count, mint=backend.base_url)
    targets = [bench_negotiator(i + 1) for i in range(count)]
    samples = []
    post_ms = []
    try:
        http = driver(backend.base_url, backend.provider_token)
        try:
            for r in range(rounds + 1):
                call_id = f"mock-{count}-{r}"
                body = json.dumps(envelope("incomingCall", call_id, targets, hunt_group=True))
                request = http.request(body.encode())
                t0 = time.time()
                status, answer = http.post(request)
                t_resp = time.time()
                if status != 202:
                    raise RuntimeError(f"POST refused: {status} {answer[:300]!r}")
                sample = _round(clients, call_id, t0, count)
                if r:
                    samples.append(sample)
                    post_ms.append((t_resp - t0) * 1000)
        finally:
            http.close()
    finally:
        clients.stop()
        backend.stop()
    out = _summary(samples)
    out["post202"] = percentiles(post_ms)
    return out


def _summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    return {"last": percentiles([s["last"] for s in samples]),
            "first": percentiles([s["first"] for s in samples]),
            "acceptedToLast": percentiles([s["acceptedToLast"] for s in samples])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 100 clients, 5 rounds")
    parser.add_argument("--sizes", default="")
    parser.add_argument("--httpx", action="store_true",
                        help="also drive the mock with httpx (the driver before)")
    parser.add_argument("--rounds", type=int, default=0, help="rounds per size (default 20)")
    args = parser.parse_args()
    raise_nofile(16384)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [10, 100] if args.quick else [10, 100, 1000])
    rounds = args.rounds or (5 if args.quick else 20)
    results: dict[str, Any] = {"rounds": rounds, "sizes": {}}
    for count in sizes:
        row: dict[str, Any] = {}
        row["floor"] = run_floor(count, rounds)
        print(f"N={count:5d} floor      last: {fmt(row['floor']['last'])}")
        row["mock"] = run_mock(count, rounds)
        print(f"N={count:5d} mock       last: {fmt(row['mock']['last'])}")
        print(f"N={count:5d} mock POST->202:  {fmt(row['mock']['post202'])}")
        if args.httpx:
            row["mock+httpx"] = run_mock(count, rounds, driver=HttpxPost)
            print(f"N={count:5d} mock, httpx driver last: {fmt(row['mock+httpx']['last'])}")
        row["ratio_p50"] = row["mock"]["last"]["p50"] / row["floor"]["last"]["p50"]
        print(f"N={count:5d} ratio mock/floor (p50 of last): {row['ratio_p50']:.2f}x")
        results["sizes"][str(count)] = row
    results["target"] = "mock within 2x of the floor (time until the last client has it)"
    write_result("fanout", results, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
