"""`GET /negotiators`, `GET /negotiators/{id}` and `GET /contacts` over the seed data."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import phonenumbers
from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from tapi_agent.mock.http import ApiError, bearer_claims, state_of
from tapi_agent.mock.openapi import error_responses, linked

router = APIRouter(tags=["directory"])

PHONE_FIELDS = ("homePhone", "workPhone", "mobilePhone")
DEFAULT_REGION = "GB"

PageNumber = Annotated[int, Query(alias="pageNumber", ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=100)]


def normalise_phone(value: str, region: str = DEFAULT_REGION) -> str | None:
    """E.164 form of a phone number (`07123 456789` -> `+447123456789`), None if not a number."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def page(
    path: str, items: list[dict[str, Any]], number: int, size: int, query: list[tuple[str, str]]
) -> dict[str, Any]:
    """The Platform API page shape; `next` is only present when there is a next page."""
    total = len(items)
    total_pages = max(1, -(-total // size))
    chunk = items[(number - 1) * size : number * size]

    def href(n: int) -> dict[str, str]:
        return {"href": f"{path}?" + urlencode([*query, ("pageNumber", n), ("pageSize", size)])}

    links = {"self": href(number), "first": href(1)}
    if number < total_pages:
        links["next"] = href(number + 1)
    links["last"] = href(total_pages)
    return {
        "_embedded": chunk,
        "pageNumber": number,
        "pageSize": size,
        "pageCount": len(chunk),
        "totalPageCount": total_pages,
        "totalCount": total,
        "_links": links,
    }


@router.get("/negotiators", summary="List negotiators", responses={
    **linked(200, "A page of negotiators", GetFirst=(
        "getNegotiator", {"negotiator_id": "$response.body#/_embedded/0/id"})),
    **error_responses(400, 401, 403)})
async def list_negotiators(
    request: Request,
    page_number: PageNumber = 1,
    page_size: PageSize = 25,
    id: Annotated[list[str] | None, Query(description="Negotiator ids (repeatable)")] = None,
    officeId: Annotated[list[str] | None, Query(description="Office ids (repeatable)")] = None,
    email: Annotated[str | None, Query(max_length=200)] = None,
    name: Annotated[str | None, Query(max_length=200, description="Part of the name")] = None,
    active: bool | None = None,
) -> dict[str, Any]:
    """Negotiators, filtered and paged like the Platform API."""
    bearer_claims(request, "negotiators.read")
    state = state_of(request)
    items = [state.resource("negotiators", n) for n in state.seed.negotiators]
    query: list[tuple[str, str]] = []
    if id:
        items = [n for n in items if n["id"] in id]
        query += [("id", v) for v in id]
    if officeId:
        items = [n for n in items if n.get("officeId") in officeId]
        query += [("officeId", v) for v in officeId]
    if email:
        items = [n for n in items if str(n.get("email", "")).casefold() == email.casefold()]
        query.append(("email", email))
    if name:
        items = [n for n in items if name.casefold() in str(n.get("name", "")).casefold()]
        query.append(("name", name))
    if active is not None:
        items = [n for n in items if bool(n.get("active", True)) == active]
        query.append(("active", str(active).lower()))
    return page("/negotiators", items, page_number, page_size, query)


@router.get("/negotiators/{negotiator_id}", summary="One negotiator",
            operation_id="getNegotiator", responses=error_responses(401, 403, 404))
async def get_negotiator(negotiator_id: str, request: Request) -> JSONResponse:
    """The negotiator (its `_eTag` also as the `ETag` header), or 404."""
    bearer_claims(request, "negotiators.read")
    state = state_of(request)
    found = state.seed.negotiator(negotiator_id)
    if found is None:
        raise ApiError(404, f"Negotiator {negotiator_id!r} was not found")
    return _single(state.resource("negotiators", found))


def _single(resource: dict[str, Any]) -> JSONResponse:
    # Reapit: "whenever a singular representation is served ... it will include eTag in the
    # response header", and the same value as `_eTag` in the body.
    return JSONResponse(resource, headers={"ETag": resource["_eTag"]})


def _matches(contact: dict[str, Any], wanted: str) -> bool:
    if "@" in wanted:
        return str(contact.get("email") or "").casefold() == wanted.casefold()
    target = normalise_phone(wanted)
    for key in PHONE_FIELDS:
        value = contact.get(key)
        if not value:
            continue
        if target is not None and normalise_phone(str(value)) == target:
            return True
        if target is None and str(value).replace(" ", "") == wanted.replace(" ", ""):
            return True
    return False


@router.get("/contacts", summary="Find contacts", responses={
    **linked(200, "A page of contacts", GetFirst=(
        "getContact", {"contact_id": "$response.body#/_embedded/0/id"})),
    **error_responses(400, 401, 403)})
async def list_contacts(
    request: Request,
    page_number: PageNumber = 1,
    page_size: PageSize = 25,
    contactDetail: Annotated[
        list[str] | None,
        Query(description="A phone number (any formatting) or an email; repeatable"),
    ] = None,
    id: Annotated[list[str] | None, Query(description="Contact ids (repeatable)")] = None,
) -> dict[str, Any]:
    """Contacts matching any phone field or the email, paged like the Platform API."""
    bearer_claims(request, "contacts.read")
    state = state_of(request)
    items = [state.resource("contacts", c) for c in state.seed.contacts]
    query: list[tuple[str, str]] = []
    if id:
        items = [c for c in items if c.get("id") in id]
        query += [("id", v) for v in id]
    if contactDetail:
        details = [d.strip() for d in contactDetail if d.strip()]
        items = [c for c in items if any(_matches(c, d) for d in details)]
        query += [("contactDetail", d) for d in contactDetail]
    return page("/contacts", items, page_number, page_size, query)


@router.get("/contacts/{contact_id}", summary="One contact",
            operation_id="getContact", responses=error_responses(401, 403, 404))
async def get_contact(contact_id: str, request: Request) -> JSONResponse:
    """The contact (its `_eTag` also as the `ETag` header), or 404."""
    bearer_claims(request, "contacts.read")
    state = state_of(request)
    found = next((c for c in state.seed.contacts if c.get("id") == contact_id), None)
    if found is None:
        raise ApiError(404, f"Contact {contact_id!r} was not found")
    return _single(state.resource("contacts", found))
