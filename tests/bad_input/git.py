"""Seed 002's metadata sync (/api/v1/admin/metadata-sync) and git-domain bodies for POST
/v1/syncs: never a sync started, a configuration stored or a schedule changed."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.bad_input.bodies import content_type, corrupted, frame
from tests.bad_input.credentials import admin_auth, admin_headers
from tests.bad_input.git_rules import (
    body_verdict,
    configure_check,
    job_of,
    last_event_ok,
    path_segment,
    pin_auth,
    query_ok,
    routed_parts,
    wrong_pin,
)
from tests.bad_input.jobs import LAST_EVENT_IDS, job_id
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.query import VALID_ISH, query_value
from tests.bad_input.releases import (
    bodyless,
    bodyless_oversize,
    bodyless_statuses,
    finish_body,
    id_verdict,
    release_other,
    release_segment,
    release_write,
)
from tests.bad_input.request import BadRequest, Target, build, shorten
from tests.bad_input.validity import sync_create_refused
from tests.bad_input.values import KINDS, deep_value, obj, obj_bytes, odd_value, text_of

PREFIX = b"/api/v1/admin/metadata-sync"
TRIGGER_ONE = "POST /api/v1/admin/metadata-sync/trigger/{release_id}"
TRIGGER_ALL = "POST /api/v1/admin/metadata-sync/trigger"
PROGRESS = "GET /api/v1/admin/metadata-sync/progress/{job_id}"
CONFIGURE = "POST /api/v1/admin/metadata-sync/configure"
Fields = list[tuple[str, str]]
# Ways to make a configure body invalid: (label -> (key, JSON text)); key '' empties it.
CONFIGURE_BREAKERS: dict[str, tuple[str, str]] = {
    "empty object": ("", ""),
    "enabled null": ("enabled", "null"),
    "enabled a word": ("enabled", '"maybe"'),
    "enabled 2": ("enabled", "2"),
    "enabled a list": ("enabled", "[true]"),
    "enabled an object": ("enabled", '{"on":true}'),
    "enabled empty": ("enabled", '""'),
    "interval 0": ("interval_hours", "0"),
    "interval -0.0": ("interval_hours", "-0.0"),
    "interval -1": ("interval_hours", "-1"),
    "interval 1e-400 (0)": ("interval_hours", "1e-400"),
    "interval 8784.0001": ("interval_hours", "8784.0001"),
    "interval 8785": ("interval_hours", "8785"),
    "interval 1e400": ("interval_hours", "1e400"),
    "interval NaN": ("interval_hours", "NaN"),
    "interval Infinity": ("interval_hours", "Infinity"),
    "interval 2^64": ("interval_hours", str(2**64)),
    "interval a word": ("interval_hours", '"daily"'),
    "interval a list": ("interval_hours", "[12]"),
    "interval '12h'": ("interval_hours", '"12h"'),
    "unknown field": ("x_unknown", "1"),
    "interval_seconds": ("interval_seconds", "3600"),
    "ENABLED capitalised": ("ENABLED", "true"),
    "a cron": ("cron", '"0 3 * * *"'),
    "a schedule id": ("schedule_id", "1"),
}
CONFIGURE_FOCUS = ["breaker"] * 5 + ["odd value"] * 2 + ["corrupted", "top level", "framing"]
CONFIGURE_FOCUS += ["oversize"]
# Git-domain bodies of POST /v1/syncs the edge must refuse: (label -> extra fields).
SYNC_BREAKERS: dict[str, Fields] = {
    "release_ids empty": [("params", '{"release_ids":[]}')],
    "release_ids 0": [("params", '{"release_ids":[0]}')],
    "release_ids -1": [("params", '{"release_ids":[-1]}')],
    "release_ids 2^31": [("params", '{"release_ids":[2147483648]}')],
    "release_ids 2^64": [("params", '{"release_ids":[18446744073709551616]}')],
    "release_ids a string": [("params", '{"release_ids":["1"]}')],
    "release_ids 1.0": [("params", '{"release_ids":[1.0]}')],
    "release_ids true": [("params", '{"release_ids":[true]}')],
    "release_ids null in the list": [("params", '{"release_ids":[null]}')],
    "release_ids nested": [("params", '{"release_ids":[[1]]}')],
    "release_ids not a list": [("params", '{"release_ids":1}')],
    "release_ids 101 ids": [("params", obj([("release_ids", text_of(list(range(1, 102))))]))],
    "release_ids and another param": [("params", '{"release_ids":[1],"branch":"main"}')],
    "another param only": [("params", '{"branch":"main"}')],
    "a payload": [("payload", "{}")],
    "a payload and release_ids": [("params", '{"release_ids":[1]}'), ("payload", "[]")],
    "a scope without release_ids": [("scope", '"release:1"')],
    "scope main without release_ids": [("scope", '"main"')],
    "params a list": [("params", "[1]")],
    "mode unknown": [("mode", '"sometimes"'), ("params", '{"release_ids":[1]}')],
    "unknown field": [("x_unknown", "1"), ("params", '{"release_ids":[1]}')],
}
# Known defect (api/body_limit.py, reported, not fixed here): a GET of an event stream with a
# chunked body over SYNCBUS_MAX_BODY_BYTES gets its 200 head, then the connection is cut
# (the stream's disconnect listener reads the body, the limit raises after the response
# started: "RuntimeError: Caught handled exception, but response already started"); the
# same on GET /v1/syncs/{job_id}/events. Until it is fixed such a body is sent with an
# honest Content-Length (413) instead. Set True to send it.
STREAM_CHUNKED_OVERSIZE = False
HISTORY_LIMITS = [("0", b"0"), ("1001", b"1001"), ("100000", b"100000"), ("-1", b"-1")]
HISTORY_LIMITS += [("2^31", b"2147483648")]
HISTORY_LIMITS += [("1000", b"1000"), ("1", b"1"), ("twice, the last bad", b"5&limit=x")]


def trigger_target(draw: st.DrawFn, t: Target) -> tuple[bytes, str, str]:
    """(path, label, verdict) of POST …/trigger/{release_id}."""
    segment, label = draw(release_segment(t))
    path = PREFIX + b"/trigger/" + segment
    release_id, verdict = id_verdict(path, 6, 7, t)
    if not verdict:
        verdict = "no branch" if release_id == t.plain_release_id else ""
    return path, label, verdict


@st.composite
def trigger_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST …/trigger/{release_id} or …/trigger (every active release): never a sync
    started. The stack's only release with a branch is inactive, so a sync of every active
    release has nothing to do (400); that release itself is only ever triggered without
    valid credentials, or with a body the api refuses before any route for its size."""
    one = draw(st.integers(0, 2)) > 0
    if one:
        path, label, verdict = trigger_target(draw, t)
        route = TRIGGER_ONE
    else:
        path, label, verdict = PREFIX + b"/trigger", "every active release", "nothing to sync"
        route = TRIGGER_ALL
    auth, headers, authed = draw(pin_auth(t, ok_share=0.75))
    body, framing = draw(bodyless(t, read_free_oversize=bool(verdict)))
    if authed and not verdict and not bodyless_oversize(framing):
        auth, headers = wrong_pin(t)
        authed = False
    query = draw(unknown_query()) if draw(st.integers(0, 5)) == 0 else []
    request = build(route, auth, label, "POST", path, query, must_refuse=True)
    frame(request, framing, body, t.max_body)
    request.headers = headers + draw(noise_headers())
    request.label = ", ".join(x for x in (label, framing.label) if x)
    request.detail = f"{shorten(path, 80)} {shorten(request.received(), 40)}"
    request.expect = bodyless_statuses(verdict, framing, authed, request.headers)
    return request


@st.composite
def progress_segment(draw: st.DrawFn, t: Target) -> tuple[bytes, str]:
    """(path segment, label) for {job_id}: the git job as it is or in another spelling,
    the (dictionary) seed job, or the v1 routes' odd and unknown ids."""
    pick = draw(st.integers(0, 9))
    if pick < 4:
        spelling = draw(st.sampled_from(["as it is"] * 3 + ["capitals", "no dashes", "braces"]))
        value = {
            "as it is": t.git_job_id,
            "capitals": t.git_job_id.upper(),
            "no dashes": t.git_job_id.replace("-", ""),
            "braces": "%7B" + t.git_job_id + "%7D",
        }[spelling]
        return value.encode(), f"the git job ({spelling})"
    if pick == 4:
        return t.seed_job_id.encode(), "the dictionary seed job"
    return draw(job_id(t, seed_share=0.0))


@st.composite
def progress_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET …/progress/{job_id}, mostly with an odd Last-Event-ID."""
    segment, label = draw(progress_segment(t))
    auth, headers, authed = draw(pin_auth(t, ok_share=0.8))
    if draw(st.integers(0, 9)) < 7:
        name = draw(st.sampled_from(sorted(LAST_EVENT_IDS)))
        headers = [*headers, (b"last-event-id", LAST_EVENT_IDS[name])]
        label = f"{label}, Last-Event-ID: {name}"
    if draw(st.booleans()):
        accept = draw(st.sampled_from([b"text/event-stream", b"application/json", b"*/*;q=\xff"]))
        headers.append((b"accept", accept))
    body, framing = draw(bodyless(t, read_free_oversize=STREAM_CHUNKED_OVERSIZE))
    path = PREFIX + b"/progress/" + segment
    request = build(PROGRESS, auth, label, "GET", path, must_refuse=not authed)
    frame(request, framing, body, t.max_body)
    request.headers = headers + draw(noise_headers())
    request.label = ", ".join(x for x in (label, framing.label) if x)
    request.detail = f"…/progress/{shorten(segment, 40)} {shorten(label, 60)}"
    job = job_of(path_segment(path, 6))
    if routed_parts(path) != 7:
        verdict = "no route"
    elif job is None:
        verdict = "not the schema"
    elif str(job) != t.git_job_id:
        verdict = "unknown job"
    else:
        verdict = "" if last_event_ok(request.headers) else "bad Last-Event-ID"
    request.expect = bodyless_statuses(verdict, framing, authed, request.headers)
    return request


@st.composite
def read_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET …/status or …/history[?limit=]: odd limits, unknown parameters, credentials."""
    history = draw(st.booleans())
    auth, headers, authed = draw(pin_auth(t, ok_share=0.7))
    query: list[bytes] = []
    labels = []
    if history:
        pick = draw(st.integers(0, 2))
        if pick == 0:
            what, raw = draw(st.sampled_from(HISTORY_LIMITS))
            query.append(b"limit=" + raw)
            labels.append(f"limit {what}")
        elif pick == 1:
            raw, what = draw(query_value())
            query.append(b"limit=" + raw)
            labels.append(f"limit: {what}")
    if draw(st.integers(0, 3)) == 0:
        query += draw(unknown_query())
        labels.append("unknown parameters")
    name = "history" if history else "status"
    body, framing = draw(bodyless(t, read_free_oversize=True))
    route = f"GET /api/v1/admin/metadata-sync/{name}"
    path = PREFIX + b"/" + name.encode()
    label = ", ".join(x for x in (*labels, framing.label) if x) or "plain"
    request = build(route, auth, label, "GET", path, query, must_refuse=not authed)
    frame(request, framing, body, t.max_body)
    request.headers = headers + draw(noise_headers())
    request.detail = f"{name}?{shorten(b'&'.join(query), 80)}"
    fine = not history or query_ok(request.target, "history")
    verdict = "" if fine else "not the schema"
    request.expect = bodyless_statuses(verdict, framing, authed, request.headers)
    request.odd_if_ok = any(w[7:] not in VALID_ISH for w in labels if w.startswith("limit: "))
    return request


def configure_body(draw: st.DrawFn, focus: str) -> tuple[bytes, str]:
    fields = [("enabled", draw(st.sampled_from(["true", "false"])))]
    fields.append(("interval_hours", draw(st.sampled_from(["12", "0.5", "8784", "24.0"]))))
    fields = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=2, unique=True))
    if focus == "odd value":
        key = draw(st.sampled_from(["enabled", "interval_hours", "x"]))
        value, what = draw(odd_value())
        return obj_bytes(
            [*[(k, v) for k, v in fields if k != key], (key, value)]
        ), f"{key} = {what}"
    if focus == "top level":
        value, what = draw(
            st.sampled_from(sorted(KINDS.items())).map(lambda kv: (kv[1], f"a JSON {kv[0]}"))
            | deep_value()
        )
        return value.encode(), f"body: {what}"
    label = draw(st.sampled_from(sorted(CONFIGURE_BREAKERS)))
    key, value = CONFIGURE_BREAKERS[label]
    kept = [(k, v) for k, v in fields if k != key]
    body = obj_bytes([*kept, (key, value)]) if key else b"{}"
    if focus == "corrupted":
        return draw(corrupted(body))
    return body, label if focus == "breaker" else ""


@st.composite
def configure_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST …/configure: a body that stores nothing (a valid one is sent without valid
    credentials)."""
    focus = draw(st.sampled_from(CONFIGURE_FOCUS))
    body, label = configure_body(draw, focus)
    request = build(CONFIGURE, "", label, "POST", PREFIX + b"/configure", must_refuse=True)
    finish_body(draw, t, request, body, focus, lambda r: body_verdict(r, configure_check))
    return request


@st.composite
def git_sync_create(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /v1/syncs with domain git: params, scope or payload the edge refuses (422)."""
    auth, headers, authed = draw(admin_auth(t, ok_share=0.85))
    label = draw(st.sampled_from(sorted(SYNC_BREAKERS)))
    fields = [("domain", '"git"'), *SYNC_BREAKERS[label]]
    body = obj_bytes(fields)
    if not sync_create_refused(body, t):
        auth, headers, authed = (
            "wrong key (body might be valid)",
            admin_headers(t, "wrong key"),
            False,
        )
    # The body is JSON: refused for its content (422) whatever the content type says (a
    # body FastAPI does not read as JSON is no object either), after the credentials (401).
    ctype, ctype_label = draw(content_type())
    return build(
        "POST /v1/syncs",
        auth,
        f"git: {label}" + (f", {ctype_label}" if ctype_label else ""),
        "POST",
        b"/v1/syncs",
        (),
        headers + ctype + draw(noise_headers()),
        body,
        must_refuse=True,
        expect=(422,) if authed else (401,),
        detail=shorten(body, 140),
    )


def git_family(t: Target) -> st.SearchStrategy[BadRequest]:
    """Seed 002's requests, weighted by how much each route has to get wrong."""
    weighted = (
        [trigger_request(t)] * 4
        + [progress_request(t)] * 3
        + [read_request(t)] * 2
        + [configure_request(t)] * 3
        + [release_write(t)] * 5
        + [release_other(t)] * 4
        + [git_sync_create(t)]
    )
    return st.sampled_from(weighted).flatmap(lambda strategy: strategy)
