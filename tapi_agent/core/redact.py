"""One place that knows which text is a secret, so that nothing the agent writes for people
(logs, `tapi-agent diagnose`, the diagnostics zip, settings errors) carries one.

What counts as a secret:

- the user name and password of any URL (`https://user:pass@proxy:8080`): `network.proxy`
  is the setting meant to hold them, but any URL setting may be given one by mistake;
- tokens: `Bearer ...` / `Basic ...` credentials, JWT-shaped strings (`eyJ...`), and the
  values of OAuth parameters and JSON fields named like `access_token`, `refresh_token`,
  `id_token`, `code`, `code_verifier`, `client_secret`, `password`.

Pure logic, stdlib only (it lives in `core`), so `config`, `logs`, `net` and the diagnostics
export can all import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# scheme://userinfo@ : the userinfo is everything up to the last '@' before the host part.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^\s/?#@]*@)+")
_AUTH_HEADER = re.compile(r"\b(?P<kind>Bearer|Basic|Digest|Negotiate)\s+[A-Za-z0-9._~+/=-]+",
                          re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SECRET_NAMES = (r"access_token|refresh_token|id_token|code_verifier|client_secret|"
                 r"password|passwd|accessToken|refreshToken|idToken")
# key=value in a query or form body (`code` and `token` only right after ? or &, so that
# "close code=1000" in a log line stays readable); "key": "value" in JSON
_PARAM = re.compile(r"(?P<key>\b(?:" + _SECRET_NAMES + r")|(?<=[?&])(?:code|token))"
                    r"(?P<sep>=)[^&\s\"']+")
_JSON_FIELD = re.compile(r"(?P<key>\"(?:" + _SECRET_NAMES + r"|code|token)\"\s*:\s*)\"[^\"]*\"")

SECRET_SETTINGS = ("network.proxy",)
"""Settings whose value may hold a password by design (shown with the userinfo masked)."""


def redact_url(url: str) -> str:
    """`url` with any `user:password@` replaced by `***@` (the rest kept: it helps support)."""
    return _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", url)


def redact_text(text: str) -> str:
    """`text` with every secret this module knows masked: URL userinfo, authorization header
    credentials, JWTs, and token / code / password parameters and JSON fields."""
    text = redact_url(text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('kind')} {MASK}", text)
    text = _JWT.sub(MASK, text)
    text = _PARAM.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", text)
    return _JSON_FIELD.sub(lambda m: f"{m.group('key')}\"{MASK}\"", text)


def redact_value(value: Any) -> Any:
    """A setting's value fit to show: strings (and the strings in a table) redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {redact_text(str(k)): redact_value(v) for k, v in value.items()}
    return value


def redact_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting's value fit to show (diagnose, the diagnostics zip)."""
    return {key: redact_value(value) for key, value in values.items()}
