"""Checks that a generated body cannot be a valid write: each mirrors one route's own rules."""

from __future__ import annotations

import json
import re

import orjson

from tests.bad_input.credentials import server_view
from tests.bad_input.git_rules import git_sync_refused
from tests.bad_input.request import Target

LANG_RE = re.compile(r"^[a-z]{2,3}$")
SYNC_CREATE_FIELDS = {"domain", "scope", "mode", "request_id", "params", "payload"}


def push_refused(body: bytes, header_request_id: bytes | None, t: Target) -> bool:
    """True when the signed push surely fails before anything is written (anything the
    check is unsure of counts as possibly valid)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except RecursionError:
        return False
    except ValueError:  # also UnicodeDecodeError
        return True
    if not isinstance(data, dict):
        return True
    request_id = data.get("requestId")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 200:
        return True
    if header_request_id is not None and server_view(header_request_id) != request_id:
        return True
    if request_id == t.seed_request_id:
        return True  # a replay or a conflict: nothing written
    if data.get("source") != t.push_source:
        return True
    lang = data.get("lang")
    if not isinstance(lang, str) or not LANG_RE.match(lang):
        return True
    entries = data.get("entries")
    if not isinstance(entries, list) or not 1 <= len(entries) <= t.max_entries:
        return True
    return not all(isinstance(e, dict) for e in entries)


def models_trigger_refused(body: bytes) -> bool:
    """True when POST /api/internal/sync-models refuses the body (it parses with orjson)."""
    if not body.strip():
        return False
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(data, dict):
        return True
    source = data.get("source")
    return source is not None and (not isinstance(source, str) or len(source) > 200)


def sync_create_refused(body: bytes, t: Target) -> bool:
    """True when POST /v1/syncs surely writes nothing: not JSON, not the schema, an
    unknown domain, a git body the edge refuses, or the seed's request_id (a conflict)."""
    if not body:
        return True
    try:
        data = json.loads(body)
    except RecursionError:
        return False
    except ValueError:
        return True
    if not isinstance(data, dict) or set(data) - SYNC_CREATE_FIELDS:
        return True
    if data.get("request_id") == t.seed_request_id:
        return True
    if not short_text_or_none(data.get("request_id")) or not short_text_or_none(data.get("scope")):
        return True
    if data.get("domain") not in ("dictionary", "models", "git"):
        return True
    if data.get("mode", "incremental") not in ("incremental", "full"):
        return True
    if "params" in data and not isinstance(data["params"], dict):
        return True
    if data["domain"] == "git":
        return git_sync_refused(data)
    payload = data.get("payload")
    if data["domain"] == "models":
        return payload is not None  # the models domain takes no payload
    if not isinstance(payload, dict):
        return True
    entries = payload.get("entries")
    lang = payload.get("lang")
    return not (
        isinstance(payload.get("source"), str)
        and payload["source"]
        and isinstance(lang, str)
        and LANG_RE.match(lang)
        and isinstance(entries, list)
        and entries
        and all(isinstance(e, dict) for e in entries)
    )


def short_text_or_none(value: object) -> bool:
    """None, or a string of 1 to 200 characters."""
    return value is None or (isinstance(value, str) and 1 <= len(value) <= 200)
