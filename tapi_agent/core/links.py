"""Links into AgencyCloud (its Desktop API, DESIGN.md section 2), made from setting templates.

`calls.record_link` (`agencycloud://contacts/{id}`), `calls.journal_link`
(`agencycloud://contacts/{id}/journal`) and `calls.search_link`
(`agencycloud://contacts?communication={number}`) are templates: whether Windows hands an
`agencycloud://` link to AgencyCloud from outside is not documented, so IT can point them
elsewhere (another scheme, a web CRM). `{id}` is the contact id and `{number}` the caller's
number, both percent-encoded. The number goes in as dialled digits with a leading `+` kept
(`07123 456789` -> `07123456789`, `+44 7123 456789` -> `%2B447123456789`): a CRM stores
numbers in many spacings, and a search by digits finds them where a spaced string may not.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

RECORD_LINK = "agencycloud://contacts/{id}"
JOURNAL_LINK = "agencycloud://contacts/{id}/journal"
SEARCH_LINK = "agencycloud://contacts?communication={number}"


def search_digits(number: str) -> str:
    """The caller's number as digits, a leading `+` kept; the text itself when it has none."""
    text = number.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return text
    return ("+" if text.startswith("+") else "") + digits


def fill(template: str, *, id: str = "", number: str = "") -> str:
    """`template` with `{id}` and `{number}` replaced by their percent-encoded values (no other
    brace is touched, so a template may hold any other text)."""
    return template.replace("{id}", quote(id, safe="")).replace(
        "{number}", quote(search_digits(number), safe=""))


@dataclass(frozen=True)
class Links:
    """The three link templates of the settings."""

    record: str = RECORD_LINK
    journal: str = JOURNAL_LINK
    search: str = SEARCH_LINK

    def record_url(self, contact_id: str) -> str:
        """Open the contact's record."""
        return fill(self.record, id=contact_id)

    def journal_url(self, contact_id: str) -> str:
        """Open the contact's journal."""
        return fill(self.journal, id=contact_id)

    def search_url(self, number: str) -> str:
        """Search contacts by the caller's number."""
        return fill(self.search, number=number)
