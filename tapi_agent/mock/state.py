"""All the mock backend's state, in one object owned by its app (no module globals)."""

from __future__ import annotations

import contextlib
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from tapi_agent.mock.hub import Hub, utc_iso
from tapi_agent.mock.seed import Client, Seed, as_resource, default_seed, etag_of
from tapi_agent.mock.store import Store
from tapi_agent.mock.tokens import AccessClaims, TokenError, TokenIssuer, new_signing_key
from tapi_agent.protocol import Envelope, ValidationFailed, validate_envelope

JOURNAL_MAX = 10_000


@dataclass
class Deferred:
    """A missed call waiting for its negotiator to poll and delete it."""

    id: str
    created: datetime
    envelope: Envelope

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "created": utc_iso(self.created),
                "notification": self.envelope.to_wire()}


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One stored entry; `as_dict` is Reapit's `JournalEntryModel`."""

    id: str
    created: datetime
    description: str
    type_id: str
    associated_type: str | None = None
    associated_id: str | None = None
    property_id: str | None = None
    negotiator_id: str | None = None

    @property
    def href(self) -> str:
        return "/journalEntries/" + quote(self.id, safe="")

    def as_dict(self) -> dict[str, Any]:
        """The entry as the Platform API shows it: absent optional fields are left out."""
        data: dict[str, Any] = {
            "_links": {"self": {"href": self.href}},
            "created": utc_iso(self.created),
            "propertyId": self.property_id,
            "associatedType": self.associated_type,
            "associatedId": self.associated_id,
            "typeId": self.type_id,
            "negotiatorId": self.negotiator_id,
            "description": self.description,
        }
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class AuthCode:
    """An authorization code: single use, 10 minutes, bound to its PKCE challenge and redirect."""

    code: str
    client_id: str
    negotiator_id: str
    redirect_uri: str
    challenge: str
    scopes: tuple[str, ...]
    nonce: str | None
    expires_at: float
    used: bool = False
    session_id: str | None = None  # the session its exchange created (revoked on reuse)
    auth_time: float = 0.0  # when the user signed in at the sign-in page (OIDC auth_time)


@dataclass
class Session:
    """A signed-in session: its current refresh token; every older one is a reuse."""

    id: str
    client_id: str
    negotiator_id: str
    scopes: tuple[str, ...]
    refresh_token: str | None
    used_refresh: set[str] = field(default_factory=set)
    revoked: bool = False
    auth_time: float = 0.0


@dataclass
class Accepted:
    """The result of accepting a notification: its id and recipients."""

    id: str
    recipients: list[str]
    deferred: bool


class MockState:
    """Seed data, tokens, sessions, deferred calls, the journal and the stream hub."""

    def __init__(
        self,
        *,
        seed: Seed | None = None,
        heartbeat_ms: int = 15000,
        token_ttl: int = 3600,
        retention_s: float = 300,
        retention_max: int = 1000,
        auto_approve: str | None = None,
        store: Store | None = None,
    ) -> None:
        self.seed = seed or default_seed()
        self.token_ttl = token_ttl
        self.auto_approve = auto_approve
        self.store = store  # `--state-dir`; None keeps everything in memory
        self.issuer = TokenIssuer(key=store.signing_key(new_signing_key()) if store else None)
        self.journal: deque[dict[str, Any]] = deque(maxlen=JOURNAL_MAX)
        self.hub = Hub(
            heartbeat_ms=heartbeat_ms, retention_s=retention_s, retention_max=retention_max,
            journal=self.journal.append,
        )
        self.deferred: dict[str, list[Deferred]] = {}
        self.codes: dict[str, AuthCode] = {}
        self.sessions: dict[str, Session] = {}
        self.refresh_index: dict[str, str] = {}  # every refresh token ever issued -> session id
        self.code_ttl_s: float = 600  # authorization codes live 10 minutes
        self.issuer_path = ""  # set by MockServer (--issuer-path)
        # Reapit Connect's own sign-in session in the browser (a cookie): sid ->
        # (negotiator id, auth_time). It lets `prompt=none` and single sign-on work.
        self.browser_sessions: dict[str, tuple[str, float]] = {}
        self.forbidden: set[str] = set()  # negotiators refused on the stream (4003)
        self.journal_entries: list[JournalEntry] = []  # POST /journalEntries, oldest first
        # (collection, id) -> (eTag, first seen, last changed): `created`/`modified` of records
        # whose seed gives none.
        self._resource_meta: dict[tuple[str, str], tuple[str, str, str]] = {}
        if store is not None:
            self._load(store)
        for collection, items in (("negotiators", self.seed.negotiators),
                                  ("contacts", self.seed.contacts)):
            for item in items:
                self.resource(collection, item)

    def _load(self, store: Store) -> None:
        """Carry on from what `store` kept (and keep from now on)."""
        # Clients: the seed's win; a client only an earlier run knew is kept, so its
        # sessions can still refresh.
        known = {c.id for c in self.seed.clients}
        self.seed.clients += [Client(cid, secret, scopes)
                              for cid, secret, scopes in store.clients() if cid not in known]
        store.save_clients([(c.id, c.secret, c.scopes) for c in self.seed.clients])
        self.hub.attach(store)
        for deferred_id, negotiator_id, created, data in store.deferred():
            with contextlib.suppress(ValidationFailed, ValueError):
                self.deferred.setdefault(negotiator_id, []).append(Deferred(
                    deferred_id, datetime.fromisoformat(created.replace("Z", "+00:00")),
                    validate_envelope(data, strict=False)))
        for row in store.sessions():
            self.sessions[row["id"]] = Session(**row)
        for token, session_id, used in store.refresh_tokens():
            self.refresh_index[token] = session_id
            if used and session_id in self.sessions:
                self.sessions[session_id].used_refresh.add(token)
        for data in store.journal_entries():
            self.journal_entries.append(JournalEntry(
                **{**data, "created": datetime.fromisoformat(data["created"])}))
        self._resource_meta.update(store.resources())

    def save_session(self, session: Session) -> None:
        """Keep a session as it now is (new, refreshed or revoked); call before answering."""
        if self.store is not None:
            self.store.save_session(session, session.used_refresh)

    # -- tokens ---------------------------------------------------------------------------------

    def mint_token(
        self,
        negotiator_id: str,
        *,
        scopes: list[str] | None = None,
        ttl: int | None = None,
        session_id: str | None = None,
        client_id: str = "tapi-agent",
    ) -> str:
        """An access token for a negotiator (with the read and journal scopes unless `scopes`
        is given)."""
        from tapi_agent.mock.seed import JOURNAL_SCOPES, READ_SCOPES

        return self.issuer.access_token(
            client_id=client_id,
            scopes=[*READ_SCOPES, *JOURNAL_SCOPES] if scopes is None else scopes,
            ttl=self.token_ttl if ttl is None else ttl,
            negotiator_id=negotiator_id,
            session_id=session_id,
            customer=self.seed.customer,
        )

    def provider_token(self, client_id: str = "demo-provider", ttl: int | None = None) -> str:
        """A client_credentials token for a provider client, with that client's scopes."""
        client = self.seed.client(client_id)
        scopes = list(client.scopes) if client else []
        return self.issuer.access_token(
            client_id=client_id, scopes=scopes, ttl=self.token_ttl if ttl is None else ttl,
            customer=self.seed.customer,
        )

    def verify(self, token: str) -> AccessClaims:
        """Verify an access token, refusing ones whose session was revoked."""
        claims = self.issuer.verify_access(token)
        if claims.session_id is not None:
            session = self.sessions.get(claims.session_id)
            if session is not None and session.revoked:
                raise TokenError("session revoked")
        return claims

    # -- directory ------------------------------------------------------------------------------

    def resource(self, collection: str, item: dict[str, Any]) -> dict[str, Any]:
        """A seed record as the Platform API serves it (`seed.as_resource`).

        A record whose seed gives no `created`/`modified` was created when the mock first saw
        it and modified when its content (so its `_eTag`) last changed.
        """
        key = (collection, str(item.get("id")))
        etag = etag_of(item)
        meta = self._resource_meta.get(key)
        if meta is None or meta[0] != etag:
            now = utc_iso(datetime.now(UTC))
            meta = (etag, meta[1] if meta else now, now)
            self._resource_meta[key] = meta
            if self.store is not None:
                self.store.save_resource(collection, key[1], meta)
        _, first_seen, changed = meta
        created = str(item.get("created") or first_seen)
        modified = changed if changed != first_seen else created
        return as_resource(collection, item, created, modified)

    # -- journal entries ------------------------------------------------------------------------

    def add_journal_entry(self, entry: JournalEntry) -> None:
        """Keep a validated journal entry (`GET /journalEntries` lists them)."""
        if self.store is not None:
            self.store.add_journal_entry(entry.id, {
                "id": entry.id, "created": entry.created.isoformat(),
                "description": entry.description, "type_id": entry.type_id,
                "associated_type": entry.associated_type, "associated_id": entry.associated_id,
                "property_id": entry.property_id, "negotiator_id": entry.negotiator_id})
        self.journal_entries.append(entry)

    # -- deferred -------------------------------------------------------------------------------

    def delete_deferred(self, negotiator_id: str, deferred_id: str) -> bool:
        """Delete a negotiator's deferred notification; False when there is no such item."""
        items = self.deferred.get(negotiator_id, [])
        for i, item in enumerate(items):
            if item.id == deferred_id:
                if self.store is not None:
                    self.store.delete_deferred(deferred_id)
                del items[i]
                return True
        return False

    # -- notifications --------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        """Add an entry to the journal (with a timestamp)."""
        self.journal.append({"ts": utc_iso(datetime.now(UTC)), **entry})

    def accept(self, envelope: Envelope, request_id: str = "") -> Accepted:
        """Fan a validated notification out (or store it as deferred for `missedCall`)."""
        accepted_at = datetime.now(UTC)
        notification_id = secrets.token_hex(8)
        recipients = list(dict.fromkeys(envelope.targets.negotiatorId))
        deferred = envelope.subType == "missedCall"
        if self.store is None:
            for negotiator_id in recipients:
                if deferred:
                    self.deferred.setdefault(negotiator_id, []).append(
                        Deferred(secrets.token_hex(8), accepted_at, envelope)
                    )
                else:
                    self.hub.deliver(negotiator_id, envelope, notification_id, accepted_at)
        else:
            self._accept_kept(envelope, recipients, notification_id, accepted_at, deferred)
        self.record({
            "kind": "notification", "notificationId": notification_id,
            "requestId": request_id, "subType": envelope.subType,
            "callId": envelope.payload.id, "recipients": recipients, "deferred": deferred,
        })
        return Accepted(notification_id, recipients, deferred)

    def _accept_kept(self, envelope: Envelope, recipients: list[str], notification_id: str,
                     accepted_at: datetime, deferred: bool) -> None:
        # One commit for every recipient, before any frame goes out and before the 202.
        assert self.store is not None
        pushes = []
        with self.store.transaction():
            for negotiator_id in recipients:
                if deferred:
                    item = Deferred(secrets.token_hex(8), accepted_at, envelope)
                    self.store.add_deferred(item.id, negotiator_id, utc_iso(accepted_at),
                                            envelope.to_wire())
                    self.deferred.setdefault(negotiator_id, []).append(item)
                else:
                    pushes.append((negotiator_id, self.hub.retain(
                        negotiator_id, envelope, notification_id, accepted_at)))
        for negotiator_id, delivery in pushes:
            self.hub.push(negotiator_id, delivery)
