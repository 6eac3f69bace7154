"""Demo data the mock backend serves: offices, negotiators, contacts, OAuth clients, demo calls.

`load_seed(path)` reads the same shape from a JSON file (`tapi-agent-mock serve --seed FILE`).
Negotiators and contacts are served shaped as Reapit's `NegotiatorModel` and `ContactModel`
(`as_resource`): `_links.self`, `_eTag` (a hash of the content, so it changes when the resource
does), `created` and `modified`, and optional fields without a value left out, not `null`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

NOTIFY_SCOPE = "notifications.telephony.write"
READ_SCOPES = ("negotiators.read", "contacts.read")
JOURNAL_SCOPES = ("journalEntries.read", "journalEntries.write")
PROVIDER_SCOPES = (NOTIFY_SCOPE, *READ_SCOPES, *JOURNAL_SCOPES)
AGENT_SCOPES = ("openid", "profile", "email", "offline_access", *READ_SCOPES, *JOURNAL_SCOPES)


@dataclass(frozen=True, slots=True)
class DemoCall:
    """A call the demo plays: who rings which line (`line` is the friendly name shown)."""

    caller: str
    destination: str
    line: str


@dataclass(frozen=True, slots=True)
class Client:
    """An OAuth client: public (`secret` None, PKCE) or confidential (client_credentials)."""

    id: str
    secret: str | None
    scopes: tuple[str, ...]
    customer: str = "SBOX"


@dataclass
class Seed:
    """Everything the backend knows before the first request."""

    customer: str = "SBOX"
    offices: list[dict[str, Any]] = field(default_factory=list)
    negotiators: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    def negotiator(self, negotiator_id: str) -> dict[str, Any] | None:
        """The negotiator with this id (case-sensitive, as the Platform API), or None."""
        return next((n for n in self.negotiators if n["id"] == negotiator_id), None)

    def client(self, client_id: str) -> Client | None:
        """The OAuth client with this id, or None."""
        return next((c for c in self.clients if c.id == client_id), None)


OFFICES: list[dict[str, Any]] = [
    {"id": "OXF", "name": "Oxford Sales & Lettings", "workPhone": "01865 000100"},
    {"id": "CAM", "name": "Cambridge Lettings", "workPhone": "01223 000200"},
]

NEGOTIATORS: list[dict[str, Any]] = [
    {"id": "JAS", "name": "James Smith", "jobTitle": "Sales Negotiator", "officeId": "OXF",
     "workPhone": "01865 000101", "mobilePhone": "07700 900101",
     "email": "james.smith@example.com", "active": True},
    {"id": "RPT", "name": "Rachel Patel", "jobTitle": "Senior Negotiator", "officeId": "OXF",
     "workPhone": "01865 000102", "mobilePhone": "07700 900102",
     "email": "rachel.patel@example.com", "active": True},
    {"id": "TST", "name": "Tom Stevens", "jobTitle": "Sales Manager", "officeId": "OXF",
     "workPhone": "01865 000103", "mobilePhone": "07700 900103",
     "email": "tom.stevens@example.com", "active": True},
    {"id": "LKM", "name": "Laura King", "jobTitle": "Lettings Negotiator", "officeId": "CAM",
     "workPhone": "01223 000201", "mobilePhone": "07700 900201",
     "email": "laura.king@example.com", "active": True},
    {"id": "DWH", "name": "David White", "jobTitle": "Lettings Manager", "officeId": "CAM",
     "workPhone": "01223 000202", "mobilePhone": "07700 900202",
     "email": "david.white@example.com", "active": True},
    {"id": "OLD", "name": "Oliver Dean", "jobTitle": "Former Negotiator", "officeId": "CAM",
     "workPhone": "01223 000299", "mobilePhone": "07700 900299",
     "email": "oliver.dean@example.com", "active": False},
]

CONTACTS: list[dict[str, Any]] = [
    {"id": "OXF20000001", "title": "Mrs", "forename": "Emma", "surname": "Thompson",
     "homePhone": "01865 123456", "mobilePhone": "07123 456789",
     "email": "emma.thompson@example.org", "officeIds": ["OXF"]},
    {"id": "OXF20000002", "title": "Mr", "forename": "Daniel", "surname": "Okafor",
     "workPhone": "020 7946 0321", "mobilePhone": "07700 900555",
     "email": "d.okafor@example.org", "officeIds": ["OXF"]},
    {"id": "CAM20000003", "title": "Ms", "forename": "Sophie", "surname": "Martin",
     "homePhone": "01223 765432", "mobilePhone": "07911 123456",
     "email": "sophie.martin@example.org", "officeIds": ["CAM"]},
    # Two contacts share a landline: a caller may match more than one record.
    {"id": "CAM20000004", "title": "Mr", "forename": "Peter", "surname": "Martin",
     "homePhone": "01223 765432",
     "email": "peter.martin@example.org", "officeIds": ["CAM"]},
]

CLIENTS: list[Client] = [
    Client("demo-provider", "demo-secret", PROVIDER_SCOPES),
    Client("tapi-agent", None, AGENT_SCOPES),
]

DEMO_CALLS: list[DemoCall] = [
    DemoCall("07123 456789", "01865 000100", "Sales line"),
    DemoCall("020 7946 0321", "01865 000100", "Sales line"),
    DemoCall("07911 123456", "01223 000200", "Lettings line"),
    DemoCall("01632 960123", "01865 000100", "Sales line"),  # an unknown caller (no contact)
]
"""Calls the demo plays; the first three callers match seeded contacts."""

LINE_NAMES: dict[str, str] = {c.destination: c.line for c in DEMO_CALLS}
"""Friendly names of the demo destination numbers (dialled lines)."""


DEMO_CREATED = "2024-01-15T09:00:00Z"
"""When the built-in demo records were "created" (a fixed time, so their shape is stable)."""
META_KEYS = ("_links", "_eTag", "_embedded", "created", "modified")


def content_of(item: dict[str, Any]) -> dict[str, Any]:
    """A record's own fields: no metadata, and no field whose value is null."""
    return {k: v for k, v in item.items() if k not in META_KEYS and v is not None}


def etag_of(item: dict[str, Any]) -> str:
    """The `_eTag` of a record: a quoted hash of its content, as Reapit sends it (quotes too)."""
    canonical = json.dumps(content_of(item), sort_keys=True, separators=(",", ":"))
    return '"' + hashlib.md5(canonical.encode("utf-8"), usedforsecurity=False).hexdigest(
    ).upper() + '"'


def as_resource(collection: str, item: dict[str, Any], created: str, modified: str
                ) -> dict[str, Any]:
    """A record as the Platform API serves it: `_links.self`, `_eTag`, `created`, `modified`."""
    body = content_of(item)
    return {
        "_links": {"self": {"href": f"/{collection}/" + quote(str(body.get("id", "")), safe="")}},
        "id": body.get("id"),
        "created": created,
        "modified": modified,
        **{k: v for k, v in body.items() if k != "id"},
        "_eTag": etag_of(item),
    }


def default_seed() -> Seed:
    """A fresh copy of the built-in demo data."""
    return Seed(
        offices=[dict(o) for o in OFFICES],
        negotiators=[{**n, "created": DEMO_CREATED} for n in NEGOTIATORS],
        contacts=[{**c, "created": DEMO_CREATED} for c in CONTACTS],
        clients=list(CLIENTS),
    )


def load_seed(path: Path) -> Seed:
    """Read seed data from a JSON file; keys missing from the file keep the built-in data.

    Shape: `{"offices": [...], "negotiators": [...], "contacts": [...],
    "clients": [{"id", "secret", "scopes"}]}`; records use Reapit's field names, `id` required
    (the README's "Your own data" has an example).
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: seed file must hold a JSON object")
    seed = default_seed()
    if "offices" in data:
        seed.offices = list(data["offices"])
    if "negotiators" in data:
        seed.negotiators = [{"active": True, **n} for n in data["negotiators"]]
        for n in seed.negotiators:
            if not isinstance(n.get("id"), str):
                raise ValueError(f"{path}: every negotiator needs a string 'id'")
    if "contacts" in data:
        seed.contacts = list(data["contacts"])
        for c in seed.contacts:
            if not isinstance(c, dict) or not isinstance(c.get("id"), str):
                raise ValueError(f"{path}: every contact needs a string 'id'")
    if "clients" in data:
        seed.clients = [
            Client(c["id"], c.get("secret"), tuple(c.get("scopes", PROVIDER_SCOPES)))
            for c in data["clients"]
        ]
    return seed
