"""A real, independent OpenID provider for tests, and a browser stand-in that signs in on it.

The provider is panva's certified `oidc-provider` (npm, pinned in tests/oidc/package.json),
run by tests/oidc/provider.mjs on a free loopback port: one public native client `tapi-agent`
(PKCE S256 required, any loopback redirect port, refresh tokens for `offline_access`), accounts
JAS / RPT / nobody. See tests/oidc/README.md for everything it is configured to do.

- `start_oidc_provider(...)`: a context manager yielding an `OidcProvider` (`.issuer`, ...).
- fixtures `oidc_provider` (module scope, default options) and `oidc_provider_factory`
  (module scope, `factory(**options) -> OidcProvider`, one provider per distinct options, or a
  fresh one with `fresh=True`); both skip on a developer machine without node or without
  `npm ci --prefix tests/oidc`, and fail under CI=true.
- `OidcBrowser`: a callable(url) -> bool that plays the system browser (cookie jar, redirects,
  the devInteractions login + consent pages, the end_session confirmation) and stops at the
  app's loopback redirect, which it GETs exactly once.
"""

from __future__ import annotations

import contextlib
import functools
import html.parser
import http.cookiejar
import json
import selectors
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import IN_CI, require_tool

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
PROVIDER_SCRIPT = OIDC_DIR / "provider.mjs"
CLIENT_ID = "tapi-agent"
# registered for the client; as a native client any loopback port is accepted in its place
REDIRECT_URI = "http://127.0.0.1/callback"
POST_LOGOUT_REDIRECT_URI = "http://127.0.0.1/signed-out"
START_TIMEOUT_S = 20.0


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every httpx client here: building one costs ~0.1 s a client, and
    everything here is plain http on loopback anyway."""
    return ssl.create_default_context()


MIN_NODE = (20, 18)  # oidc-provider 9 calls URL.parse (Node.js 20.18+, 22.1+)


@functools.cache
def _node_version(node: str) -> tuple[int, ...]:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    return tuple(int(part) for part in out.strip().lstrip("v").split(".")[:2] if part.isdigit())


def require_oidc_provider() -> str:
    """Path of `node`, once tests/oidc's packages are installed; skip or (CI=true) fail if not."""
    node = require_tool("node", "runs the OpenID provider oidc-provider")
    reason = ""
    if _node_version(node) < MIN_NODE:
        reason = (f"node {'.'.join(map(str, _node_version(node)))} is too old for oidc-provider "
                  f"(needs {'.'.join(map(str, MIN_NODE))}+)")
    elif not (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        reason = "oidc-provider is not installed: run `npm ci --prefix tests/oidc` (see .ci/run)"
    if reason:
        if IN_CI:
            pytest.fail(reason + " -- CI must run everything")
        pytest.skip(reason)
    return node


@dataclass(frozen=True)
class ProviderOptions:
    """The command-line flags of tests/oidc/provider.mjs."""

    access_ttl: int = 3600
    issuer_path: str = ""
    rotate: bool = True
    id_token_claims: bool = False
    redirect_uris: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        args = ["--port", "0", "--access-ttl", str(self.access_ttl)]
        if self.issuer_path:
            args += ["--issuer-path", self.issuer_path]
        if not self.rotate:
            args.append("--no-rotate")
        if self.id_token_claims:
            args.append("--id-token-claims")
        for uri in self.redirect_uris:
            args += ["--redirect-uri", uri]
        return args


@dataclass
class OidcProvider:
    """A running oidc-provider: `issuer` (no trailing slash), its `port` and `options`."""

    issuer: str
    port: int
    options: ProviderOptions
    process: subprocess.Popen[bytes]
    stderr_path: Path
    client_id: str = CLIENT_ID
    _discovery: dict[str, Any] | None = field(default=None, repr=False)
    _http: httpx.Client | None = field(default=None, repr=False)

    @property
    def http(self) -> httpx.Client:
        """A plain httpx client (no cookies kept) for direct calls: token, userinfo, ..."""
        if self._http is None:
            self._http = httpx.Client(timeout=10, verify=_tls())
        return self._http

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        """The provider's OpenID discovery document (fetched once)."""
        if self._discovery is None:
            resp = self.http.get(self.discovery_url)
            resp.raise_for_status()
            self._discovery = resp.json()
        return self._discovery

    def endpoint(self, name: str) -> str:
        """An endpoint from discovery, e.g. `endpoint("token")` -> its `token_endpoint`."""
        url: str = self.discovery()[f"{name}_endpoint"]
        return url

    def stderr(self) -> str:
        """What the provider wrote to stderr so far (notices, server errors)."""
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _launch(node: str, options: ProviderOptions) -> OidcProvider:
    err_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 -- lives as long as the provider
        prefix="oidc-provider-", suffix=".stderr", delete=False
    )
    stderr_path = Path(err_file.name)
    proc = subprocess.Popen(
        [node, str(PROVIDER_SCRIPT), *options.argv()],
        cwd=OIDC_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err_file,
    )
    err_file.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"oidc-provider did not report its issuer within {START_TIMEOUT_S}s; "
                    f"stderr: {stderr_path.read_text(errors='replace')}"
                )
            chunk = proc.stdout.readline()
            if not chunk:
                proc.wait()
                raise AssertionError(
                    f"oidc-provider exited ({proc.returncode}) before listening; "
                    f"stderr: {stderr_path.read_text(errors='replace')}"
                )
            line += chunk
    info = json.loads(line)
    return OidcProvider(
        issuer=info["issuer"], port=int(info["port"]), options=options, process=proc,
        stderr_path=stderr_path,
    )


@contextlib.contextmanager
def start_oidc_provider(
    *, access_ttl: int = 3600, issuer_path: str = "", rotate: bool = True,
    id_token_claims: bool = False, redirect_uris: tuple[str, ...] = (),
) -> Iterator[OidcProvider]:
    """Run tests/oidc/provider.mjs with these options for the block; stopped afterwards."""
    node = require_oidc_provider()
    options = ProviderOptions(
        access_ttl=access_ttl, issuer_path=issuer_path, rotate=rotate,
        id_token_claims=id_token_claims, redirect_uris=tuple(redirect_uris),
    )
    try:
        provider = _launch(node, options)
    except AssertionError as first:
        # Seen once in CI (1 start in ~900): node printed nothing for 20 s and was killed; a
        # second start took the usual ~0.5 s. One more start, with the first failure kept in
        # the message should that one fail too.
        warnings.warn(f"oidc-provider start retried: {first}", stacklevel=2)
        provider = _launch(node, options)
    try:
        yield provider
    finally:
        provider.stop()
        provider.stderr_path.unlink(missing_ok=True)


ProviderFactory = Callable[..., OidcProvider]


@pytest.fixture(scope="module")
def oidc_provider_factory() -> Iterator[ProviderFactory]:
    """`factory(*, access_ttl=3600, issuer_path="", rotate=True, id_token_claims=False,
    redirect_uris=(), fresh=False) -> OidcProvider`: a provider with those options, shared by
    the module's tests that ask for the same options (sessions and grants live in it; every
    `OidcBrowser` has its own cookie jar, so sign-ins do not mix) unless `fresh=True`."""
    require_oidc_provider()
    shared: dict[ProviderOptions, OidcProvider] = {}
    with contextlib.ExitStack() as stack:

        def factory(*, fresh: bool = False, **options: Any) -> OidcProvider:
            if "redirect_uris" in options:
                options["redirect_uris"] = tuple(options["redirect_uris"])
            key = ProviderOptions(**options)
            if not fresh and key in shared:
                return shared[key]
            provider = stack.enter_context(start_oidc_provider(**options))
            if not fresh:
                shared[key] = provider
            return provider

        yield factory


@pytest.fixture(scope="module")
def oidc_provider(oidc_provider_factory: ProviderFactory) -> OidcProvider:
    """oidc-provider with the default options, shared by the test module."""
    return oidc_provider_factory()


# --- the browser stand-in -------------------------------------------------------------------


@dataclass
class Step:
    """One request the browser made: method, URL, status and, for a redirect, where to."""

    method: str
    url: str
    status: int
    location: str | None = None


@dataclass
class Page:
    """An HTML page the browser was shown at the provider, and what it did with it."""

    url: str
    status: int
    text: str
    action: str  # "login", "consent", "abort", "logout", "submit", "auto-submit" or "shown"


@dataclass
class Callback:
    """The browser's one request to the app's loopback redirect URI (a GET, or the POST of a
    form_post response)."""

    url: str
    status: int | None  # None when nothing answered there
    text: str = ""
    error: str = ""

    @property
    def params(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.url).query))


@dataclass
class _Form:
    action: str = ""
    method: str = "get"
    id: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    text_inputs: list[str] = field(default_factory=list)
    password_inputs: list[str] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value); name may be ""


class _FormParser(html.parser.HTMLParser):
    """The forms of a page: hidden fields, text/password inputs and submit buttons (a button's
    `form=` attribute ties it to a form elsewhere on the page), plus the page's links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.links: list[str] = []
        self._open: _Form | None = None
        self._orphans: list[tuple[str, str, str]] = []  # (form id, name, value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = _Form(action=a.get("action", ""), method=a.get("method", "get").lower(),
                               id=a.get("id", ""))
            self.forms.append(self._open)
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag in ("input", "button"):
            kind = a.get("type", "text" if tag == "input" else "submit").lower()
            name, value = a.get("name", ""), a.get("value", "")
            target = self._open
            if a.get("form"):
                target = next((f for f in self.forms if f.id == a["form"]), None)
                if target is None:
                    self._orphans.append((a["form"], name, value))
                    return
            if target is None:
                return
            if kind == "hidden" and name:
                target.fields.append((name, value))
            elif kind == "text" and name:
                target.text_inputs.append(name)
            elif kind == "password" and name:
                target.password_inputs.append(name)
            elif kind == "submit":
                target.buttons.append((name, value))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None

    def close(self) -> None:
        super().close()
        for form_id, name, value in self._orphans:
            for form in self.forms:
                if form.id == form_id:
                    form.buttons.append((name, value))


class OidcBrowser:
    """Plays the system browser against oidc-provider's built-in (devInteractions) pages.

    `browser(url)` opens `url` like `webbrowser.open` and returns True: it follows redirects
    with its cookie jar, signs in on the login page as `login` (any password), approves the
    consent page (or cancels it when `consent=False`), confirms an end_session (logout) page
    (or declines it when `sign_out=False`), submits auto-posting forms, and stops at the first
    redirect that leaves the provider's origin (the app's loopback redirect_uri), which it GETs
    exactly once and does not follow further. The cookie jar outlives the call, so a second
    authorize (e.g. with prompt=none) shows whether the provider session still exists.

    Recorded for assertions: `opened` (URLs given), `steps` (every request), `pages` (HTML pages
    and what was done with them), `callbacks` (the app redirects reached), `logins` (how many
    times the login page was filled). With `background=True` the call returns at once and the
    flow runs on a thread; `wait()` joins it and re-raises what it raised.
    """

    def __init__(
        self, login: str = "JAS", *, password: str = "any password", consent: bool = True,
        sign_out: bool = True, background: bool = False, timeout: float = 10.0,
        max_steps: int = 30, cookies: http.cookiejar.CookieJar | None = None,
    ) -> None:
        self.login = login
        self.password = password
        self.consent = consent
        self.sign_out = sign_out
        self.background = background
        self.max_steps = max_steps
        # `cookies`: a jar to use (and fill) instead of a new one, e.g. one kept in a file
        self.client = httpx.Client(follow_redirects=False, timeout=timeout, verify=_tls(),
                                   cookies=cookies)
        self.opened: list[str] = []
        self.steps: list[Step] = []
        self.pages: list[Page] = []
        self.callbacks: list[Callback] = []
        self.logins = 0
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    # webbrowser.open(url) -> bool
    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        if not self.background:
            self._run(url)
            return True

        def run() -> None:
            try:
                self._run(url)
            except BaseException as exc:
                self._errors.append(exc)

        thread = threading.Thread(target=run, name="OidcBrowser", daemon=True)
        self._threads.append(thread)
        thread.start()
        return True

    def wait(self, timeout: float = 20.0) -> None:
        """Join background runs; re-raise the first error one of them raised."""
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                raise AssertionError(f"the browser was still busy after {timeout}s")
        if self._errors:
            raise self._errors[0]

    @property
    def last_callback(self) -> Callback:
        if not self.callbacks:
            raise AssertionError(f"the browser never reached the app's redirect; steps: "
                                 f"{self.steps}")
        return self.callbacks[-1]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> OidcBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the flow ---

    def _run(self, url: str) -> None:
        origin = _origin(url)
        method, data = "GET", None
        for _ in range(self.max_steps):
            if _origin(url) != origin:
                self._reach_app(method, url, data)
                return
            resp = self.client.request(method, url, data=data)
            location = resp.headers.get("location")
            self.steps.append(Step(method, url, resp.status_code, location))
            if resp.is_redirect and location:
                url, method, data = urllib.parse.urljoin(url, location), "GET", None
                continue
            nxt = self._on_page(url, resp)
            if nxt is None:
                return
            method, url, data = nxt
        raise AssertionError(f"the browser gave up after {self.max_steps} steps: {self.steps}")

    def _reach_app(self, method: str, url: str, data: dict[str, str] | None) -> None:
        try:
            resp = self.client.request(method, url, data=data)
        except httpx.HTTPError as exc:
            self.steps.append(Step(method, url, 0))
            self.callbacks.append(Callback(url, None, error=f"{type(exc).__name__}: {exc}"))
            return
        self.steps.append(Step(method, url, resp.status_code, resp.headers.get("location")))
        self.callbacks.append(Callback(url, resp.status_code, resp.text))

    def _on_page(
        self, url: str, resp: httpx.Response
    ) -> tuple[str, str, dict[str, str] | None] | None:
        """What the user does on this page: (method, url, form data), or None to stop here."""
        text = resp.text
        if "html" not in resp.headers.get("content-type", ""):
            self.pages.append(Page(url, resp.status_code, text, "shown"))
            return None
        parser = _FormParser()
        parser.feed(text)
        parser.close()
        forms = [f for f in parser.forms if f.method == "post" or f.buttons or f.fields]
        if not forms:
            self.pages.append(Page(url, resp.status_code, text, "shown"))
            return None
        form = forms[0]
        target = urllib.parse.urljoin(url, form.action or url)
        data = dict(form.fields)
        if form.password_inputs:  # devInteractions' login page: any login, any password
            for name in form.text_inputs:
                data[name] = self.login
            for name in form.password_inputs:
                data[name] = self.password
            self.logins += 1
            action = "login"
        elif data.get("prompt") == "consent":
            if not self.consent:
                abort = next((link for link in parser.links if "/abort" in link), None)
                if abort is None:
                    raise AssertionError(f"no way to cancel the consent page at {url}")
                self.pages.append(Page(url, resp.status_code, text, "abort"))
                return "GET", urllib.parse.urljoin(url, abort), None
            action = "consent"
        elif form.buttons:
            # the end_session page: "Yes, sign me out" (name=logout) or "No, stay signed in"
            named = [b for b in form.buttons if b[0]]
            unnamed = [b for b in form.buttons if not b[0]]
            pick = (named or form.buttons)[0] if self.sign_out else (unnamed or form.buttons)[-1]
            if pick[0]:
                data[pick[0]] = pick[1]
            action = "logout" if pick[0] == "logout" else "submit"
        else:
            action = "auto-submit"  # a form_post page whose script would submit it
        self.pages.append(Page(url, resp.status_code, text, action))
        if form.method == "post":
            return "POST", target, data
        return "GET", f"{target}?{urllib.parse.urlencode(data)}", None


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname or "", parts.port or default_port
