"""Settings: declared keys, the layers they come from, validation, and the agent's paths.

Layers, later wins (DESIGN.md section 8):

1. built-in defaults (`SETTINGS`),
2. on Windows, the values the MSI writes to `HKLM\\SOFTWARE\\TapiAgent`, only for the
   installer properties IT gave (SERVER_URL, CLIENT_ID, REDIRECT_PORT, AUTOSTART),
3. the machine-wide TOML file in `site_config_dir` (IT's own file, so it beats the MSI values).
   It can lock its keys against the layers after it with a top-level `locked = ["server.url"]`,
4. Windows policy: `HKLM\\SOFTWARE\\Policies\\TapiAgent`. A policy beats every layer, a file lock
   included, and *locks* its value, as Windows policies do: no later layer can change it.
5. the user's TOML file in `user_config_dir` (or `--config FILE`),
6. environment variables `TAPI_AGENT_<KEY>` (`server.url` -> `TAPI_AGENT_SERVER_URL`),
7. the command line (`--server`).

`Settings.sources` says which layer each value came from (`tapi-agent diagnose` prints it).

A bad value never stops the agent: it is reported as a `ConfigError` naming the file, the key and
what is allowed, and the value from the layer below (the last good one) is kept.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tapi_agent.core.redact import redact_value

APP_NAME = "TapiAgent"
APP_AUTHOR = "TapiAgent"
POLICY_KEY = r"SOFTWARE\Policies\TapiAgent"
MACHINE_KEY = r"SOFTWARE\TapiAgent"
ENV_PREFIX = "TAPI_AGENT_"


@dataclass(frozen=True)
class Setting:
    """One declared setting: its key, type, default, what is allowed and its policy value name."""

    key: str
    type: type
    default: Any
    description: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    policy: str | None = None  # value name under HKLM\SOFTWARE\Policies\TapiAgent (None: no policy)
    pattern: str | None = None  # regex a string must match (described by `allowed`)
    allowed: str | None = None  # human text of what is allowed, when not derivable

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.key.upper().replace(".", "_")

    def describe_allowed(self) -> str:
        if self.allowed:
            return self.allowed
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.type is bool:
            return "true or false"
        if self.type in (int, float):
            kind = "a whole number" if self.type is int else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{kind} from {_num(self.minimum)} to {_num(self.maximum)}"
            return kind
        if self.type is dict:
            return "a table of strings"
        return "a string"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _tz_ok(value: str) -> bool:
    return value in _timezones()


_TZ_CACHE: set[str] = set()


def _timezones() -> set[str]:
    if not _TZ_CACHE:
        from zoneinfo import available_timezones  # only when calls.timezone is set (issue 14)

        _TZ_CACHE.update(available_timezones())
    return _TZ_CACHE


# An https:// URL (a path allowed, as in Reapit Connect's issuer), or http:// to this PC only:
# no sign-in secret is ever sent in clear text to another host.
_URL_OR_EMPTY = (r"^(|https://[^\s/?#@]+(/[^\s?#]*)?"
                 r"|http://(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d{1,5})?(/[^\s?#]*)?)$")
# server.url: an origin, the same rule (the stream, the sign-in and the API all start from it).
_ORIGIN = (r"^(https://[^\s/?#@]+/?"
           r"|http://(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d{1,5})?/?)$")
_SCOPE_TOKEN = r"[\x21\x23-\x5b\x5d-\x7e]+"  # RFC 6749 scope-token characters
_URL_ALLOWED = ("empty, or an https:// URL such as https://connect.reapit.cloud (http:// only "
                "for 127.0.0.1 or localhost)")

# A link template for AgencyCloud's Desktop API (or another app's): a URL with a scheme, no
# spaces, holding its placeholder (tapi_agent/core/links.py fills it in, percent-encoded).
_LINK_WITH = r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*\{{{0}\}}[^\s]*$"
_LINK_ALLOWED = "a URL without spaces holding {{{0}}}, such as {1}"


def redirect_ports(settings: Settings) -> list[int]:
    """auth.redirect_port, then the ports of auth.redirect_ports, in order and once each."""
    ports = [settings["auth.redirect_port"]]
    ports += [int(p) for p in settings["auth.redirect_ports"].split(",") if p.strip()]
    return [p for p in dict.fromkeys(ports) if 1 <= p <= 65535]


SETTINGS: tuple[Setting, ...] = (
    Setting("server.url", str, "http://127.0.0.1:8765",
            "Origin of the notifications backend (https:// for anything but this PC)",
            policy="ServerUrl", pattern=_ORIGIN,
            allowed="an https:// origin such as https://notifications.example.com, with no "
            "user name or password (http:// only for 127.0.0.1 or localhost: any other host "
            "would get the sign-in and the tokens in clear text)"),
    Setting("auth.issuer", str, "",
            "OpenID issuer for sign-in (its discovery document gives the endpoints); empty "
            "means the same as server.url", policy="AuthIssuer", pattern=_URL_OR_EMPTY,
            allowed=_URL_ALLOWED),
    *(Setting(f"auth.{name}_url", str, "",
              f"{what} of the sign-in provider; empty means from discovery",
              policy=policy, pattern=_URL_OR_EMPTY, allowed=_URL_ALLOWED)
      for name, what, policy in (
          ("authorize", "Authorization endpoint", "AuthorizeUrl"),
          ("token", "Token endpoint", "TokenUrl"),
          ("userinfo", "UserInfo endpoint", "UserInfoUrl"),
          ("end_session", "End-session (sign-out) endpoint", "EndSessionUrl"),
          ("jwks", "Signing keys (JWKS) URL", "JwksUrl"))),
    Setting("auth.negotiator_claim", str, "custom:reapit:userCode",
            "Claim of the ID token or UserInfo that holds the negotiator id",
            policy="NegotiatorClaim", pattern=r"^[^\s]{1,128}$",
            allowed="a claim name such as custom:reapit:userCode"),
    Setting("auth.prompt", str, "auto",
            "OpenID 'prompt' on sign-in: auto asks for consent where the provider needs it "
            "for a refresh token", choices=("auto", "consent", "login", "select_account", "off"),
            policy="AuthPrompt"),
    Setting("auth.scope", str, "openid profile email offline_access",
            "Scopes the sign-in asks for (must include openid)", policy="AuthScope",
            pattern=r"^(?=(.* )?openid( |$))" + _SCOPE_TOKEN + "( " + _SCOPE_TOKEN + ")*$",
            allowed="space-separated scopes including openid, such as "
            "'openid profile email offline_access'"),
    Setting("auth.client_id", str, "tapi-agent", "OAuth client id registered with Reapit Connect",
            policy="ClientId", pattern=r"^[A-Za-z0-9._-]{1,128}$",
            allowed="letters, digits, '.', '_' or '-' (1 to 128)"),
    Setting("auth.redirect_port", int, 52173,
            "Loopback port of the sign-in redirect (registered with Reapit Connect)",
            minimum=1024, maximum=65535, policy="RedirectPort"),
    Setting("auth.redirect_ports", str, "",
            "More loopback ports to try when auth.redirect_port is taken (shared Windows hosts); "
            "each must be registered with the provider", policy="RedirectPorts",
            pattern=r"^(|\s*\d{4,5}\s*(,\s*\d{4,5}\s*)*)$",
            allowed="empty, or port numbers separated by commas, such as \"52174, 52175\""),
    Setting("platform.url", str, "",
            "Origin of the Platform API (contacts, negotiators); empty means server.url",
            policy="PlatformUrl", pattern=_URL_OR_EMPTY, allowed=_URL_ALLOWED),
    Setting("stream.product", str, "AgencyCloud", "Product whose notifications this agent shows",
            policy="Product", pattern=r"^[A-Za-z0-9]{1,64}$", allowed="a product name such as "
            "AgencyCloud"),
    Setting("calls.region", str, "GB", "Region for formatting phone numbers (ISO 3166 code)",
            policy="Region", pattern=r"^[A-Z]{2}$", allowed="a two-letter region code such as GB"),
    Setting("calls.timezone", str, "Europe/London",
            "Time zone of payload times that carry none", policy="TimeZone",
            allowed="an IANA time zone name such as Europe/London"),
    Setting("calls.ring_timeout_s", float, 60.0,
            "Seconds a ringing pop stays without any follow-up event", minimum=5, maximum=600,
            policy="RingTimeoutSeconds"),
    Setting("calls.answered_elsewhere_close_s", float, 3.0,
            "Seconds 'Answered by <name>' stays before the pop closes", minimum=0, maximum=60,
            policy="AnsweredElsewhereCloseSeconds"),
    Setting("calls.linger_s", float, 5.0, "Seconds an ended call's pop stays", minimum=0,
            maximum=60, policy="LingerSeconds"),
    Setting("calls.stale_after_s", float, 90.0,
            "Events older than this go to history instead of popping", minimum=10, maximum=3600,
            policy="StaleAfterSeconds"),
    Setting("calls.open_record", str, "off", "Open the caller's record automatically",
            choices=("off", "ring", "answer"), policy="OpenRecord"),
    Setting("calls.journal", str, "ask",
            "Log calls to the contact's journal in AgencyCloud: off, ask after a call I "
            "answered (Log call on the pop), or auto (every answered call with a known contact)",
            choices=("off", "ask", "auto"), policy="CallJournal"),
    Setting("calls.record_link", str, "agencycloud://contacts/{id}",
            "Link that opens a contact's record ({id}: the contact id)", policy="RecordLink",
            pattern=_LINK_WITH.format("id"),
            allowed=_LINK_ALLOWED.format("id", "agencycloud://contacts/{id}")),
    Setting("calls.journal_link", str, "agencycloud://contacts/{id}/journal",
            "Link that opens a contact's journal ({id}: the contact id)", policy="JournalLink",
            pattern=_LINK_WITH.format("id"),
            allowed=_LINK_ALLOWED.format("id", "agencycloud://contacts/{id}/journal")),
    Setting("calls.search_link", str, "agencycloud://contacts?communication={number}",
            "Link that searches AgencyCloud for an unknown caller ({number}: the caller's "
            "digits)", policy="SearchLink",
            pattern=_LINK_WITH.format("number"),
            allowed=_LINK_ALLOWED.format("number",
                                         "agencycloud://contacts?communication={number}")),
    Setting("calls.lines", dict, {},
            "Friendly names of dialled numbers, e.g. {\"01234 567890\" = \"Sales line\"}"),
    Setting("popup.corner", str, "bottom-right", "Screen corner where pops stack",
            choices=("bottom-right", "bottom-left", "top-right", "top-left"),
            policy="PopupCorner"),
    Setting("popup.screen", str, "tray", "Screen for pops: the tray's, the primary, or a number",
            policy="PopupScreen", pattern=r"^(tray|primary|[1-9])$",
            allowed="tray, primary, or a screen number from 1 to 9"),
    Setting("popup.max_stacked", int, 3, "Pops shown at once before '+N more'", minimum=1,
            maximum=10, policy="MaxStackedPops"),
    Setting("missed.poll_interval_s", int, 60, "Seconds between checks for missed calls",
            minimum=15, maximum=3600, policy="MissedPollSeconds"),
    Setting("app.autostart", bool, True, "Start the agent when the user signs in to Windows",
            policy="AutoStart"),
    Setting("app.do_not_disturb", bool, False, "Do not show pops (calls still go to history)"),
    Setting("network.proxy", str, "system",
            "Proxy for the backend: system settings, none, or a proxy URL", policy="Proxy",
            pattern=r"^(system|none|https?://\S+|socks5h?://\S+)$",
            allowed="system, none, or a proxy URL such as http://proxy.example.com:8080"),
    Setting("log.level", str, "INFO", "How much the agent logs",
            choices=("DEBUG", "INFO", "WARNING", "ERROR"), policy="LogLevel"),
)
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


def policy_settings() -> dict[str, Setting]:
    """Settings that Windows policy can set, by their registry value name."""
    return {s.policy: s for s in SETTINGS if s.policy}


@dataclass(frozen=True)
class ConfigError:
    """A bad setting: where it came from, which key, and what is allowed."""

    source: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.key}: {self.message}"


class InvalidValue(ValueError):
    """A value that does not fit its setting."""


def coerce(setting: Setting, value: Any, *, from_text: bool = False) -> Any:
    """Check `value` against `setting` and return it typed; raise InvalidValue saying why.

    `from_text` values (environment, command line, registry strings) are parsed from strings.
    """
    allowed = setting.describe_allowed()
    bad = InvalidValue(f"{redact_value(value)!r} is not allowed; expected {allowed}")
    t = setting.type
    if t is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):  # REG_DWORD 0/1
            return bool(value)
        if from_text and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        raise bad
    if t in (int, float):
        number: float
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int | float):
            number = value
        elif from_text and isinstance(value, str):
            try:
                number = float(value.strip()) if t is float else int(value.strip())
            except ValueError:
                raise bad from None
        else:
            raise bad
        if t is int and isinstance(number, float):
            if not number.is_integer():
                raise bad
            number = int(number)
        if isinstance(number, float) and not math.isfinite(number):
            raise bad
        if setting.minimum is not None and number < setting.minimum:
            raise bad
        if setting.maximum is not None and number > setting.maximum:
            raise bad
        return t(number)
    if t is dict:
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return dict(value)
        raise bad
    if not isinstance(value, str):
        raise bad
    value = value.strip()
    if setting.choices:
        match = {c.lower(): c for c in setting.choices}.get(value.lower())
        if match is None:
            raise bad
        return match
    if setting.pattern and not re.fullmatch(setting.pattern, value):
        raise bad
    if setting.key == "calls.timezone" and not _tz_ok(value):
        raise bad
    return value


class RegistryReader(Protocol):
    """Reads the values of one HKLM key: name -> str (REG_SZ) or int (REG_DWORD)."""

    def read_values(self, key_path: str) -> dict[str, str | int]:
        """All values of HKLM\\`key_path`; an empty dict when the key does not exist."""
        ...


class WindowsRegistry:
    """The real HKLM reader (Windows only; reads the 64-bit view)."""

    def read_values(self, key_path: str) -> dict[str, str | int]:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        out: dict[str, str | int] = {}
        try:
            key = winreg.OpenKey(  # type: ignore[attr-defined,unused-ignore]
                winreg.HKEY_LOCAL_MACHINE,  # type: ignore[attr-defined,unused-ignore]
                key_path,
                0,
                winreg.KEY_READ | winreg.KEY_WOW64_64KEY,  # type: ignore[attr-defined,unused-ignore]
            )
        except OSError:
            return out
        with key:
            i = 0
            while True:
                try:
                    name, data, kind = winreg.EnumValue(key, i)  # type: ignore[attr-defined,unused-ignore]
                except OSError:
                    break
                i += 1
                if kind in (winreg.REG_SZ, winreg.REG_EXPAND_SZ):  # type: ignore[attr-defined,unused-ignore]
                    out[name] = str(data)
                elif kind == winreg.REG_DWORD:  # type: ignore[attr-defined,unused-ignore]
                    out[name] = int(data)
        return out


class MemoryRegistry:
    """An in-memory HKLM for tests, with the registry's rules: value names are
    case-insensitive, REG_SZ strings and REG_DWORD unsigned 32-bit numbers only."""

    def __init__(self, keys: Mapping[str, Mapping[str, str | int]] | None = None) -> None:
        self._keys: dict[str, dict[str, tuple[str, str | int]]] = {}
        for path, values in (keys or {}).items():
            for name, value in values.items():
                self.set_value(path, name, value)

    def set_value(self, key_path: str, name: str, value: str | int) -> None:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError("registry values are REG_SZ (str) or REG_DWORD (int)")
        if isinstance(value, int) and not 0 <= value <= 0xFFFFFFFF:
            raise ValueError("REG_DWORD holds 0..4294967295")
        self._keys.setdefault(key_path.lower(), {})[name.lower()] = (name, value)

    def read_values(self, key_path: str) -> dict[str, str | int]:
        return {n: v for n, v in self._keys.get(key_path.lower(), {}).values()}


def default_registry() -> RegistryReader | None:
    """The real registry on Windows, None elsewhere."""
    return WindowsRegistry() if sys.platform == "win32" else None


@dataclass
class Settings:
    """Resolved settings with where each value came from, which keys are locked, and errors."""

    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    errors: list[ConfigError] = field(default_factory=list)
    user_file: Path | None = None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def is_locked(self, key: str) -> bool:
        return key in self.locked


@dataclass(frozen=True)
class Paths:
    """Where the agent keeps its files (platformdirs)."""

    machine_config: Path
    user_config: Path
    data_dir: Path
    log_dir: Path

    @classmethod
    def default(cls) -> Paths:
        import platformdirs

        return cls(
            machine_config=Path(platformdirs.site_config_dir(APP_NAME, APP_AUTHOR))
            / "config.toml",
            user_config=Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)) / "config.toml",
            data_dir=Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR)),
            log_dir=Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR)),
        )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in BY_KEY:
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def read_toml(path: Path) -> tuple[dict[str, Any], list[ConfigError]]:
    """Flat `{key: value}` from a TOML settings file; a missing file is empty, a broken one is
    an error."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}, []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return {}, [ConfigError(str(path), "(file)", f"cannot be read as TOML: {exc}")]
    return dict(_flatten(data)), []


class _Resolver:
    def __init__(self) -> None:
        self.values = {s.key: s.default for s in SETTINGS}
        self.sources = {s.key: "default" for s in SETTINGS}
        self.locked: set[str] = set()
        self.errors: list[ConfigError] = []

    def layer(self, source: str, items: Iterable[tuple[str, Any]], *, from_text: bool,
              lock: bool = False) -> None:
        """Apply one layer; `lock` (policy) also beats and replaces the locks before it."""
        for key, raw in items:
            setting = BY_KEY.get(key)
            if setting is None:
                self.errors.append(ConfigError(source, key, "is not a known setting; known: "
                                               + ", ".join(BY_KEY)))
                continue
            try:
                value = coerce(setting, raw, from_text=from_text)
            except InvalidValue as exc:
                self.errors.append(ConfigError(source, key, str(exc)))
                continue
            if key in self.locked and not lock:
                self.errors.append(ConfigError(
                    source, key, f"is locked by your administrator ({self.sources[key]}); "
                    "this value is ignored"))
                continue
            self.values[key] = value
            self.sources[key] = source
            if lock:
                self.locked.add(key)


def _registry_items(values: Mapping[str, str | int]) -> Iterable[tuple[str, Any]]:
    by_name = {name.lower(): s for name, s in policy_settings().items()}
    for name, value in values.items():
        setting = by_name.get(name.lower())
        yield (setting.key if setting else name), value


def load_settings(
    *,
    machine_file: Path | None = None,
    user_file: Path | None = None,
    registry: RegistryReader | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve every layer into `Settings`; bad values become `errors`, never exceptions."""
    r = _Resolver()
    if registry is not None:  # the MSI's values: below IT's machine file
        r.layer("HKLM\\" + MACHINE_KEY, _registry_items(registry.read_values(MACHINE_KEY)),
                from_text=True)
    if machine_file is not None:
        data, errs = read_toml(machine_file)
        r.errors.extend(errs)
        locked = data.pop("locked", [])
        r.layer(str(machine_file), data.items(), from_text=False)
        if not isinstance(locked, list) or not all(isinstance(k, str) for k in locked):
            r.errors.append(ConfigError(str(machine_file), "locked",
                                        "must be a list of setting keys"))
        else:
            for key in locked:
                if key in BY_KEY:
                    r.locked.add(key)
                else:
                    r.errors.append(ConfigError(str(machine_file), "locked",
                                                f"{key!r} is not a known setting"))
    if registry is not None:  # policy: above everything, a file lock included
        r.layer("HKLM\\" + POLICY_KEY, _registry_items(registry.read_values(POLICY_KEY)),
                from_text=True, lock=True)
    if user_file is not None:
        data, errs = read_toml(user_file)
        r.errors.extend(errs)
        r.layer(str(user_file), data.items(), from_text=False)
    env = os.environ if environ is None else environ
    env_items = [(s.key, env[s.env_var]) for s in SETTINGS if s.env_var in env]
    r.layer("environment", env_items, from_text=True)
    if cli:
        r.layer("command line", cli.items(), from_text=True)
    return Settings(r.values, r.sources, r.locked, r.errors, user_file)


def dump_toml(values: Mapping[str, Any]) -> str:
    """TOML text for flat `{key: value}` settings (`popup.corner` -> `[popup] corner = ...`).

    Written by tomli-w, not by hand: a value may hold any character the user typed (a line
    name with a tab or a control character pasted in), and TOML forbids raw control characters
    in strings; a hand-rolled writer that missed one made the whole file unreadable, so every
    user setting fell back at the next start. tomli-w escapes what TOML requires and its output
    always reads back with `tomllib`. It is imported only here: saving is rare, start-up never
    needs it.
    """
    import tomli_w

    nested: dict[str, Any] = {}
    for key in sorted(values):
        *parents, name = key.split(".")
        table = nested
        for part in parents:
            table = table.setdefault(part, {})
        table[name] = values[key]
    return tomli_w.dumps(nested)


def _write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader (or a crash) sees the old file or the new one,
    never half of one: a temporary file beside it (private to the user: 0600 on POSIX, as the
    settings may hold a proxy password), flushed to disk, then `os.replace` over the old."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_user_settings(path: Path, changes: Mapping[str, Any]) -> list[ConfigError]:
    """Merge `changes` into the user's TOML file after validating them; bad ones are returned
    and not written. Keys set to None are removed (back to the layer below)."""
    current, errors = read_toml(path)
    if errors:
        return errors
    problems: list[ConfigError] = []
    for key, value in changes.items():
        setting = BY_KEY.get(key)
        if setting is None:
            problems.append(ConfigError(str(path), key, "is not a known setting"))
            continue
        if value is None:
            current.pop(key, None)
            continue
        try:
            current[key] = coerce(setting, value)
        except InvalidValue as exc:
            problems.append(ConfigError(str(path), key, str(exc)))
    if not problems:
        try:
            _write_atomically(path, dump_toml(current))
        except OSError as exc:  # the old file is untouched; say why nothing was saved
            problems.append(ConfigError(str(path), "(file)", f"could not be written: {exc}"))
    return problems


def private_runtime_dir(*, environ: Mapping[str, str] | None = None,
                        temp_root: Path | None = None, reserve: int = 16) -> Path:
    """A directory only this user can enter, for the single-instance socket and the token
    lock: nothing another local user planted can be in it, so whatever is there is ours.

    POSIX, first that works: `$XDG_RUNTIME_DIR/TapiAgent` (when `$XDG_RUNTIME_DIR` is owned by
    us and closed to others, as the XDG spec requires), `<tmp>/tapi-agent-<uid>`, then
    `<user cache dir>/run`. A candidate is used only if it is a real directory (not a symlink)
    owned by us with no group or other access; one made by someone else (a squatter in the
    shared /tmp), or left open, is passed over, never trusted or "fixed". `reserve` keeps room
    for a file name within the 104-byte limit of a Unix socket path. Windows: the per-user
    `%LOCALAPPDATA%` runtime directory (its ACL is the user's).
    """
    import platformdirs

    if sys.platform == "win32":
        path = Path(platformdirs.user_runtime_dir(APP_NAME, APP_AUTHOR))
        path.mkdir(parents=True, exist_ok=True)
        return path
    env = os.environ if environ is None else environ
    uid = os.getuid()
    candidates: list[Path] = []
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and _private_dir(Path(xdg), uid):
        candidates.append(Path(xdg) / APP_NAME)
    import tempfile

    candidates.append((temp_root or Path(tempfile.gettempdir())) / f"tapi-agent-{uid}")
    candidates.append(Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR)) / "run")
    refused: list[str] = []
    for path in candidates:
        if len(str(path)) + reserve > 104:
            refused.append(f"{path} (path too long for a socket)")
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            refused.append(f"{path} ({exc})")
            continue
        if _private_dir(path, uid):
            return path
        refused.append(f"{path} (not a directory of ours closed to other users)")
    raise OSError("no private runtime directory: " + "; ".join(refused))


def _private_dir(path: Path, uid: int) -> bool:
    """A real directory (no symlink) owned by `uid`, with no group or other permissions."""
    import stat

    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid and st.st_mode & 0o077 == 0
