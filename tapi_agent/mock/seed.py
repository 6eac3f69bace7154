"""Demo data the mock backend serves: offices, negotiators, contacts, OAuth clients, demo calls.

`load_seed(path)` reads the same shape from a JSON file (`tapi-agent-mock serve --seed FILE`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOTIFY_SCOPE = "notifications.telephony.write"
READ_SCOPES = ("negotiators.read", "contacts.read")
PROVIDER_SCOPES = (NOTIFY_SCOPE, *READ_SCOPES)
AGENT_SCOPES = ("openid", "profile", "email", "offline_access", *READ_SCOPES)


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
     "homePhone": "01865 123456", "workPhone": None, "mobilePhone": "07123 456789",
     "email": "emma.thompson@example.org", "officeIds": ["OXF"]},
    {"id": "OXF20000002", "title": "Mr", "forename": "Daniel", "surname": "Okafor",
     "homePhone": None, "workPhone": "020 7946 0321", "mobilePhone": "07700 900555",
     "email": "d.okafor@example.org", "officeIds": ["OXF"]},
    {"id": "CAM20000003", "title": "Ms", "forename": "Sophie", "surname": "Martin",
     "homePhone": "01223 765432", "workPhone": None, "mobilePhone": "07911 123456",
     "email": "sophie.martin@example.org", "officeIds": ["CAM"]},
    # Two contacts share a landline: a caller may match more than one record.
    {"id": "CAM20000004", "title": "Mr", "forename": "Peter", "surname": "Martin",
     "homePhone": "01223 765432", "workPhone": None, "mobilePhone": None,
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


def default_seed() -> Seed:
    """A fresh copy of the built-in demo data."""
    return Seed(
        offices=[dict(o) for o in OFFICES],
        negotiators=[dict(n) for n in NEGOTIATORS],
        contacts=[dict(c) for c in CONTACTS],
        clients=list(CLIENTS),
    )


def load_seed(path: Path) -> Seed:
    """Read seed data from a JSON file; keys missing from the file keep the built-in data.

    Shape: `{"offices": [...], "negotiators": [...], "contacts": [...],
    "clients": [{"id", "secret", "scopes"}]}`.
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
    if "clients" in data:
        seed.clients = [
            Client(c["id"], c.get("secret"), tuple(c.get("scopes", PROVIDER_SCOPES)))
            for c in data["clients"]
        ]
    return seed
