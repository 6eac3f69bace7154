"""HTTP client of the Platform API the agent uses: contacts, negotiators, journal entries, deferred
(missed) calls.

Every request carries the session's bearer token; a 401 refreshes the token once and retries.
Contacts, negotiators and journal entries go to the Platform API (`platform.url`, the server
by default) with the `api-version` header Reapit's Platform API expects; deferred calls go to the
notifications backend. A bearer token only travels over https, or plain http to this PC.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from tapi_agent.core.directory import Contact, Negotiator
from tapi_agent.core.missed import DeferredCall
from tapi_agent.net.http import HttpClient, HttpError, Response, make_http_client
from tapi_agent.net.session import TokenSource, secrets_may_go_to
from tapi_agent.protocol.wire import ValidationFailed, read_envelope

_log = logging.getLogger(__name__)

API_VERSION = "2020-01-31"  # Reapit's documented Platform API version (api-version header)
PAGE_SIZE = 100  # the Platform API's largest page
Params = list[tuple[str, Any]]
MAX_PAGES = 100  # a guard against a backend whose `next` link never ends


class ApiError(Exception):
    """The backend answered with an error; `status` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, description: str) -> None:
        self.status = status
        self.description = description
        super().__init__(f"{description} (HTTP {status})" if status else description)


class ApiClient:
    """Contacts, negotiators and deferred calls for the signed-in negotiator."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        http: HttpClient | None = None,
        proxy: str = "system",
        platform_url: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.platform_url = (platform_url or base_url).rstrip("/")
        self._tokens = tokens
        self._own_http = http is None
        self._http = http if http is not None else make_http_client(proxy)

    async def aclose(self) -> None:
        """Close the HTTP client if this ApiClient made it."""
        if self._own_http:
            await self._http.aclose()

    # -- requests -------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, params: Params | None = None,
        json: dict[str, Any] | None = None,
    ) -> Response:
        platform = not path.startswith("/notifications")
        url = (self.platform_url if platform else self.base_url) + path
        _require_secure(url, method, path)
        headers = {"Accept": "application/json"}
        if platform:
            headers["api-version"] = API_VERSION
        token = await self._tokens.access_token()
        response = await self._send(method, url, path, params, token, headers, json)
        if response.status_code == 401:
            # The token may have been revoked or expired early: one refresh, one retry.
            token = await self._tokens.refresh()
            response = await self._send(method, url, path, params, token, headers, json)
        return response

    async def _send(
        self, method: str, url: str, path: str, params: Params | None, token: str,
        headers: dict[str, str], json: dict[str, Any] | None = None,
    ) -> Response:
        try:
            return await self._http.request(
                method, url, params=params, json=json,
                headers={**headers, "Authorization": f"Bearer {token}"},
            )
        except HttpError as exc:
            raise ApiError(0, f"{method} {path} failed: {exc or type(exc).__name__}") from None

    async def _json(
        self, path: str, params: Params | None = None
    ) -> dict[str, Any]:
        response = await self._request("GET", path, params)
        _raise_for(response)
        try:
            data = response.json()
        except ValueError:
            raise ApiError(response.status_code, f"GET {path}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(response.status_code, f"GET {path}: expected a JSON object")
        return data

    async def _pages(
        self, path: str, params: Params
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        number = 1
        while number <= MAX_PAGES:
            data = await self._json(
                path, [*params, ("pageNumber", number), ("pageSize", PAGE_SIZE)])
            embedded = data.get("_embedded") or []
            items.extend(i for i in embedded if isinstance(i, dict))
            total_pages = data.get("totalPageCount")
            if not embedded or not isinstance(total_pages, int) or number >= total_pages:
                break
            number += 1
        return items

    # -- the API --------------------------------------------------------------------------------

    async def find_contacts(self, number: str) -> list[Contact]:
        """Contacts whose phone numbers (or email) match `number`."""
        items = await self._pages("/contacts", [("contactDetail", number)])
        return [c for c in (_contact(i) for i in items) if c is not None]

    async def negotiators(self) -> dict[str, Negotiator]:
        """All negotiators by id, every page (the caller caches them)."""
        items = await self._pages("/negotiators", [])
        out: dict[str, Negotiator] = {}
        for item in items:
            nid = item.get("id")
            if not isinstance(nid, str) or not nid:
                continue
            out[nid] = Negotiator(
                id=nid,
                name=str(item.get("name") or nid),
                office_id=str(item.get("officeId") or ""),
                email=str(item.get("email") or ""),
                active=bool(item.get("active", True)),
            )
        return out

    async def deferred(self) -> list[DeferredCall]:
        """Missed calls waiting for this negotiator (`GET /notifications/deferred`)."""
        data = await self._json("/notifications/deferred")
        out: list[DeferredCall] = []
        for item in data.get("_embedded") or []:
            call = _deferred(item)
            if call is not None:
                out.append(call)
        return out

    async def delete_deferred(self, deferred_id: str) -> None:
        """Delete a seen missed call on the backend; one already gone counts as deleted."""
        path = "/notifications/deferred/" + quote(deferred_id, safe="")
        response = await self._request("DELETE", path)
        if response.status_code == 404:
            return
        _raise_for(response)


    async def post_journal_entry(self, body: dict[str, Any]) -> str:
        """`POST /journalEntries` (a `CreateJournalEntryModel`); the new entry's `Location`.

        A refusal raises ApiError with the HTTP status; a 422's text names each field the API
        rejected, with its message ("associatedId: no contact has the id 'X'")."""
        response = await self._request("POST", "/journalEntries", json=body)
        if response.status_code == 422:
            raise ApiError(422, _validation_text(response))
        _raise_for(response)
        return response.headers.get("location", "")


def _validation_text(response: Response) -> str:
    """The 422 body as one line: its description and each `field: message`."""
    try:
        body = response.json()
    except ValueError:
        return "the Platform API refused the entry (HTTP 422)"
    if not isinstance(body, dict):
        return "the Platform API refused the entry (HTTP 422)"
    parts = [f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or []
             if isinstance(e, dict)]
    description = str(body.get("description") or "One or more fields failed validation")
    return description + (" (" + "; ".join(parts) + ")" if parts else "")


async def delete_seen(api: ApiClient, deferred_ids: list[str]) -> list[str]:
    """DELETE each seen call; return the ids the backend confirmed (for `confirm_deleted`)."""
    done: list[str] = []
    for deferred_id in deferred_ids:
        try:
            await api.delete_deferred(deferred_id)
        except ApiError as exc:
            _log.info("could not delete missed call %s on the backend: %s", deferred_id, exc)
            continue
        done.append(deferred_id)
    return done


def _require_secure(url: str, method: str, path: str) -> None:
    """A bearer token goes over https, or plain http to this PC only."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme in ("https", "http") and secrets_may_go_to(scheme, host):
        return
    raise ApiError(0, f"{method} {path}: refusing to send the session's token to "
                      f"{scheme}://{host} in clear text; use https://")


def _raise_for(response: Response) -> None:
    if response.is_success:
        return
    description = response.reason_phrase or "request failed"
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("description"), str):
            description = body["description"]
    except ValueError:
        pass
    raise ApiError(response.status_code, f"{response.method} {response.path}: {description}")


def _contact(item: dict[str, Any]) -> Contact | None:
    cid = item.get("id")
    if not isinstance(cid, str) or not cid:
        return None
    name = item.get("name")
    if not isinstance(name, str) or not name:
        parts = (item.get(k) for k in ("title", "forename", "surname"))
        name = " ".join(str(p).strip() for p in parts if p) or cid
    phones = tuple(
        str(item[k]) for k in ("homePhone", "workPhone", "mobilePhone") if item.get(k)
    )
    return Contact(id=cid, name=name, phones=phones, email=str(item.get("email") or ""))


def _deferred(item: Any) -> DeferredCall | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        return None
    try:
        envelope = read_envelope(item.get("notification"))
    except ValidationFailed as exc:
        _log.warning("ignoring deferred notification %s: %s", item["id"], exc)
        return None
    created: datetime = envelope.payload.created
    raw = item.get("created")
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            created = datetime.fromisoformat(raw)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return DeferredCall(id=item["id"], created=created, notification=envelope)
