"""POST /v1/syncs: odd values where they reach the database, or a body the schema refuses."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.bad_input.bodies import arrives_whole, content_type, corrupted, frame, framing_for
from tests.bad_input.credentials import admin_auth
from tests.bad_input.noise import noise_headers
from tests.bad_input.request import BadRequest, Target, build, shorten
from tests.bad_input.validity import SYNC_CREATE_FIELDS, sync_create_refused
from tests.bad_input.values import (
    KINDS,
    obj,
    obj_bytes,
    odd_value,
    ordinary_entry,
    text_of,
    unstorable_value,
)

Fields = list[tuple[str, str]]  # (key, JSON text)

CREATE_FOCUS = ["new params"] * 2 + ["reused params", "payload", "field", "corrupted", "schema"]
SCHEMA_BREAKERS: list[Fields] = [
    [("domain", '"nope"')],
    [("domain", '"models"'), ("mode", '"sometimes"')],
    [("domain", '"models"'), ("unknown", "1")],
    [("domain", '""')],
    [("domain", text_of("d" * 65))],
    [("domain", '"models"'), ("payload", "{}")],
    [("domain", '"dictionary"')],
    [("domain", '"dictionary"'), ("payload", '{"lang":"en"}')],
    [("domain", '"models"'), ("scope", '""')],
    [("domain", '"models"'), ("request_id", text_of("r" * 201))],
    [("domain", '"DICTIONARY"')],
    [("domain", '"models"'), ("domain", '"nope"')],
    [],
]


def odd_payload(draw: st.DrawFn, t: Target) -> tuple[str, str, str]:
    """A dictionary payload with one odd value in an entry, a field or as a whole:
    (payload JSON text, where, label of the value)."""
    value, what = draw(odd_value())
    where = draw(st.sampled_from(["entry", "field", "payload"]))
    if where == "entry":
        entry = obj([("en", '"w"'), ("frequencyRank", value)])
        fields = [("source", text_of(t.push_source)), ("lang", '"en"'), ("entries", f"[{entry}]")]
        return obj(fields), where, what
    if where == "field":
        fields = [
            ("source", text_of(t.push_source)),
            ("lang", value),
            ("entries", "[" + ordinary_entry("w") + "]"),
        ]
        return obj(fields), where, what
    return value, where, what


def create_fields(draw: st.DrawFn, t: Target, focus: str, batch: str) -> tuple[Fields, str]:
    """The body's fields for ``focus``, and its label."""
    seed_id = ("request_id", text_of(t.seed_request_id))
    if focus == "new params":
        # A new request whose params the api cannot store: it must be refused (4xx).
        value, what = draw(unstorable_value())
        # (The dictionary domain: a models job, if one got through, would hold back the
        # next models requests with 409s and hide what they would get.)
        fields = [("domain", '"dictionary"'), ("payload", batch), ("params", obj([("x", value)]))]
        return fields, f"params.x = {what} (new request)"
    if focus == "reused params":
        value, what = draw(odd_value())
        params = obj([("x", value)])
        fields = [seed_id, ("domain", '"dictionary"'), ("payload", batch), ("params", params)]
        return fields, f"params.x = {what} (the seed's request_id)"
    if focus == "payload":
        payload, where, what = odd_payload(draw, t)
        fields = [seed_id, ("domain", '"dictionary"'), ("payload", payload)]
        return fields, f"payload {where} = {what} (the seed's request_id)"
    if focus == "field":
        name = draw(st.sampled_from(sorted(SYNC_CREATE_FIELDS)))
        value, what = draw(
            st.sampled_from(sorted(KINDS.items())).map(lambda kv: (kv[1], f"a JSON {kv[0]}"))
            | odd_value()
        )
        base = {"domain": '"models"', "request_id": text_of(t.seed_request_id)}
        base[name] = value
        return list(base.items()), f"{name} = {what}"
    # "schema"; "corrupted" draws these too, then corrupts another body (the wasted draw
    # keeps the fixed seed's requests as they were)
    fields = draw(st.sampled_from(SCHEMA_BREAKERS))
    return fields, "schema: " + (", ".join(f"{k}={shorten(v, 20)}" for k, v in fields) or "{}")


@st.composite
def create_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /v1/syncs: odd values where they reach the database, or a body the schema refuses."""
    auth, headers, authed = draw(admin_auth(t, ok_share=0.85))
    entry = ordinary_entry(f"v1-{draw(st.integers(0, 10**6))}")
    batch = obj([("source", text_of(t.push_source)), ("lang", '"en"'), ("entries", f"[{entry}]")])
    focus = draw(st.sampled_from(CREATE_FOCUS))
    fields, label = create_fields(draw, t, focus, batch)
    body = obj_bytes(fields)
    if focus == "corrupted":
        seed_models = [("request_id", text_of(t.seed_request_id)), ("domain", '"models"')]
        body, label = draw(corrupted(obj(seed_models).encode()))
    ctype, ctype_label = draw(content_type())
    framing = draw(framing_for(body, t.max_body))
    label = ", ".join(x for x in (label, ctype_label, framing.label) if x)
    request = build(
        "POST /v1/syncs",
        auth,
        label,
        "POST",
        b"/v1/syncs",
        (),
        headers + ctype + draw(noise_headers()),
        must_refuse=True,
    )
    frame(request, framing, body, t.max_body)
    if (
        authed
        and focus != "new params"
        and arrives_whole(framing)
        and not sync_create_refused(request.received(), t)
    ):
        request.headers = [(b"authorization", b"Bearer wrong"), *ctype]
        request.auth = "wrong key (body might be valid)"
    request.detail = shorten(request.received(), 140)
    return request
