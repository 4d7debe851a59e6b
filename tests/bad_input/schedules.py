"""/v1/schedules: list, create, read, change, delete and run, never a schedule made or changed."""

from __future__ import annotations

import re

from hypothesis import strategies as st

from tests.bad_input.bodies import arrives_whole, content_type, corrupted, frame, framing_for
from tests.bad_input.credentials import admin_auth, admin_headers
from tests.bad_input.jobs import job_id
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.query import query_value
from tests.bad_input.request import BadRequest, Target, build, shorten
from tests.bad_input.saas_answers import routed_path
from tests.bad_input.saas_sync import oversize
from tests.bad_input.saas_validity import schedule_create_refused, schedule_update_refused
from tests.bad_input.values import (
    KINDS,
    deep_value,
    obj_bytes,
    odd_value,
    text_of,
    unstorable_value,
)

PREFIX = b"/v1/schedules"
ONE = re.compile(rb"/v1/schedules/[^/]+(/run)?")
Fields = list[tuple[str, str]]
# One way each to make a schedule's body invalid: (field, JSON text); field '' drops the timer.
BREAKERS: dict[str, tuple[str, str]] = {
    "unknown domain": ("domain", '"nope"'),
    "push domain": ("domain", '"dictionary"'),
    "domain uppercase": ("domain", '"MODELS"'),
    "domain with a NUL": ("domain", '"models\\u0000"'),
    "domain 65 characters": ("domain", text_of("d" * 65)),
    "mode the domain lacks": ("mode", '"incremental"'),
    "mode unknown": ("mode", '"sometimes"'),
    "cron with 4 fields": ("cron", '"0 3 * *"'),
    "cron with 6 fields": ("cron", '"0 0 3 * * *"'),
    "cron minute 61": ("cron", '"61 * * * *"'),
    "cron letters": ("cron", '"a b c d e"'),
    "cron with a NUL": ("cron", '"0 3 * * \\u0000"'),
    "cron 201 characters": ("cron", text_of("0 3 * * " + "*" * 193)),
    "cron step 0": ("cron", '"*/0 * * * *"'),
    "interval 0": ("interval_seconds", "0"),
    "interval -1": ("interval_seconds", "-1"),
    "interval 366 days and 1 s": ("interval_seconds", str(366 * 86400 + 1)),
    "interval 2^63": ("interval_seconds", str(2**63)),
    "interval 1e400": ("interval_seconds", "1e400"),
    "interval 1.5": ("interval_seconds", "1.5"),
    "interval text": ("interval_seconds", '"hourly"'),
    "both timers": ("both", ""),
    "no timer": ("", ""),
    "unknown time zone": ("timezone", '"Mars/Olympus_Mons"'),
    "time zone path": ("timezone", '"../../../etc/passwd"'),
    "time zone 65 characters": ("timezone", text_of("Z" * 65)),
    "time zone with a NUL": ("timezone", '"UTC\\u0000"'),
    "name empty": ("name", '""'),
    "name 101 characters": ("name", text_of("n" * 101)),
    "name with a control character": ("name", '"a\\u0001b"'),
    "name a number": ("name", "7"),
    "scope empty": ("scope", '""'),
    "scope 201 characters": ("scope", text_of("s" * 201)),
    "params a list": ("params", "[1]"),
    "enabled a word": ("enabled", '"maybe"'),
    "unknown field": ("x_unknown", "1"),
}
PATCH_BREAKERS = (
    *[("name", "null"), ("params", "null"), ("enabled", "null"), ("timezone", "null")],
    *[("mode", "null")] * 3,
    *[("mode", '"incremental"'), ("domain", '"models"'), ("id", '"x"')],
)
FOCUS = ["breaker"] * 5 + ["odd value"] * 2 + ["unstorable params", "corrupted", "top level"]
FOCUS += ["framing", "oversize"]
DOMAIN_FILTERS = [
    ("65 characters", b"d" * 65),
    ("NUL", b"x%00"),
    ("control character", b"a%01"),
    ("an existing domain", b"models"),
    ("twice", b"a&domain=b"),
]


def fields_for(draw: st.DrawFn, t: Target) -> Fields:
    """A schedule's body, as (key, JSON text) pairs: mostly what a valid one has."""
    fields = [
        ("name", text_of(f"fuzz-{draw(st.integers(0, 10**6))}")),
        ("domain", draw(st.sampled_from(['"models"', '"saas"']))),
    ]
    fields.append(("cron", '"0 3 * * *"') if draw(st.booleans()) else ("interval_seconds", "3600"))
    for key, value in (("scope", text_of(t.app_key)), ("enabled", "false"), ("params", "{}")):
        if draw(st.booleans()):
            fields.append((key, value))
    return fields


def broken(fields: Fields, breaker: str) -> Fields:
    key, value = BREAKERS[breaker]
    timers = ("cron", "interval_seconds")
    if key == "":
        return [(k, v) for k, v in fields if k not in timers]
    if key == "both":
        kept = [(k, v) for k, v in fields if k not in timers]
        return [*kept, ("cron", '"0 3 * * *"'), ("interval_seconds", "60")]
    if key == "mode":
        fields = [(k, '"models"' if k == "domain" else v) for k, v in fields]
    return [*[(k, v) for k, v in fields if k != key], (key, value)]


def schedule_body(draw: st.DrawFn, t: Target, focus: str, patch: bool) -> tuple[bytes, str]:
    """A create (or, with ``patch``, change) body odd in the way ``focus`` says."""
    fields = fields_for(draw, t)
    if patch:
        fields = draw(st.lists(st.sampled_from(fields[2:] or fields[:1]), max_size=2))
    if focus == "breaker":
        if patch and draw(st.integers(0, 2)) > 0:
            key, value = draw(st.sampled_from(PATCH_BREAKERS))
            return obj_bytes([*fields, (key, value)]), f"{key} = {value}"
        name = draw(st.sampled_from(sorted(BREAKERS)))
        return obj_bytes(broken(fields, name)), name
    if focus == "odd value":
        key = draw(st.sampled_from(["name", "domain", "cron", "interval_seconds", "params", "x"]))
        value, what = draw(odd_value())
        kept = [(k, v) for k, v in fields if k != key]
        return obj_bytes([*kept, (key, value)]), f"{key} = {what}"
    if focus == "unstorable params":
        value, what = draw(unstorable_value())
        return obj_bytes([*fields, ("params", "{" + f'"x":{value}' + "}")]), f"params.x = {what}"
    if focus == "top level":
        value, what = draw(
            st.sampled_from(sorted(KINDS.items())).map(lambda kv: (kv[1], f"a JSON {kv[0]}"))
            | deep_value()
        )
        return value.encode(), f"body: {what}"
    body = obj_bytes(broken(fields, draw(st.sampled_from(sorted(BREAKERS)))))
    if focus == "corrupted":
        return draw(corrupted(body))
    return body, ""


@st.composite
def schedule_id(draw: st.DrawFn, t: Target, existing_share: float) -> tuple[bytes, str]:
    """(path segment, label): the existing schedule, or the job ids' odd and unknown ones."""
    roll = draw(st.floats(0, 1))
    if roll < existing_share:
        return t.schedule_id.encode(), "the existing schedule"
    if roll < existing_share + 0.3:
        return str(draw(st.uuids())).encode(), "an unknown schedule"
    segment, label = draw(job_id(t, seed_share=0.0))
    return segment, label.replace("job id", "schedule id")


@st.composite
def schedule_write(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /v1/schedules or PATCH /v1/schedules/{id}: a body that changes nothing."""
    patch = draw(st.booleans())
    focus = draw(st.sampled_from(FOCUS))
    body, label = schedule_body(draw, t, focus, patch)
    if focus == "oversize":
        body, framing = oversize(draw, body, t.max_body)
    else:
        framing = draw(framing_for(body, t.max_body, force=focus == "framing"))
    auth, headers, authed = draw(admin_auth(t, ok_share=0.85))
    if patch:
        segment, id_label = draw(schedule_id(t, existing_share=0.5))
        route, path = "PATCH /v1/schedules/{schedule_id}", PREFIX + b"/" + segment
        label = f"{id_label}, {label}"
    else:
        route, path, segment = "POST /v1/schedules", PREFIX, b""
    request = build(route, auth, label, route.split()[0], path, must_refuse=True)
    frame(request, framing, body, t.max_body)
    received = request.received()
    if authed and arrives_whole(framing):
        existing = segment == t.schedule_id.encode()
        if (not patch and not schedule_create_refused(received)) or (
            existing and not schedule_update_refused(received, t.schedule_domain)
        ):
            request.auth = "wrong key (body might be valid)"
            headers = admin_headers(t, "wrong key")
    ctype, ctype_label = draw(content_type())
    request.headers = headers + ctype + draw(noise_headers())
    request.label = ", ".join(x for x in (label, ctype_label, framing.label) if x) or "plain"
    request.detail = f"{shorten(path, 50)} {shorten(received, 100)}"
    return request


@st.composite
def schedule_other(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET /v1/schedules[?domain=], GET, DELETE or POST …/run of one: never the existing
    schedule deleted or run."""
    what = draw(st.sampled_from(["list", "list", "get", "get", "delete", "run"]))
    auth, headers, authed = draw(admin_auth(t, ok_share=0.75))
    segment, label = draw(schedule_id(t, existing_share=0.25))
    query: list[bytes] = []
    if what == "list":
        path, route, label = PREFIX, "GET /v1/schedules", "no filter"
        pick = draw(st.integers(0, 3))
        if pick == 0:
            raw, label = draw(query_value())
            query, label = [b"domain=" + raw], f"domain: {label}"
        elif pick == 1:
            name, raw = draw(st.sampled_from(DOMAIN_FILTERS))
            query, label = [b"domain=" + raw], f"domain: {name}"
    else:
        path = PREFIX + b"/" + segment + (b"/run" if what == "run" else b"")
        method = {"get": "GET", "delete": "DELETE", "run": "POST"}[what]
        route = f"{method} /v1/schedules/{{schedule_id}}" + ("/run" if what == "run" else "")
        if what != "get" and authed and segment == t.schedule_id.encode():
            auth, authed = "wrong key (the existing schedule)", False
            headers = admin_headers(t, "wrong key")
    if draw(st.integers(0, 4)) == 0:
        query += draw(unknown_query())
    body = b""
    if what in ("delete", "run") and draw(st.integers(0, 3)) == 0:
        body = draw(st.sampled_from([b"{}", b'{"enabled":true}', b"\xff", b"[" * 300]))
    headers = headers + draw(noise_headers())
    method = route.split()[0]
    request = build(route, auth, label, method, path, query, headers, body)
    request.must_refuse = what in ("delete", "run")
    request.detail = f"{shorten(path, 60)}?{shorten(b'&'.join(query), 60)}"
    if not authed and not body and (what == "list" or ONE.fullmatch(routed_path(path))):
        request.expect = (401,)  # credentials are checked before the path and the query
    return request
