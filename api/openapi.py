"""The OpenAPI document's security: each route says which credentials it takes, so the
Swagger UI's "Authorize" fills them in."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

SCHEMES: dict[str, dict[str, Any]] = {
    "AdminKey": {"type": "http", "scheme": "bearer", "description": "`ADMIN_API_KEY`"},
    "AdminPin": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Admin-PIN",
        "description": "`ADMIN_PIN`",
    },
    "SyncTimestamp": {
        "type": "apiKey",
        "in": "header",
        "name": "x-sync-timestamp",
        "description": "Seed 004: unix seconds, within `INTERNAL_SYNC_ALLOWED_SKEW_SECONDS`.",
    },
    "SyncRequestId": {
        "type": "apiKey",
        "in": "header",
        "name": "x-sync-request-id",
        "description": "Seed 004: the batch's `requestId`.",
    },
    "SyncSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "x-sync-signature",
        "description": "Seed 004: `sha256=` + hex HMAC-SHA256 with `INTERNAL_SYNC_SHARED_SECRET` "
        "of `${timestamp}.${requestId}.${sha256(body)}`.",
    },
    "InternalToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "Seed 000: `INTERNAL_SYNC_TOKEN`.",
    },
    "InternalSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature",
        "description": "Seed 000: hex HMAC-SHA256 of the exact body with `INTERNAL_SYNC_SECRET`.",
    },
}
ADMIN: list[dict[str, list[str]]] = [{"AdminKey": []}, {"AdminPin": []}]
SIGNED: list[dict[str, list[str]]] = [
    {"SyncTimestamp": [], "SyncRequestId": [], "SyncSignature": []}
]
INTERNAL: list[dict[str, list[str]]] = [{"InternalToken": []}, {"InternalSignature": []}]


def install(app: FastAPI) -> None:
    """Generate the document once, declaring every scheme: admin routes get theirs from
    ``api.auth.require_admin``'s dependencies, the seed routes in their ``openapi_extra``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        components.update(SCHEMES)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
