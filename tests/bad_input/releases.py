"""Seed 002's releases (/api/v1/admin/releases): list, create, read, change, delete and their
tests, never a release made, changed or gone."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from tests.bad_input.bodies import Framing, content_type, corrupted, frame, framing_for
from tests.bad_input.git_rules import (
    ANSWERS,
    BRANCHES,
    body_verdict,
    path_segment,
    pin_auth,
    query_ok,
    refusal,
    release_create_check,
    release_of,
    release_patch_check,
    release_verdict,
    routed_parts,
    unauthenticated_body,
    wrong_pin,
)
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.query import query_value
from tests.bad_input.request import BadRequest, Target, build, quoted, shorten
from tests.bad_input.saas_sync import oversize
from tests.bad_input.values import KINDS, deep_value, obj_bytes, odd_value, text_of
from tests.raw_http import Headers

PREFIX = b"/api/v1/admin/releases"
ONE = "/api/v1/admin/releases/{release_id}"
Fields = list[tuple[str, str]]
# Path segments for {release_id}: (label -> template); {branch} and {plain} are the stack's
# releases, {rand} an id no release has. Several read as one of the releases (FastAPI's
# integers take signs, blanks, underscores and '.0').
RELEASE_SEGMENTS: dict[str, str] = {
    "the release with a branch": "{branch}",
    "the release without a branch": "{plain}",
    "the branch release, leading zeros": "000{branch}",
    "the branch release, '+' sign": "+{branch}",
    "the branch release as a decimal": "{branch}.0",
    "the branch release padded with spaces": "%20{branch}%20",
    "the branch release and a newline": "{branch}%0A",
    "the other release, leading zero": "0{plain}",
    "the other release as a decimal": "{plain}.0",
    "an unknown release": "{rand}",
    "zero": "0",
    "-0": "-0",
    "negative": "-1",
    "int4 max": str(2**31 - 1),
    "2^31": str(2**31),
    "2^63": str(2**63),
    "2^64+1": str(2**64 + 1),
    "30 digits": "9" * 30,
    "4300 digits": "9" * 4300,
    "5000 digits": "9" * 5000,
    "underscores": "1_000_000",
    "fractional": "1.5",
    "exponent": "1e3",
    "hex": "0x1F",
    "letters": "abc",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "true": "true",
    "null": "null",
    "percent-encoded NUL": "%00",
    "percent-encoded 0xFF": "%FF",
    "superscript ²": "%C2%B2",
    "Arabic-Indic digits": quoted("١٢").decode(),
    "fullwidth digits": quoted("１２").decode(),
    "dot-dot": "..",
    "encoded dot-dot": "%2e%2e",
    "SQL text": "1%20OR%201%3D1",
    "10 KB": "a" * 10240,
    "JSON": quoted('{"id":1}').decode(),
    "encoded slashes": "1%2Fx%2Fy",
}
FEATURED_SEGMENTS = (
    "the release with a branch",
    "the release without a branch",
    "an unknown release",
    "5000 digits",
    "negative",
    "2^31",
    "letters",
)
# Names the api must refuse: (label, JSON text).
NAMES: dict[str, str] = {
    "name empty": '""',
    "name 201 characters": text_of("n" * 201),
    "name a space": '" "',
    "name with a leading space": '" x"',
    "name with a trailing space": '"x "',
    "name with a trailing newline": '"x\\n"',
    "name with a trailing NBSP": '"x\\u00a0"',
    "name with a tab": '"a\\tb"',
    "name with a NUL": '"a\\u0000b"',
    "name with U+0001": '"a\\u0001b"',
    "name with DEL": '"a\\u007fb"',
    "name a lone surrogate": '"\\ud800"',
    "name null": "null",
    "name a number": "7",
    "name a list": '["x"]',
    "name an object": '{"a":1}',
}
# The branch names the brief names, and the one git refuses that the api once took: drawn
# more often than the rest.
FEATURED_BRANCHES = (
    "branch -x",
    "branch a..b",
    "branch refs/../x",
    "branch with U+0001",
    "branch 300 characters",
    "branch HEAD",
)
ACTIVE: dict[str, str] = {
    "active a word": '"maybe"',
    "active 2": "2",
    "active null": "null",
    "active a list": "[true]",
    "active empty": '""',
    "active 'yes' (pydantic reads it as true)": '"yes"',
}
EXTRA_KEYS: dict[str, tuple[str, str]] = {
    "unknown field": ("x_unknown", "1"),
    "an id": ("id", "5"),
    "an origin": ("origin", '"config"'),
    "created_at": ("created_at", '"2026-01-01T00:00:00"'),
    "Name capitalised": ("Name", '"x"'),
    "gitBranch": ("gitBranch", '"main"'),
}
FOCUS = ["name"] * 3 + ["branch"] * 4 + ["active", "extra", "duplicate", "odd value"]
FOCUS += ["corrupted", "top level", "framing", "oversize"]
TESTS_QUERY: dict[str, tuple[str, bytes]] = {
    "limit 0": ("limit", b"0"),
    "limit 100001": ("limit", b"100001"),
    "limit 100000": ("limit", b"100000"),
    "limit -1": ("limit", b"-1"),
    "offset -1": ("offset", b"-1"),
    "offset 10000001": ("offset", b"10000001"),
    "offset 10000000": ("offset", b"10000000"),
    "file empty": ("file", b""),
    "file with a NUL": ("file", b"a%00b"),
    "file 1025 characters": ("file", b"f" * 1025),
    "file 1024 characters": ("file", b"f" * 1024),
    "file a path": ("file", b"tests/test_x.py"),
    "file ../": ("file", b"..%2F..%2Fetc%2Fpasswd"),
    "file a raw 0xFF (percent-encoded)": ("file", b"%FF"),
    "file SQL text": ("file", b"x%27%20OR%20%271%27%3D%271"),
    "limit twice, the last bad": ("limit", b"5&limit=x"),
    "limit twice, the last good": ("limit", b"x&limit=5"),
}


@st.composite
def release_segment(draw: st.DrawFn, t: Target) -> tuple[bytes, str]:
    """(path segment, label) for {release_id}."""
    names = FEATURED_SEGMENTS if draw(st.integers(0, 2)) == 0 else sorted(RELEASE_SEGMENTS)
    name = draw(st.sampled_from(names))
    segment = (
        RELEASE_SEGMENTS[name]
        .replace("{branch}", str(t.branch_release_id))
        .replace("{plain}", str(t.plain_release_id))
        .replace("{rand}", str(draw(st.integers(1000, 2**31 - 1))))
    )
    return segment.encode(), f"release id: {name}"


def id_verdict(target: bytes, index: int, parts: int, t: Target) -> tuple[int | None, str]:
    """(release id, verdict) of the {release_id} segment at ``index`` of ``target``,
    ``parts`` the number of segments its route has; verdict '' for a stack's release."""
    if routed_parts(target) != parts:
        return None, "no route"
    release_id = release_of(path_segment(target, index))
    return release_id, release_verdict(release_id, t)


@st.composite
def bodyless(draw: st.DrawFn, t: Target, read_free_oversize: bool) -> tuple[bytes, Framing]:
    """What a request to a route that reads no body carries: mostly nothing, sometimes a
    small body, a chunked one, or one over the limit (declared or sent; a chunked one only
    with ``read_free_oversize``, since the route answers without reading it)."""
    kind = draw(st.sampled_from(["none"] * 12 + ["small"] * 3 + ["chunked", "oversize"]))
    if kind == "none":
        return b"", Framing()
    body = draw(st.sampled_from([b"{}", b'{"release_id":1}', b"\xff\xfe", b"[" * 300, b"x"]))
    if kind == "small":
        return body, Framing()
    if kind == "chunked":
        return body, Framing("chunked", chunks=(2,), label="chunked body")
    padded, framing = oversize(draw, body, t.max_body)
    if framing.kind == "chunked" and not read_free_oversize:
        padded = body + b" " * (t.max_body + 1)
        framing = Framing(label="oversize body, honest Content-Length")
    return padded, framing


def bodyless_oversize(framing: Framing) -> bool:
    """Whether the api refuses the request for its size before any route (413)."""
    return framing.label.startswith("oversize") and framing.kind != "chunked"


def statuses(verdicts: tuple[str, ...]) -> tuple[int, ...]:
    """The statuses of ANSWERS for these verdicts ('' being 'fine')."""
    return tuple(sorted({s for v in verdicts for s in ANSWERS[v or "fine"]}))


def bodyless_statuses(
    verdict: str, framing: Framing, authed: bool, headers: Headers
) -> tuple[int, ...]:
    """What a route that reads no body answers: a declared size over the limit first (the
    middleware), then an unknown path (the router), then the credentials, then the rest."""
    if bodyless_oversize(framing):
        return (413,)
    if verdict == "no route":
        return (404,)
    return statuses((verdict,)) if authed else (refusal(headers),)


def release_fields(draw: st.DrawFn, t: Target, patch: bool) -> Fields:
    """A release's body as (key, JSON text) pairs: mostly what a valid one has."""
    name = draw(st.sampled_from([f"fuzz-{draw(st.integers(0, 10**6))}", "7.0.0.0"]))
    fields = [("name", text_of(name))]
    if draw(st.booleans()):
        fields.append(("git_branch", draw(st.sampled_from(['"main"', '"release/7.0"', "null"]))))
    if draw(st.booleans()):
        fields.append(("active", draw(st.sampled_from(["true", "false"]))))
    if patch:
        fields = draw(st.lists(st.sampled_from(fields), max_size=2, unique=True))
    return fields


def release_body(draw: st.DrawFn, t: Target, focus: str, patch: bool) -> tuple[bytes, str]:
    """A create (or, with ``patch``, change) body odd in the way ``focus`` says."""
    fields = release_fields(draw, t, patch)

    def put(key: str, value: str) -> Fields:
        return [*[(k, v) for k, v in fields if k != key], (key, value)]

    if patch and focus in ("name", "active") and draw(st.booleans()):
        return obj_bytes(put(focus, "null")), f"{focus} null (a change cannot clear it)"
    if focus == "name":
        label = draw(st.sampled_from(sorted(NAMES)))
        return obj_bytes(put("name", NAMES[label])), label
    if focus == "branch":
        label = draw(
            st.sampled_from(FEATURED_BRANCHES if draw(st.booleans()) else sorted(BRANCHES))
        )
        return obj_bytes(put("git_branch", BRANCHES[label])), label
    if focus == "active":
        label = draw(st.sampled_from(sorted(ACTIVE)))
        return obj_bytes(put("active", ACTIVE[label])), label
    if focus == "extra":
        label = draw(st.sampled_from(sorted(EXTRA_KEYS)))
        return obj_bytes([*fields, EXTRA_KEYS[label]]), label
    if focus == "duplicate":
        which = draw(st.sampled_from([0, 1]))
        name = t.release_names[which]
        label = ("name of the release with a branch", "name of the other release")[which]
        if draw(st.booleans()):
            return obj_bytes([*put("name", text_of(name)), ("name", '"x"')]), f"{label}, twice"
        return obj_bytes(put("name", text_of(name))), label
    if focus == "odd value":
        key = draw(st.sampled_from(["name", "git_branch", "active", "x"]))
        value, what = draw(odd_value())
        return obj_bytes(put(key, value)), f"{key} = {what}"
    if focus == "top level":
        value, what = draw(
            st.sampled_from(sorted(KINDS.items())).map(lambda kv: (kv[1], f"a JSON {kv[0]}"))
            | deep_value()
        )
        return value.encode(), f"body: {what}"
    label = draw(st.sampled_from(sorted(BRANCHES)))
    body = obj_bytes(put("git_branch", BRANCHES[label]))
    if focus == "corrupted":
        return draw(corrupted(body))
    return body, label


def finish_body(
    draw: st.DrawFn,
    t: Target,
    request: BadRequest,
    body: bytes,
    focus: str,
    verdict: Callable[[BadRequest], tuple[str, ...]],
) -> Framing:
    """Frame ``body``, give ``request`` credentials (never valid ones when ``verdict``
    says it might write) and the statuses it must get."""
    if focus == "oversize":
        body, framing = oversize(draw, body, t.max_body)
    else:
        framing = draw(framing_for(body, t.max_body, force=focus == "framing"))
    frame(request, framing, body, t.max_body)
    auth, headers, authed = draw(pin_auth(t, ok_share=0.8))
    ctype, ctype_label = draw(content_type())
    noise = draw(noise_headers())
    request.headers = headers + ctype + noise
    whole = framing.kind in ("length", "chunked", "short", "long")
    verdicts = verdict(request)
    # A PATCH that changes nothing (an empty object) is answered 200 and writes nothing.
    request.must_refuse = request.must_refuse and "fine" not in verdicts
    if authed and (not whole or "" in verdicts) and not framing.label.startswith("oversize"):
        auth, headers = wrong_pin(t)
        authed = False
        request.headers = headers + ctype + noise
    request.auth = auth
    request.label = ", ".join(x for x in (request.label, ctype_label, framing.label) if x)
    request.detail = f"{shorten(request.target, 50)} {shorten(request.received(), 100)}"
    if framing.label.startswith("oversize"):
        request.expect = (413,)
    elif whole:
        request.expect = statuses(verdicts) if authed else unauthenticated_body(request)
    return framing


@st.composite
def release_write(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /api/v1/admin/releases or PATCH …/{release_id}: a body that changes nothing."""
    patch = draw(st.integers(0, 2)) == 0
    focus = draw(st.sampled_from(FOCUS))
    body, label = release_body(draw, t, focus, patch)
    if patch:
        segment, id_label = draw(release_segment(t))
        route, path = f"PATCH {ONE}", PREFIX + b"/" + segment
        label = f"{id_label}, {label}"
    else:
        route, path = "POST /api/v1/admin/releases", PREFIX
    request = build(route, "", label, route.split()[0], path, must_refuse=True)

    def verdict(r: BadRequest) -> tuple[str, ...]:
        if not patch:
            return body_verdict(r, release_create_check(t))
        release_id, known = id_verdict(r.target, 5, 6, t)
        if known == "no route":
            return (known,)
        return body_verdict(r, release_patch_check(t, release_id))

    framing = finish_body(draw, t, request, body, focus, verdict)
    if patch and id_verdict(request.target, 5, 6, t)[1] == "no route":
        # No route reads the body: only a declared size over the limit comes first.
        request.expect = (413,) if bodyless_oversize(framing) else (404,)
    return request


@st.composite
def release_other(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET /api/v1/admin/releases, GET or DELETE …/{release_id}, GET …/{release_id}/tests:
    no release ever deleted."""
    what = draw(
        # GET …/tests has the most parameters: it gets the largest share.
        st.sampled_from(["list", "list", "get", "get", "delete", "delete"] + ["tests"] * 4)
    )
    auth, headers, authed = draw(pin_auth(t, ok_share=0.75))
    query: list[bytes] = []
    label = "list"
    verdict = ""
    if what == "list":
        route, path = "GET /api/v1/admin/releases", PREFIX
        if draw(st.booleans()):
            query = draw(unknown_query())
            label = "unknown parameters"
    else:
        segment, label = draw(release_segment(t))
        path = PREFIX + b"/" + segment + (b"/tests" if what == "tests" else b"")
        method = "DELETE" if what == "delete" else "GET"
        route = f"{method} {ONE}" + ("/tests" if what == "tests" else "")
        if what == "tests":
            query, labels = tests_query(draw)
            label = ", ".join([label, *labels])
        full = path + b"?" + b"&".join(query)
        _, verdict = id_verdict(full, 5, 7 if what == "tests" else 6, t)
        if what == "tests" and verdict in ("", "unknown release") and not query_ok(full, "tests"):
            verdict = "not the schema"
        if what == "delete" and not verdict and authed:
            auth, authed = "wrong PIN (an existing release)", False
            headers = wrong_pin(t)[1]
    body, framing = draw(bodyless(t, read_free_oversize=what != "delete" or not authed))
    request = build(route, auth, label, route.split()[0], path, query)
    frame(request, framing, body, t.max_body)
    request.must_refuse = what == "delete" or not authed
    request.headers = headers + draw(noise_headers())
    request.label = ", ".join(x for x in (label, framing.label) if x)
    request.detail = f"{shorten(path, 60)}?{shorten(b'&'.join(query), 60)}"
    request.expect = bodyless_statuses(verdict, framing, authed, request.headers)
    return request


def tests_query(draw: st.DrawFn) -> tuple[list[bytes], list[str]]:
    """Odd values for GET …/tests's file, limit and offset."""
    query: list[bytes] = []
    labels: list[str] = []
    for _ in range(draw(st.integers(0, 2))):
        pick = draw(st.integers(0, 3))
        if pick < 2:
            label = draw(st.sampled_from(sorted(TESTS_QUERY)))
            name, raw = TESTS_QUERY[label]
        elif pick == 2:
            name = draw(st.sampled_from(["limit", "offset"]))
            raw, value = draw(query_value())
            label = f"{name}: {value}"
        else:
            query += draw(unknown_query())
            labels.append("unknown parameters")
            continue
        query.append(name.encode() + b"=" + raw)
        labels.append(label)
    return query, labels
