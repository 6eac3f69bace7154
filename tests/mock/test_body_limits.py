"""Request bodies: the 64 KiB limit applies while reading (chunked too), and JSON the parser
cannot take is a 400, never a 500."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from tapi_agent.mock.server import MockServer
from tests.mock.conftest import Api, envelope

LIMIT = 64 * 1024


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _connect(server: MockServer) -> socket.socket:
    url = urlsplit(server.base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    return sock


def test_a_chunked_body_is_refused_once_it_passes_the_limit_not_read_whole(
    mock_server: MockServer, api: Api
) -> None:
    sock = _connect(mock_server)
    try:
        sock.sendall(
            b"POST /notifications HTTP/1.1\r\nHost: mock\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n"
            + f"Authorization: Bearer {api.token}\r\n\r\n".encode())
        chunk = b"x" * 16384
        for _ in range(LIMIT // len(chunk) + 1):  # just past the limit, and never the end
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        # The answer comes while the body is still open: the mock stopped reading at the limit
        # (reading the whole body would wait for a terminating chunk that never comes).
        status, headers, body = _read_response(sock)
    finally:
        sock.close()
    assert status == 413
    assert json.loads(body)["statusCode"] == 413
    assert headers["x-amzn-requestid"]


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    mock_server: MockServer, api: Api
) -> None:
    sock = _connect(mock_server)
    try:
        sock.sendall(
            b"POST /journalEntries HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {50 * 1024 * 1024}\r\nAuthorization: Bearer {api.token}\r\n\r\n"
            .encode())
        status, _, body = _read_response(sock)  # not a byte of the 50 MiB was sent
    finally:
        sock.close()
    assert status == 413 and str(LIMIT) in json.loads(body)["description"]


def test_a_body_just_under_the_limit_is_read(api: Api) -> None:
    env = envelope()
    text = json.dumps(env)
    env["payload"]["id"] = "x" * (LIMIT - len(text) - 200)
    r = api.post(env)
    assert r.status_code == 422  # read and validated (the id is too long), not refused
    assert [e["field"] for e in r.json()["errors"]] == ["payload.id"]


@pytest.mark.parametrize("path", ["/notifications", "/journalEntries", "/_mock/faults",
                                  "/_mock/tokens", "/_mock/scenarios/burst"])
@pytest.mark.parametrize("raw", [
    b"[" * 50_000,  # nested deeper than the parser goes (RecursionError)
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,  # the same, as objects, under 64 KiB
    b'{"description": ' + b"9" * 5000 + b"}",  # an integer longer than Python converts
    b"\xff\xfe{}",  # not UTF-8
    b'{"a": 1}\x00',  # trailing garbage
], ids=["arrays", "objects", "long-int", "not-utf8", "trailing"])
def test_json_the_parser_cannot_take_is_400_not_500(api: Api, path: str, raw: bytes) -> None:
    r = api.http.post(path, content=raw,
                      headers={**api.auth(), "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["statusCode"] == 400
