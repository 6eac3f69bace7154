"""OpenAPI pieces built from the protocol models, so the docs say what the validation does."""

from __future__ import annotations

from typing import Any

from tapi_agent.protocol import PAYLOAD_MODELS

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["statusCode", "dateTime", "description"],
    "properties": {
        "statusCode": {"type": "integer"},
        "dateTime": {"type": "string", "format": "date-time"},
        "description": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_DESCRIPTIONS = {
    400: "The body is not JSON, or a query or path parameter is not valid (`description` says "
         "which)",
    401: "Missing, invalid or expired bearer token",
    403: "The token lacks the required scope",
    404: "Not found",
    413: "Body larger than 64 KiB",
    415: "Content-Type is not application/json",
    422: "Validation failed: `errors` names each field by its dotted path",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for Platform API error bodies."""
    return {
        s: {"description": _DESCRIPTIONS.get(s, "Error"),
            "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
        for s in statuses
    }


def linked(status: int, description: str, **links: tuple[str, dict[str, str]]
           ) -> dict[int | str, dict[str, Any]]:
    """An OpenAPI response with links: `name=(operationId, {parameter: expression})`, so
    clients (and stateful Schemathesis) can follow a list to its items."""
    return {status: {"description": description, "links": {
        name: {"operationId": op, "parameters": params} for name, (op, params) in links.items()
    }}}


def _payload_schema(sub_type_model: Any) -> dict[str, Any]:
    schema: dict[str, Any] = sub_type_model.model_json_schema()
    schema.pop("title", None)
    schema["additionalProperties"] = False
    return schema


def envelope_schema() -> dict[str, Any]:
    """JSON schema of the envelope: one variant per type/subType, each with its payload."""
    variants = []
    for (type_, sub_type), model in PAYLOAD_MODELS.items():
        variants.append({
            "type": "object",
            "title": f"{type_}/{sub_type}",
            "required": ["type", "subType", "products", "targets", "payload"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": [type_]},
                "subType": {"type": "string", "enum": [sub_type]},
                "products": {
                    "type": "array", "minItems": 1, "maxItems": 20,
                    "items": {"type": "string", "minLength": 1, "maxLength": 64},
                    "example": ["AgencyCloud"],
                },
                "targets": {
                    "type": "object",
                    "required": ["negotiatorId"],
                    "additionalProperties": False,
                    "properties": {
                        "negotiatorId": {
                            "type": "array", "minItems": 1, "maxItems": 1000,
                            "items": {"type": "string", "minLength": 1, "maxLength": 32},
                        }
                    },
                },
                "payload": _payload_schema(model),
            },
        })
    return {"oneOf": variants}


ENVELOPE_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": envelope_schema(),
            "example": {
                "type": "telephony",
                "subType": "incomingCall",
                "products": ["AgencyCloud"],
                "targets": {"negotiatorId": ["JAS"]},
                "payload": {"id": "ax2uyio8p", "created": "2023-11-01T10:28:00",
                            "callerId": "07123 456789", "destinationId": "01865 000100",
                            "huntGroup": False},
            },
        }
    },
}
