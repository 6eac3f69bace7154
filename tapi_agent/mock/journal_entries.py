"""`POST /journalEntries` and `GET /journalEntries`: what an agent or a provider logs to a record.

Validated as Reapit's `CreateJournalEntryModel` (`@reapit/foundations-ts-definitions`):
`description` is required; `associatedId` needs `associatedType` (and the other way round);
without `associatedId` a `propertyId` is required; `worksOrder` entries need `typeId` `WO`.
Decisions where Reapit's documents are silent (the README says the same):

- An entry for `associatedType` `contact` must name a contact the mock knows, and a
  `negotiatorId` a known negotiator (422 naming the field): the mock knows no other records.
- A negotiator's token without `negotiatorId` records the token's negotiator, as AgencyCloud
  records the signed-in user; `typeId` defaults to `MI`, as Reapit documents.
- Entries have no `id` in Reapit's model: the `Location` of a new entry (and its
  `_links.self`) is `/journalEntries/{id}` with an id of the mock's.
- `GET /journalEntries` lists oldest first; `sortBy=-created` lists newest first.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from tapi_agent.mock.directory import PageNumber, PageSize, page
from tapi_agent.mock.http import (
    ApiError,
    bearer_claims,
    decode_json,
    is_json_media,
    state_of,
)
from tapi_agent.mock.hub import utc_iso
from tapi_agent.mock.openapi import error_responses, linked
from tapi_agent.mock.state import JournalEntry
from tapi_agent.protocol import FieldError

router = APIRouter(tags=["journal entries"])

JOURNAL_READ = "journalEntries.read"
JOURNAL_WRITE = "journalEntries.write"
ASSOCIATED_TYPES = ("applicant", "contact", "company", "enquiry", "landlord", "tenancy",
                    "worksOrder")
DEFAULT_TYPE_ID = "MI"
MAX_DESCRIPTION = 4000
MAX_ID = 64
CREATE_FIELDS = ("typeId", "propertyId", "associatedType", "associatedId", "description",
                 "negotiatorId")


def _string(data: dict[str, Any], key: str, errors: list[FieldError], *,
            limit: int = MAX_ID) -> str | None:
    if key not in data:
        return None
    value = data[key]
    if not isinstance(value, str):
        errors.append(FieldError(key, "must be a string"))
        return None
    if not value:
        errors.append(FieldError(key, "must not be empty"))
        return None
    if len(value) > limit:
        errors.append(FieldError(key, f"is too long (at most {limit})"))
        return None
    return value


def validate_create(data: Any, *, contacts: set[str], negotiators: set[str]) -> dict[str, Any]:
    """A decoded body checked as `CreateJournalEntryModel`; raise ApiError 422 naming fields."""
    if not isinstance(data, dict):
        raise ApiError(422, "One or more fields failed validation",
                       [{"field": "body", "message": "must be a JSON object"}])
    errors = [FieldError(k, "is not a known field") for k in data if k not in CREATE_FIELDS]
    description = _string(data, "description", errors, limit=MAX_DESCRIPTION)
    if "description" not in data:
        errors.append(FieldError("description", "is required"))
    type_id = _string(data, "typeId", errors)
    property_id = _string(data, "propertyId", errors)
    associated_type = _string(data, "associatedType", errors)
    associated_id = _string(data, "associatedId", errors)
    negotiator_id = _string(data, "negotiatorId", errors)
    if associated_type is not None and associated_type not in ASSOCIATED_TYPES:
        errors.append(FieldError("associatedType", "must be one of: " + ", ".join(
            ASSOCIATED_TYPES)))
        associated_type = None
    if "associatedId" in data and "associatedType" not in data:
        errors.append(FieldError("associatedType", "is required when associatedId is given"))
    if "associatedId" not in data:
        if "associatedType" in data:
            errors.append(FieldError("associatedId",
                                     "is required when associatedType is given"))
        elif "propertyId" not in data:
            errors.append(FieldError("associatedId",
                                     "is required when propertyId is not given"))
    if associated_type == "contact" and associated_id is not None and (
            associated_id not in contacts):
        errors.append(FieldError("associatedId", f"no contact has the id {associated_id!r}"))
    if associated_type == "worksOrder" and type_id != "WO":
        errors.append(FieldError("typeId", "must be WO for a worksOrder entry"))
    if negotiator_id is not None and negotiator_id not in negotiators:
        errors.append(FieldError("negotiatorId",
                                 f"no negotiator has the id {negotiator_id!r}"))
    if errors:
        raise ApiError(422, "One or more fields failed validation",
                       [e.as_dict() for e in errors])
    return {"description": description, "type_id": type_id or DEFAULT_TYPE_ID,
            "property_id": property_id, "associated_type": associated_type,
            "associated_id": associated_id, "negotiator_id": negotiator_id}


_CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["description"],
    "additionalProperties": False,
    "properties": {
        "typeId": {"type": "string", "minLength": 1, "maxLength": MAX_ID,
                   "description": "The type of entry; default MI (WO for a worksOrder)"},
        "propertyId": {"type": "string", "minLength": 1, "maxLength": MAX_ID,
                       "description": "Required when associatedId is not given"},
        "associatedType": {"type": "string", "enum": list(ASSOCIATED_TYPES),
                           "description": "Required when associatedId is given"},
        "associatedId": {"type": "string", "minLength": 1, "maxLength": MAX_ID,
                         "description": "Required when propertyId is not given"},
        "description": {"type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION},
        "negotiatorId": {"type": "string", "minLength": 1, "maxLength": MAX_ID,
                         "description": "A known negotiator; default: the token's"},
    },
    # The model's rules as schema: a record (type and id) or a property, and WO for works
    # orders. Which ids the mock knows (contacts, negotiators) is checked, not documented.
    "anyOf": [
        {"required": ["associatedType", "associatedId"],
         "properties": {"associatedType": {"enum": [t for t in ASSOCIATED_TYPES
                                                    if t != "worksOrder"]}}},
        {"required": ["associatedType", "associatedId", "typeId"],
         "properties": {"associatedType": {"const": "worksOrder"}, "typeId": {"const": "WO"}}},
        {"required": ["propertyId"],
         "not": {"anyOf": [{"required": ["associatedType"]}, {"required": ["associatedId"]}]}},
    ],
}

_CREATE_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {
        "schema": _CREATE_SCHEMA,
        "example": {"associatedType": "contact", "associatedId": "OXF20000001",
                    "typeId": "MI", "description": "Incoming call from 07123 456789 answered"},
    }},
}

_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_links", "created", "typeId", "description"],
    "properties": {
        "_links": {"type": "object"},
        "created": {"type": "string", "format": "date-time"},
        "propertyId": {"type": "string"},
        "associatedType": {"type": "string"},
        "associatedId": {"type": "string"},
        "typeId": {"type": "string"},
        "negotiatorId": {"type": "string"},
        "description": {"type": "string"},
    },
}


@router.post(
    "/journalEntries",
    status_code=201,
    summary="Record a journal entry against a contact (or another record) or a property",
    openapi_extra={"requestBody": _CREATE_BODY},
    response_class=Response,
    responses={201: {"headers": {"Location": {"schema": {"type": "string"}}},
                     **linked(201, "Created; `Location` is the new entry", GetCreated=(
                         "getJournalEntry",
                         {"entry_id": "$response.header.Location#regex:/journalEntries/(.+)"}),
                         ListForRecord=("listJournalEntries", {
                             "associatedId": "$request.body#/associatedId"}))[201]},
               **error_responses(400, 401, 403, 413, 415, 422)},
)
async def create_journal_entry(request: Request) -> Response:
    """201 with `Location`; 422 naming each field that fails `CreateJournalEntryModel`."""
    claims = bearer_claims(request, JOURNAL_WRITE)
    if not is_json_media(request.headers.get("content-type", "")):
        raise ApiError(415, "Unsupported media type: send 'Content-Type: application/json'")
    state = state_of(request)
    fields = validate_create(
        decode_json(await request.body()),
        contacts={str(c.get("id")) for c in state.seed.contacts},
        negotiators={str(n.get("id")) for n in state.seed.negotiators},
    )
    if fields["negotiator_id"] is None:
        fields["negotiator_id"] = claims.negotiator_id
    entry = JournalEntry(id=secrets.token_hex(8), created=datetime.now(UTC), **fields)
    state.add_journal_entry(entry)
    return Response(status_code=201, headers={"Location": entry.href})


@router.get(
    "/journalEntries",
    operation_id="listJournalEntries",
    summary="Journal entries, filtered and paged like the Platform API",
    responses={200: {"description": "A page of journal entries"},
               **error_responses(400, 401, 403)},
)
async def list_journal_entries(
    request: Request,
    page_number: PageNumber = 1,
    page_size: PageSize = 25,
    associatedId: Annotated[list[str] | None, Query(description="Record ids (repeatable)")
                            ] = None,
    associatedType: Annotated[str | None, Query(max_length=32)] = None,
    negotiatorId: Annotated[list[str] | None, Query(description="Repeatable")] = None,
    propertyId: Annotated[list[str] | None, Query(description="Repeatable")] = None,
    typeId: Annotated[list[str] | None, Query(description="Repeatable")] = None,
    createdFrom: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    createdTo: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    sortBy: Annotated[str, Query(pattern="^-?created$")] = "created",
) -> dict[str, Any]:
    """Entries matching every filter given; `associatedId` etc. match any of their values."""
    bearer_claims(request, JOURNAL_READ)
    items = list(state_of(request).journal_entries)
    query: list[tuple[str, str]] = []
    filters = (("associatedId", associatedId, "associated_id"),
               ("negotiatorId", negotiatorId, "negotiator_id"),
               ("propertyId", propertyId, "property_id"), ("typeId", typeId, "type_id"))
    for name, values, attr in filters:
        if values:
            items = [e for e in items if getattr(e, attr) in values]
            query += [(name, v) for v in values]
    if associatedType:
        items = [e for e in items if e.associated_type == associatedType]
        query.append(("associatedType", associatedType))
    if createdFrom is not None:
        since = _aware(createdFrom)
        items = [e for e in items if e.created >= since]
        query.append(("createdFrom", utc_iso(since)))
    if createdTo is not None:
        until = _aware(createdTo)
        items = [e for e in items if e.created <= until]
        query.append(("createdTo", utc_iso(until)))
    if sortBy == "-created":
        items.reverse()
        query.append(("sortBy", sortBy))
    return page("/journalEntries", [e.as_dict() for e in items], page_number, page_size, query)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@router.get("/journalEntries/{entry_id}", summary="One journal entry",
            operation_id="getJournalEntry",
            responses={200: {"content": {"application/json": {"schema": _ENTRY_SCHEMA}},
                             "description": "The entry"},
                       **error_responses(401, 403, 404)})
async def get_journal_entry(entry_id: str, request: Request) -> JSONResponse:
    """The entry a `Location` header names, or 404."""
    bearer_claims(request, JOURNAL_READ)
    for entry in state_of(request).journal_entries:
        if entry.id == entry_id:
            return JSONResponse(entry.as_dict())
    raise ApiError(404, f"Journal entry {entry_id!r} was not found")
