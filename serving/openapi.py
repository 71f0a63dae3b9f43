"""The service's OpenAPI document: /predict, /predict_customer and /risk_list, from the very
models that validate their requests, with every answer they give (BentoML's own document
failed to build, and declared a 400's `detail` as text where a list is sent)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from journeyguard.serving.schemas import CustomerIn, JourneyRisk

REF = "#/components/schemas/{model}"
_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
_VALIDATION_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
                "required": ["loc", "msg"],
            },
        },
    },
    "required": ["error", "detail"],
}
_QUERY_ERROR = {  # FastAPI's, for the query of /risk_list
    "type": "object",
    "properties": {"detail": {"type": ["array", "string"]}},
    "required": ["detail"],
}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        answer["headers"] = headers
    return answer


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
_COMMON = {
    "401": _json(_ERROR, "missing or wrong API token"),
    "413": _json(_ERROR, "body over serving.max_body_bytes"),
    "415": _json(_ERROR, "a body that is not JSON"),
    "503": _json(_ERROR, "not ready (no champion) or overloaded", _RETRY_AFTER),
}


def openapi_spec(request_model: type[BaseModel], max_journeys: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON endpoints; `request_model` is /predict's body, and
    `max_journeys` the running service's limit."""
    names, definitions = models_json_schema(
        [
            (request_model, "validation"),
            (CustomerIn, "validation"),
            (JourneyRisk, "serialization"),
        ],
        ref_template=REF,
    )
    schemas = definitions.get("$defs", {})
    schemas[request_model.__name__]["properties"]["journeys"]["maxItems"] = max_journeys

    def ref(model: type[BaseModel], mode: str) -> dict:
        return names[(model, mode)]

    risk = ref(JourneyRisk, "serialization")
    return {
        "openapi": "3.1.0",
        "info": {"title": "JourneyGuard", "version": "1"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Risk of each journey for every task",
                    "requestBody": _body(ref(request_model, "validation")),
                    "responses": {
                        "200": _json({"type": "array", "items": risk}, "one answer a journey"),
                        "400": _json(_VALIDATION_ERROR, "invalid request, naming the field"),
                        **_COMMON,
                    },
                }
            },
            "/predict_customer": {
                "post": {
                    "summary": "Risk of a customer of the configured event source",
                    "requestBody": _body(ref(CustomerIn, "validation")),
                    "responses": {
                        "200": _json(risk, "the customer's risks"),
                        "400": _json(_VALIDATION_ERROR, "invalid request, naming the field"),
                        "404": _json(_ERROR, "a customer the event source does not know"),
                        **_COMMON,
                    },
                }
            },
            "/risk_list": {"get": _risk_list()},
        },
    }


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _risk_list() -> dict:
    def query(name: str, schema: dict, required: bool = False) -> dict:
        return {"name": name, "in": "query", "required": required, "schema": schema}

    rows = {
        "type": "object",
        "properties": {
            "task": {"type": "string"},
            "count": {"type": "integer"},
            "rows": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["task", "count", "rows"],
    }
    return {
        "summary": "The riskiest customers of the latest scored list, with their reasons",
        "parameters": [
            query("task", {"type": "string"}, required=True),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 100}),
            query("min_risk", {"type": "number", "minimum": 0, "maximum": 1, "default": 0}),
            query("sort", {"enum": ["risk", "value_at_risk"], "default": "risk"}),
        ],
        "responses": {
            "200": _json(rows, "the rows, riskiest first"),
            "404": _json(_QUERY_ERROR, "an unknown task, or no scored list yet"),
            "422": _json(_QUERY_ERROR, "a query value out of range, naming it"),
            "401": _COMMON["401"],
            "503": _COMMON["503"],
        },
    }
