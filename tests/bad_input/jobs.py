"""The v1 reads: GET /v1/syncs, GET /v1/syncs/{job_id} and its event stream."""

from __future__ import annotations

import functools

from hypothesis import strategies as st

from tests.bad_input.credentials import admin_auth
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.query import VALID_ISH, query_value
from tests.bad_input.request import BadRequest, Target, build, quoted, shorten

# "%s" stands for a random UUID; job_id reads each "%s-..." pattern in its own way.
JOB_IDS: dict[str, str] = {
    "not a UUID": "not-a-uuid",
    "zero": "0",
    "negative": "-1",
    "1e400": "1e400",
    "nil UUID": "00000000-0000-0000-0000-000000000000",
    "UUID in braces": "{%s}",
    "urn:uuid": "urn:uuid:%s",
    "UUID without dashes": "%s-nodash",
    "UUID plus a character": "%sa",
    "UUID uppercase": "%s-upper",
    "percent-encoded NUL": "%00",
    "percent-encoded 0xFF": "%FF",
    "superscript digits": "%C2%B2%C2%B3",
    "dot-dot": "..",
    "encoded dot-dot": "%2e%2e",
    "encoded slash": "abc%2Fdef",
    "null": "null",
    "10 KB": "a" * 10240,
    "SQL text": "1%27%20OR%20%271%27%3D%271",
    "Arabic-Indic digits": quoted("١٢٣").decode(),
    "random UUID (no such job)": "%s-random",
    "the seed job": "%s-seed",
}

LAST_EVENT_IDS: dict[str, bytes] = {
    "empty": b"",
    "blank": b"   ",
    "negative": b"-1",
    "zero": b"0",
    "fractional": b"1.5",
    "exponent": b"1e3",
    "hex": b"0x10",
    "raw byte 0xB2 (²)": b"\xb2",
    "digits with a raw 0xB3": b"1\xb3",
    "raw 0xB9 0xB2 (¹²)": b"\xb9\xb2",
    "Arabic-Indic digits (UTF-8)": "١٧".encode(),
    "fullwidth digits (UTF-8)": "１２".encode(),
    "30 digits": b"9" * 30,
    "above 2^63": str(2**63 + 1).encode(),
    "2^31": str(2**31).encode(),
    "5000 digits": b"9" * 5000,
    "digits and letters": b"12abc",
    "raw bytes 0xFF 0xFE": b"\xff\xfe",
    "8 KB": b"7" * 8192,
    "padded with spaces": b" 3 ",
    "JSON": b'{"id":1}',
}

# Odd values for the before and status filters: (label, encoded value).
ODD_BEFORE = [
    ("month 13", b"2026-13-01T00:00:00Z"),
    ("offset +99:00", b"2026-01-01T00:00:00%2B99:00"),
    ("year 0", b"0000-01-01"),
    ("year 10000", b"10000-01-01T00:00:00"),
    ("unix 1e20", b"100000000000000000000"),
    ("unix -1e20", b"-100000000000000000000"),
    ("leap second", b"2026-06-30T23:59:60Z"),
]
ODD_STATUS = [
    ("unknown status", b"done"),
    ("regex text", b"queued%7Crunning"),
    ("newline", b"queued%0A"),
]


@functools.cache
@st.composite
def job_id(draw: st.DrawFn, t: Target, seed_share: float = 0.2) -> tuple[bytes, str]:
    """(path segment, label)."""
    if draw(st.floats(0, 1)) < seed_share:
        return t.seed_job_id.encode(), "job id: the seed job"
    name = draw(st.sampled_from(sorted(JOB_IDS)))
    pattern = JOB_IDS[name]
    some = str(draw(st.uuids()))
    if pattern == "%s-nodash":
        value = some.replace("-", "")
    elif pattern == "%s-upper":
        value = some.upper()
    elif pattern == "%s-random":
        value = some
    elif pattern == "%s-seed":
        value = t.seed_job_id
    elif "%s" in pattern:
        value = quoted(pattern % some).decode()
    else:
        value = pattern
    return value.encode(), f"job id: {name}"


@st.composite
def sse_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET /v1/syncs/{job_id}/events, mostly with an odd Last-Event-ID."""
    segment, id_label = draw(job_id(t, seed_share=0.6))
    auth, headers, authed = draw(admin_auth(t, ok_share=0.8))
    label = id_label
    last_event_id = b""
    if draw(st.integers(0, 9)) < 8:
        name = draw(st.sampled_from(sorted(LAST_EVENT_IDS)))
        last_event_id = LAST_EVENT_IDS[name]
        headers = [*headers, (b"last-event-id", last_event_id)]
        label = f"{id_label}, Last-Event-ID: {name}"
    if draw(st.booleans()):
        headers.append(
            (
                b"accept",
                draw(st.sampled_from([b"text/event-stream", b"application/json", b"*/*;q=\xff"])),
            )
        )
    return build(
        "GET /v1/syncs/{job_id}/events",
        auth,
        label,
        "GET",
        b"/v1/syncs/" + segment + b"/events",
        (),
        headers + draw(noise_headers()),
        must_refuse=not authed,
        odd_if_ok="seed job" not in id_label,
        detail=f"/v1/syncs/{shorten(segment, 40)}/events {shorten(last_event_id, 40)}",
    )


@st.composite
def job_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET /v1/syncs/{job_id} with an odd or unknown job id."""
    segment, label = draw(job_id(t))
    auth, headers, authed = draw(admin_auth(t))
    query = draw(unknown_query()) if draw(st.booleans()) else []
    return build(
        "GET /v1/syncs/{job_id}",
        auth,
        label,
        "GET",
        b"/v1/syncs/" + segment,
        query,
        headers + draw(noise_headers()),
        must_refuse=not authed,
        odd_if_ok="seed job" not in label,
        detail=f"/v1/syncs/{shorten(segment, 60)}",
    )


def list_filter(draw: st.DrawFn, name: str) -> tuple[str, bytes]:
    """An odd value for one of GET /v1/syncs's filters: (label, encoded value)."""
    if name == "before" and draw(st.booleans()):
        return draw(st.sampled_from(ODD_BEFORE))
    if name == "domain" and draw(st.booleans()):
        return "65 characters", b"d" * 65
    if name == "status" and draw(st.booleans()):
        return draw(st.sampled_from(ODD_STATUS))
    raw, value_name = draw(query_value())
    return value_name, raw


@st.composite
def list_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET /v1/syncs with odd filters and unknown parameters."""
    auth, headers, authed = draw(admin_auth(t, ok_share=0.8))
    query: list[bytes] = []
    labels = []
    odd = False
    names = st.sets(st.sampled_from(["domain", "status", "before", "limit", "unknown"]), min_size=1)
    # sorted: a set's order changes with each process's string hashing, the seed's requests not
    for name in sorted(draw(names)):
        if name == "unknown":
            query += draw(unknown_query())
            labels.append("unknown parameters")
            continue
        value_name, raw = list_filter(draw, name)
        query.append(name.encode() + b"=" + raw)
        labels.append(f"{name}: {value_name}")
        odd = odd or (name in ("limit", "status") and value_name not in VALID_ISH)
    return build(
        "GET /v1/syncs",
        auth,
        ", ".join(sorted(labels)),
        "GET",
        b"/v1/syncs",
        query,
        headers + draw(noise_headers()),
        must_refuse=not authed,
        odd_if_ok=odd,
        detail=f"?{shorten(b'&'.join(query), 80)}",
    )
