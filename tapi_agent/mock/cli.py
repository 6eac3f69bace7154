"""`tapi-agent-mock`: run the mock backend, push calls to it, and check payloads offline."""

from __future__ import annotations

import argparse
import ipaddress
import json
import secrets
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tapi_agent.mock.seed import DEMO_CALLS
from tapi_agent.protocol import ValidationFailed, validate_envelope

DEFAULT_SERVER = "http://127.0.0.1:8765"
SUBTYPES = {"incoming": "incomingCall", "answered": "answeredCall", "ended": "endedCall",
            "missed": "missedCall"}
SCENARIOS = ("hunt-group", "answered", "missed", "burst")

EXIT_OK, EXIT_INVALID, EXIT_ERROR = 0, 1, 2


class CliError(Exception):
    """A problem the user can fix; printed as one line, no traceback."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- serve ----------------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    from tapi_agent.mock.server import MockServer  # needs the `mock` extra (FastAPI, uvicorn)
    from tapi_agent.mock.store import StateDirError

    if not _is_loopback(args.host):
        print("!" * 78, file=sys.stderr)
        print(f"WARNING: binding to {args.host}: anyone who can reach this machine can mint "
              "tokens,\nread the demo directory and push notifications. Use 127.0.0.1 unless "
              "you mean it.", file=sys.stderr)
        print("!" * 78, file=sys.stderr)
    try:
        server = MockServer(
            args.host, args.port, heartbeat_ms=args.heartbeat_ms, token_ttl=args.token_ttl,
            retention_s=args.retention_s, retention_max=args.retention_max,
            auto_approve=args.auto_approve, seed=args.seed, issuer_path=args.issuer_path,
            state_dir=args.state_dir,
        )
    except StateDirError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot read the seed file {args.seed}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"bad settings or seed file: {exc}") from None
    try:
        server.start()
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    url = server.base_url
    print(f"tapi-agent-mock listening on {url}  (epoch {server.epoch})", flush=True)
    print(f"  stream:  {server.ws_url}")
    print(f"  docs:    {url}/docs")
    if args.issuer_path:
        print(f"  issuer:  {server.state.issuer.issuer}")
    print(f"  sign-in: {url}/authorize"
          + (f"  (auto-approves {args.auto_approve})" if args.auto_approve else ""))
    print("  provider client: demo-provider / demo-secret")
    if args.state_dir is not None:
        print(f"  state:   {args.state_dir} (kept across restarts; restart on the same --port)")
    print("Press Ctrl+C to stop.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("stopped.")
    return EXIT_OK


# -- client commands ------------------------------------------------------------------------------

class Backend:
    """A running backend reached over HTTP with a provider token (client_credentials)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.url = args.server.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self._client = (args.client_id, args.client_secret)
        self._token: str | None = None

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach the mock backend at {self.url} ({exc}); "
                           "is `tapi-agent-mock serve` running? (--server URL)") from None

    def token(self) -> str:
        if self._token is None:
            r = self.request("POST", "/oauth/token", data={"grant_type": "client_credentials"},
                             auth=self._client)
            if r.status_code != 200:
                raise CliError(f"the backend refused the provider client: {_describe(r)}")
            self._token = str(r.json()["access_token"])
        return self._token

    def post_notification(self, envelope: dict[str, Any]) -> httpx.Response:
        return self.request("POST", "/notifications", json=envelope,
                            headers={"Authorization": f"Bearer {self.token()}"})


def _describe(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"HTTP {r.status_code}"
    if isinstance(body, dict):
        text = body.get("description") or body.get("error_description") or body.get("error")
        if text:
            return f"HTTP {r.status_code}: {text}"
    return f"HTTP {r.status_code}"


def _print_errors(errors: list[dict[str, str]]) -> None:
    for e in errors:
        print(f"{e.get('field', '')}: {e.get('message', '')}")


def build_envelope(args: argparse.Namespace) -> dict[str, Any]:
    """The envelope `send` posts, from its arguments."""
    targets = [t.strip() for t in args.to.split(",") if t.strip()]
    payload: dict[str, Any] = {
        "id": args.id or "cli-" + secrets.token_hex(4),
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "callerId": args.caller,
        "destinationId": args.destination,
    }
    if args.hunt_group:
        payload["huntGroup"] = True
    if args.answered_by:
        payload["answeredById"] = args.answered_by
    return {"type": "telephony", "subType": SUBTYPES[args.event], "products": [args.product],
            "targets": {"negotiatorId": targets}, "payload": payload}


def cmd_send(args: argparse.Namespace) -> int:
    backend = Backend(args)
    envelope = build_envelope(args)
    r = backend.post_notification(envelope)
    if r.status_code == 202:
        body = r.json()
        print(f"accepted {envelope['subType']} call {envelope['payload']['id']}: "
              f"notification {body['id']} to {', '.join(body['recipients'])}")
        return EXIT_OK
    if r.status_code == 422:  # failed validation: the errors name each field
        print(f"rejected: {_describe(r)}", file=sys.stderr)
        _print_errors(r.json().get("errors", []))
        return EXIT_INVALID
    raise CliError(f"the backend refused the notification: {_describe(r)}")


def cmd_scenario(args: argparse.Namespace) -> int:
    backend = Backend(args)
    body: dict[str, Any] = {}
    if args.negotiators:
        body["negotiators"] = [n.strip() for n in args.negotiators.split(",") if n.strip()]
    if args.count is not None:
        body["count"] = args.count
    if args.answered_by:
        body["answeredBy"] = args.answered_by
    if args.gap_ms:
        body["gapMs"] = args.gap_ms
    r = backend.request("POST", f"/_mock/scenarios/{args.name}", json=body)
    if r.status_code != 200:
        raise CliError(f"scenario {args.name} failed: {_describe(r)}")
    result = r.json()
    print(f"played {args.name}: {len(result['notifications'])} notifications, "
          f"calls {', '.join(result['callIds'])}")
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    backend = Backend(args)
    body: dict[str, Any] = {"negotiatorId": args.negotiator}
    if args.ttl:
        body["ttl"] = args.ttl
    r = backend.request("POST", "/_mock/tokens", json=body)
    if r.status_code != 200:
        raise CliError(f"no token for {args.negotiator}: {_describe(r)}")
    print(r.json()["access_token"])
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        raw = path.read_bytes() if args.file != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"body: is not valid JSON ({exc})")
        return EXIT_INVALID
    try:
        env = validate_envelope(data, strict=True)
    except ValidationFailed as exc:
        _print_errors([e.as_dict() for e in exc.errors])
        return EXIT_INVALID
    print(f"valid: {env.type}/{env.subType} to {', '.join(env.targets.negotiatorId)}",
          file=sys.stderr)
    return EXIT_OK


# -- parser ---------------------------------------------------------------------------------------

def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=DEFAULT_SERVER, metavar="URL",
                   help=f"the running mock backend (default {DEFAULT_SERVER})")
    p.add_argument("--client-id", default="demo-provider", help=argparse.SUPPRESS)
    p.add_argument("--client-secret", default="demo-secret", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of `tapi-agent-mock`."""
    parser = argparse.ArgumentParser(
        prog="tapi-agent-mock",
        description="A local stand-in for Reapit's Notifications API: run it, point your "
                    "telephony integration and the TAPI Agent at it, and push calls.",
        epilog="Start with: tapi-agent-mock serve   then, in another terminal: "
               "tapi-agent-mock send incoming --to JAS",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the backend (Ctrl+C to stop)",
                           description="Run the mock backend: Notifications API, websocket "
                                       "stream, Reapit Connect sign-in and the /_mock test bench.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; anything else is reachable "
                            "from the network)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any)")
    serve.add_argument("--token-ttl", type=int, default=3600, metavar="S",
                       help="life of access and ID tokens in seconds (default 3600)")
    serve.add_argument("--heartbeat-ms", type=int, default=15000, metavar="MS",
                       help="stream heartbeat interval (default 15000)")
    serve.add_argument("--auto-approve", metavar="NEG",
                       help="sign-in skips the page and signs in as this negotiator (e.g. JAS)")
    serve.add_argument("--issuer-path", default="", metavar="PATH",
                       help="put the OpenID issuer (and its discovery document) under PATH, "
                       "e.g. /eu-west-2_demo, as Reapit Connect's issuer has a path; the "
                       "endpoints stay at the root")
    serve.add_argument("--state-dir", type=Path, metavar="DIR",
                       help="keep the signing key, sign-in sessions, missed calls, "
                            "unacknowledged events and journal entries in DIR, so a restart "
                            "(even kill -9) loses nothing; default: in memory")
    serve.add_argument("--seed", type=Path, metavar="FILE",
                       help="JSON file with negotiators/offices/contacts/clients to serve")
    serve.add_argument("--retention-s", type=float, default=300, metavar="S",
                       help="how long unacknowledged events are kept for replay (default 300)")
    serve.add_argument("--retention-max", type=int, default=1000, metavar="N",
                       help="how many unacknowledged events per negotiator (default 1000)")
    serve.set_defaults(func=cmd_serve)

    send = sub.add_parser("send", help="push one telephony event",
                          description="POST one telephony notification, as a provider would.")
    send.add_argument("event", choices=list(SUBTYPES),
                      help="incoming, answered, ended or missed (missed is stored as deferred)")
    send.add_argument("--to", required=True, metavar="NEG[,NEG]",
                      help="negotiator id(s), comma separated, e.g. JAS,RPT")
    send.add_argument("--caller", default=DEMO_CALLS[0].caller,
                      help=f"calling number (default {DEMO_CALLS[0].caller!r}, a seeded contact)")
    send.add_argument("--destination", default=DEMO_CALLS[0].destination,
                      help=f"dialled number (default {DEMO_CALLS[0].destination!r}, "
                           f"the {DEMO_CALLS[0].line})")
    send.add_argument("--id", help="call id that ties incoming/answered/ended together "
                                   "(default: a new random one; reuse it for follow-ups)")
    send.add_argument("--hunt-group", action="store_true", help="mark the call as a hunt group")
    send.add_argument("--answered-by", metavar="NEG", help="answeredById (answered/ended)")
    send.add_argument("--product", default="AgencyCloud", help="product (default AgencyCloud)")
    _client_options(send)
    send.set_defaults(func=cmd_send)

    scenario = sub.add_parser("scenario", help="play a scripted sequence of calls",
                              description="hunt-group: three negotiators ring, one answers, "
                                          "then it ends. answered: one call answered and ended. "
                                          "missed: rings, ends, stored as a missed call. "
                                          "burst: many calls at once.")
    scenario.add_argument("name", choices=SCENARIOS)
    scenario.add_argument("--negotiators", metavar="NEG[,NEG]",
                          help="who rings (default JAS; hunt-group JAS,RPT,TST)")
    scenario.add_argument("--answered-by", metavar="NEG", help="who answers")
    scenario.add_argument("--count", type=int, help="burst: how many calls (default 50)")
    scenario.add_argument("--gap-ms", type=int, default=0, help="pause between events")
    _client_options(scenario)
    scenario.set_defaults(func=cmd_scenario)

    token = sub.add_parser("token", help="print an access token for a negotiator",
                           description="Mint a negotiator access token (for curl or the agent).")
    token.add_argument("negotiator", metavar="NEG")
    token.add_argument("--ttl", type=int, help="life in seconds (default: the server's)")
    _client_options(token)
    token.set_defaults(func=cmd_token)

    check = sub.add_parser("check", help="validate a notification JSON file offline",
                           description="Validate an envelope exactly as POST /notifications "
                                       "does. Exit 0 when valid; 1 with one 'field: message' "
                                       "line per problem: the `errors` the API's 422 answer "
                                       "holds (a file that is not JSON is the API's 400).")
    check.add_argument("file", metavar="FILE.json", help="the envelope ('-' reads stdin)")
    check.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `tapi-agent-mock`."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except CliError as exc:
        print(f"tapi-agent-mock: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return result


if __name__ == "__main__":
    sys.exit(main())
