"""``POST /webhook/{app_key}``: a SaaS provider's signed events (Stripe first), applied at once."""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import RowMapping

from api.auth import note_failed_authentication
from api.state import ApiState, get_state
from api.submit import submit
from api.supasaasy import SupasaasyError, app_or_404, closing_unless_read, read_body
from db.errors import is_transient
from schemas.events import SyncRequest
from schemas.json_value import json_problem, text_problem
from schemas.saas import APP_KEY, CONNECTORS, DOMAIN, own_secret
from schemas.signing import canonical_sha256, stripe_signature_problem

log = logging.getLogger(__name__)

router = APIRouter(tags=["saas (seed 001, supasaasy)"])
State = Annotated[ApiState, Depends(get_state)]

WEBHOOK_PREFIX = "/webhook/"
MAX_EVENT_ID = 100  # Stripe's are about 30 characters
WEBHOOK_PATH = re.compile(r"/webhook/[^/]+")  # what the route serves (its own body limit)


@router.post(WEBHOOK_PREFIX + "{app_key}")
async def webhook(app_key: str, request: Request, state: State) -> Response:
    """A Stripe event for one app: verified (``Stripe-Signature``), then applied at once by
    the worker as a job of its own (idempotent by the event's id)."""
    try:
        body = await read_body(request)
        if not APP_KEY.fullmatch(app_key):
            raise SupasaasyError(400, "Invalid app_key format")
        app = await app_or_404(state, app_key)
        variable = app["webhook_secret_env"]
        # An app stored before the rule on secret names reads no other variable.
        own = own_secret(app["connector"], variable)
        secrets = [s.strip() for s in os.environ.get(variable, "").split(",")] if own else []
        problem = stripe_signature_problem(
            request.headers.get("stripe-signature"), body, [s for s in secrets if s], time.time()
        )
        if problem is not None:
            await note_failed_authentication(state, request)
            raise SupasaasyError(400, f"Invalid signature: {problem}")
        event = _event(body)
        handled = CONNECTORS[app["connector"]].events.get(str(event.get("type")))
        if handled is None:
            log.info("webhook for %s: event type %s is not handled", app_key, event.get("type"))
            return JSONResponse({"received": True, "handled": False})
        job, created = await _apply_event(state, app, event, handled[0])
        return JSONResponse(
            {"received": True, "handled": True, "job_id": str(job["id"]), "duplicate": not created}
        )
    except SupasaasyError as refused:
        return closing_unless_read(request, refused).response()
    except Exception as exc:
        if is_transient(exc):
            raise  # 503: the database is away (api.problems); Stripe sends the event again
        log.exception("webhook for %s failed", app_key)
        return closing_unless_read(request, SupasaasyError(500, "Internal server error")).response()


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SupasaasyError(400, "Invalid JSON body") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise SupasaasyError(400, "Invalid event: no id")
    # The id names the event's job (request id "<connector>-event:<app_key>:<id>").
    if len(event["id"]) > MAX_EVENT_ID or text_problem(event["id"], controls=False):
        raise SupasaasyError(400, f"Invalid event: id must be printable, at most {MAX_EVENT_ID}")
    if json_problem(event) is not None:
        raise SupasaasyError(400, f"Invalid event: {json_problem(event)}")
    return event


async def _apply_event(
    state: ApiState, app: RowMapping, event: dict[str, Any], resource_type: str
) -> tuple[RowMapping, bool]:
    spec = CONNECTORS[app["connector"]]
    kids = [r.resource_type for r in spec.children_of(resource_type)]
    request = SyncRequest(
        request_id=f"{spec.name}-event:{app['app_key']}:{event['id']}",
        domain=DOMAIN,
        scope=app["app_key"],
        mode="incremental",
        trigger="http",
        actor=spec.name,
        params={
            "stripe_event": True,
            "resource_types": [resource_type, *(k for k in kids if k in app["resources"])],
        },
    )
    # Stored with the job, as a pushed batch is: the Kafka request carries a reference,
    # and the job row the fingerprint the worker checks its request against.
    body = orjson.dumps(event).decode()
    # Not exclusive: an event queues behind a running sync of the app, in order.
    return await submit(state, request, body=body, fingerprint=canonical_sha256(event))
