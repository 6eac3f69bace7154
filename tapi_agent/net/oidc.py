"""OpenID Connect plumbing for the sign-in: provider metadata (discovery) and ID token checks.

Discovery (OpenID Connect Discovery 1.0): `{issuer}/.well-known/openid-configuration` names the
endpoints; explicit `auth.*_url` settings override it, or replace it for a provider that
publishes none. Reapit Connect's issuer (`https://cognito-idp.eu-west-2.amazonaws.com/{poolId}`)
has a path and lives on another host than its endpoints (`https://connect.reapit.cloud/...`).

ID tokens are verified with PyJWT (+ `cryptography`): it is already what the mock signs with,
it is small, maintained, and has no network code of its own in the path we use (we fetch the
JWKS with the agent's own HTTP client, so proxies and the OS trust store apply). The checks are
OIDC Core 3.1.3.7: an asymmetric `alg` (never `none`, never a MAC with a public client), the
signature against the provider's JWKS (`kid`; an unknown `kid` refetches the keys once),
`iss` equal to the issuer, `aud` containing our client id (and `azp` equal to it when there are
several audiences), `exp` and `iat` with a small leeway, and `nonce` equal to the one sent.
Each failure names the check that failed.
The agent runs these checks in a short-lived child process (`id_token_child`: memory and
isolation, see there), so only that child imports PyJWT and cryptography; this module itself
imports neither at load time.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tapi_agent.net.session import secrets_may_go_to

# Asymmetric algorithms only: a public client has no secret, so an HMAC "signature" proves
# nothing, and `none` is no signature at all.
SAFE_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                   "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_S = 120  # clock skew allowed on exp / iat (a negotiator's PC clock may drift)
_MAX_DOCUMENT = 512 * 1024  # a discovery document or JWKS larger than this is refused


class AuthError(Exception):
    """Sign-in or token refresh failed; the message is meant for the user."""


class AuthUnavailable(AuthError):
    """The provider could not be reached (network, 5xx): try again later, keep the session."""


class InvalidGrant(AuthError):
    """The provider refused a code or refresh token (`invalid_grant`): the session is over."""


class IdTokenError(AuthError):
    """The ID token failed a check; `check` names it (signature, iss, aud, exp, nonce, ...)."""

    def __init__(self, check: str, detail: str) -> None:
        self.check = check
        self.detail = detail
        super().__init__(
            f"The sign-in was refused: the ID token failed the {check} check ({detail}). "
            "Nothing was saved; if this keeps happening, ask IT to check auth.issuer and "
            "auth.client_id")


@dataclass(frozen=True)
class Endpoints:
    """Explicit endpoint settings (`auth.authorize_url`, ...); empty strings mean 'discover'."""

    authorize: str = ""
    token: str = ""
    userinfo: str = ""
    end_session: str = ""
    jwks: str = ""

    @property
    def complete(self) -> bool:
        """True when discovery is not needed at all (authorize, token and keys are given)."""
        return bool(self.authorize and self.token and self.jwks)


@dataclass(frozen=True)
class ProviderMetadata:
    """What the agent uses of a provider's metadata, after the explicit settings are applied."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""
    end_session_endpoint: str = ""
    revocation_endpoint: str = ""
    scopes_supported: tuple[str, ...] = ()
    prompt_values_supported: tuple[str, ...] = ()
    iss_parameter_supported: bool = False
    id_token_algs: tuple[str, ...] = ("RS256",)
    discovered: bool = field(default=False, compare=False)


def discovery_url(issuer: str) -> str:
    """`{issuer}/.well-known/openid-configuration` (an issuer path is kept, as the spec says)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def same_issuer(a: str, b: str) -> bool:
    """Issuer identifiers compared exactly, but for one trailing slash (Reapit's own sample
    lists `https://connect.reapit.cloud/` with it, its configuration pages without)."""
    return a.rstrip("/") == b.rstrip("/")


def require_secure(url: str, what: str, setting: str) -> None:
    """Refuse to send a secret in clear text: https, or http to this PC only."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise AuthError(f"{what}: {url!r} is not a valid URL (setting {setting})") from None
    if parts.username or parts.password:
        raise AuthError(f"{what}: the URL must not carry a user name or password "
                        f"(setting {setting})")
    if parts.scheme in ("https", "http") and secrets_may_go_to(parts.scheme, host):
        return
    raise AuthError(
        f"{what}: refusing to send sign-in secrets to {parts.scheme}://{host or ''} in clear "
        f"text; use an https:// address (setting {setting}). Plain http:// is allowed for "
        "127.0.0.1 / localhost only")


def parse_json_document(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object from a provider document, or AuthError naming the document."""
    if len(body) > _MAX_DOCUMENT:
        raise AuthError(f"The {what} is too large ({len(body)} bytes)")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise AuthError(f"The {what} is not valid JSON") from None
    if not isinstance(data, dict):
        raise AuthError(f"The {what} is not a JSON object")
    return data


def metadata_from(issuer: str, document: dict[str, Any] | None, explicit: Endpoints
                  ) -> ProviderMetadata:
    """Merge a discovery document (or none) with the explicit endpoint settings."""
    doc = document or {}
    if document is not None:
        published = doc.get("issuer")
        # OIDC Discovery 4.3: the document must name the issuer it was fetched for.
        if not isinstance(published, str) or not same_issuer(published, issuer):
            raise AuthError(
                f"The provider's discovery document names the issuer {published!r}, not "
                f"{issuer!r}: check the setting auth.issuer")
        issuer = published

    def pick(explicit_value: str, key: str, fallback: str = "") -> str:
        if explicit_value:
            return explicit_value
        value = doc.get(key)
        return value if isinstance(value, str) and value else fallback

    def strings(key: str) -> tuple[str, ...]:
        value = doc.get(key)
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

    base = issuer.rstrip("/")
    authorize = pick(explicit.authorize, "authorization_endpoint")
    token = pick(explicit.token, "token_endpoint")
    # Reapit documents the keys at `{issuer}/.well-known/jwks.json`; so does Cognito.
    jwks = pick(explicit.jwks, "jwks_uri", base + "/.well-known/jwks.json")
    missing = [name for name, value in (("auth.authorize_url", authorize),
                                        ("auth.token_url", token)) if not value]
    if missing:
        raise AuthError(
            f"The provider at {issuer} publishes no "
            f"{' and no '.join(m.split('.')[1].replace('_url', ' endpoint') for m in missing)}: "
            f"set {' and '.join(missing)}")
    algs = strings("id_token_signing_alg_values_supported")
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=authorize,
        token_endpoint=token,
        jwks_uri=jwks,
        userinfo_endpoint=pick(explicit.userinfo, "userinfo_endpoint"),
        end_session_endpoint=pick(explicit.end_session, "end_session_endpoint"),
        revocation_endpoint=pick("", "revocation_endpoint"),
        scopes_supported=strings("scopes_supported"),
        prompt_values_supported=strings("prompt_values_supported"),
        iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        id_token_algs=tuple(a for a in algs if a in SAFE_ALGORITHMS) or ("RS256",),
        discovered=document is not None,
    )


def token_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, or IdTokenError('format')."""
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise IdTokenError("format", f"not a signed JWT: {exc}") from None
    return header


def verify_id_token(
    token: str,
    *,
    keys: dict[str, Any],
    metadata: ProviderMetadata,
    client_id: str,
    nonce: str | None,
    now: float | None = None,
    leeway: float = LEEWAY_S,
) -> dict[str, Any]:
    """The claims of a verified ID token; IdTokenError naming the first check that failed.

    `keys` is the provider's JWKS; the caller refetches it once for an unknown `kid`
    (`has_key`). `nonce` None skips the nonce check (refresh responses carry none).
    This imports PyJWT + cryptography: the agent runs it in a child process
    (`id_token_child`), never in its own.
    """
    import jwt

    header = token_header(token)
    alg = header.get("alg")
    if alg not in SAFE_ALGORITHMS:
        raise IdTokenError("signature algorithm", f"alg {alg!r} is not accepted; the token "
                           "must be signed with one of the provider's public keys")
    if alg not in metadata.id_token_algs:
        raise IdTokenError("signature algorithm",
                           f"alg {alg!r} is not one the provider says it uses "
                           f"({', '.join(metadata.id_token_algs)})")
    key = find_key(keys, header.get("kid"), alg)
    if key is None:
        raise IdTokenError("signing key", f"no key with kid {header.get('kid')!r} in the "
                           "provider's JWKS")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=client_id,
            issuer=_issuer_forms(metadata.issuer),
            leeway=leeway,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.InvalidSignatureError:
        raise IdTokenError("signature", "the signature does not match the provider's key"
                           ) from None
    except jwt.ExpiredSignatureError:
        raise IdTokenError("exp", "the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise IdTokenError("iat", "the token was issued in the future") from None
    except jwt.InvalidAudienceError:
        raise IdTokenError("aud", f"the token was not issued for client {client_id!r}"
                           ) from None
    except jwt.InvalidIssuerError:
        iss = _unverified(token).get("iss")
        raise IdTokenError("iss", f"issued by {iss!r}, expected {metadata.issuer!r}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise IdTokenError(exc.claim, f"the token has no {exc.claim!r} claim") from None
    except jwt.InvalidIssuedAtError:
        raise IdTokenError("iat", "the 'iat' claim is not a time") from None
    except jwt.PyJWTError as exc:
        raise IdTokenError("format", str(exc)) from None
    current = time.time() if now is None else now
    iat = claims.get("iat")
    if isinstance(iat, int | float) and iat > current + leeway:
        raise IdTokenError("iat", "the token was issued in the future")
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise IdTokenError("azp", f"several audiences and azp is {claims.get('azp')!r}")
    if nonce is not None and claims.get("nonce") != nonce:
        raise IdTokenError("nonce", "the token was not issued for this sign-in")
    return claims


def _issuer_forms(issuer: str) -> tuple[str, str]:
    """The issuer with and without one trailing slash (see `same_issuer`)."""
    bare = issuer.rstrip("/")
    return bare, bare + "/"


def _unverified(token: str) -> dict[str, Any]:
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims


def find_key(keys: dict[str, Any], kid: Any, alg: str) -> Any | None:
    """The signing key for `kid` (or the only signing key when the token names none)."""
    import jwt

    candidates = []
    for data in keys.get("keys", []) if isinstance(keys.get("keys"), list) else []:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        if kid is not None and data.get("kid") != kid:
            continue
        try:
            candidates.append(jwt.PyJWK(data, algorithm=data.get("alg") or alg))
        except jwt.PyJWTError:
            continue  # a key of a type we cannot use (or malformed): not a candidate
    if kid is None and len(candidates) != 1:
        return None
    return candidates[0] if candidates else None


def unverified_kid(token: str) -> Any:
    """The `kid` of a compact JWS's header, read without PyJWT (None when there is none or the
    header cannot be read): the agent only needs it to know whether to refetch the JWKS; the
    header is checked for real in the child (`verify_id_token`)."""
    segment = token.split(".", 1)[0]
    if len(segment) > 8192:
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError included
        return None
    return header.get("kid") if isinstance(header, dict) else None


def has_key(keys: dict[str, Any], kid: Any) -> bool:
    """True when the JWKS has a key with this `kid` (an unknown one triggers a refetch)."""
    listed = keys.get("keys") if isinstance(keys.get("keys"), list) else []
    return any(isinstance(k, dict) and k.get("kid") == kid for k in listed or [])
