"""Contact look-up by phone number: the API's search behind a small cache."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tapi_agent.core.directory import Contact
    from tapi_agent.net.api import ApiClient

log = logging.getLogger("tapi_agent.app")

MAX_CACHED_NUMBERS = 500
"""Numbers remembered before the cache starts again (a day's calls fit many times over)."""


class ContactCache:
    """Contacts found for each number; `find` asks the API, `remember` keeps the answer."""

    def __init__(self) -> None:
        self._by_number: dict[str, list[Contact]] = {}

    def cached(self, number: str) -> list[Contact] | None:
        """What a previous look-up found for this number (None: never looked up)."""
        return self._by_number.get(number)

    def remember(self, number: str, found: list[Contact]) -> None:
        """Keep a look-up's answer; the cache is emptied when it grows past its bound."""
        if len(self._by_number) > MAX_CACHED_NUMBERS:
            self._by_number.clear()
        self._by_number[number] = found

    @staticmethod
    async def find(api: ApiClient, number: str) -> list[Contact] | None:
        """Ask the API (in the worker); None when the look-up failed (logged)."""
        try:
            return await api.find_contacts(number)
        except Exception as exc:
            log.info("contact look-up failed: %s", exc)
            return None
