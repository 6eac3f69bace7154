"""People the agent shows: matched contacts and colleague negotiators (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Contact:
    """A CRM contact matched by a caller's number; `id` opens `agencycloud://contacts/{id}`."""

    id: str
    name: str
    phones: tuple[str, ...] = field(default=())
    email: str = ""

    @property
    def record_url(self) -> str:
        return f"agencycloud://contacts/{self.id}"


@dataclass(frozen=True, slots=True)
class Negotiator:
    """A Reapit negotiator (a colleague, or the signed-in user)."""

    id: str
    name: str
    office_id: str = ""
    email: str = ""
    active: bool = True
