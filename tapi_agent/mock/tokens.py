"""RS256 JWTs for the mock's Reapit Connect: signing, verification and the JWKS document."""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class TokenError(Exception):
    """A bearer token that cannot be used; `expired` tells the stream to close with 4001."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        self.reason = reason
        self.expired = expired
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What the backend needs from a verified access token."""

    subject: str
    client_id: str
    negotiator_id: str | None
    scopes: frozenset[str]
    expires_at: float
    session_id: str | None


VERIFIED_MAX = 2048  # access tokens whose verification is remembered (oldest forgotten first)


@functools.cache
def _process_key() -> rsa.RSAPrivateKey:
    # Generating a 2048-bit key costs 0.1-0.3 s; tests start hundreds of servers. Servers still
    # reject each other's tokens: the issuer (their base URL) differs.
    return new_signing_key()


def new_signing_key() -> rsa.RSAPrivateKey:
    """A fresh RS256 signing key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TokenIssuer:
    """Holds one RSA key (kept across restarts) and mints/verifies tokens for one issuer URL."""

    def __init__(self, issuer: str = "http://127.0.0.1",
                 key: rsa.RSAPrivateKey | None = None) -> None:
        self.issuer = issuer
        # `key`: a signing key kept in `--state-dir`, so tokens outlive a restart.
        self._key = key if key is not None else _process_key()
        self.kid = "mock-" + hashlib.sha256(
            self._key.public_key().public_numbers().n.to_bytes(256, "big")
        ).hexdigest()[:12]
        # token -> (issuer it was verified for, claims). An RS256 verification costs a provider
        # ~0.1 ms on every POST; a token's signature and claims never change, only the clock
        # moves past `exp`, which is checked on every use. Revocation (sessions) is checked
        # by the caller on every use as well.
        self._verified: OrderedDict[str, tuple[str, AccessClaims]] = OrderedDict()

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set."""
        jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def access_token(
        self,
        *,
        client_id: str,
        scopes: list[str] | tuple[str, ...],
        ttl: int,
        negotiator_id: str | None = None,
        session_id: str | None = None,
        customer: str = "SBOX",
    ) -> str:
        """Sign an access token; negotiator tokens carry `custom:reapit:userCode`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": negotiator_id or client_id,
            "aud": client_id,
            "client_id": client_id,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_hex(8),
            "scope": " ".join(scopes),
            "token_use": "access",
            "custom:reapit:clientCode": customer,
        }
        if negotiator_id:
            claims["custom:reapit:userCode"] = negotiator_id
        if session_id:
            claims["sid"] = session_id
        return self._sign(claims)

    def id_token(
        self,
        *,
        client_id: str,
        negotiator: dict[str, Any],
        ttl: int,
        session_id: str,
        nonce: str | None = None,
        customer: str = "SBOX",
        auth_time: float | None = None,
    ) -> str:
        """Sign an OIDC ID token with the Reapit custom claims of the negotiator."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": negotiator["id"],
            "aud": client_id,
            "iat": now,
            "exp": now + ttl,
            "token_use": "id",
            "sid": session_id,
            "custom:reapit:userCode": negotiator["id"],
            "custom:reapit:clientCode": customer,
            "custom:reapit:officeId": negotiator.get("officeId", ""),
            "name": negotiator.get("name", ""),
            "email": negotiator.get("email", ""),
        }
        if nonce:
            claims["nonce"] = nonce
        if auth_time:
            claims["auth_time"] = int(auth_time)
        return self._sign(claims)

    def decode(self, token: str, *, use: str, verify_exp: bool = True) -> dict[str, Any]:
        """Verify signature, issuer and (optionally) expiry; return the claims or raise."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "verify_exp": verify_exp},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired", expired=True) from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        if claims.get("token_use") != use:
            raise TokenError(f"not an {use} token")
        return claims

    def verify_access(self, token: str) -> AccessClaims:
        """Verify an access token and return its claims; raise TokenError."""
        known = self._verified.get(token)
        if known is not None and known[0] == self.issuer:
            claims = known[1]
            if time.time() < claims.expires_at:  # as PyJWT: expired once `exp <= now`
                return claims
            del self._verified[token]
            raise TokenError("token expired", expired=True)
        claims = self._verify_access(token)
        self._verified[token] = (self.issuer, claims)
        while len(self._verified) > VERIFIED_MAX:
            self._verified.popitem(last=False)
        return claims

    def _verify_access(self, token: str) -> AccessClaims:
        c = self.decode(token, use="access")
        return AccessClaims(
            subject=str(c["sub"]),
            client_id=str(c.get("client_id", "")),
            negotiator_id=c.get("custom:reapit:userCode"),
            scopes=frozenset(str(c.get("scope", "")).split()),
            expires_at=float(c["exp"]),
            session_id=c.get("sid"),
        )
