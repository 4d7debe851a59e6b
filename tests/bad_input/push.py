"""The sender's routes: signed pushes to /api/internal/dictionary-upserts and their status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from hashlib import sha256

from hypothesis import strategies as st

from schemas.signing import EMPTY_BODY_SHA256
from tests.bad_input.bodies import arrives_whole, content_type, corrupted, frame, framing_for
from tests.bad_input.credentials import admin_auth, server_view, signature_headers, signing_flaw
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.query import query_value
from tests.bad_input.request import BadRequest, Target, build, quoted, shorten
from tests.bad_input.validity import push_refused
from tests.bad_input.values import obj, obj_bytes, odd_value, ordinary_entry, text_of
from tests.raw_http import Headers

PUSH_ROUTE = "POST /api/internal/dictionary-upserts"
PUSH_PATH = b"/api/internal/dictionary-upserts"
STATUS_PATH = b"/api/internal/dictionary-upserts/status"
STATUS_ROUTE = "GET /api/internal/dictionary-upserts/status"

ENTRY_FIELDS = ("frequencyRank", "level", "ru", "en", "ipaUk", "an unknown field")
PUSH_FIELDS = ("requestId", "source", "lang", "payloadVersion", "actorUsername", "entries")
# What each push gets wrong first; weighted.
PUSH_FOCUS = (
    ["entry value"] * 4
    + ["field value"] * 2
    + ["corrupted"] * 2
    + ["signature"] * 4
    + ["framing", "top level", "invalidator"]
)
# What keeps the batch from being valid, whatever else is odd about it.
PUSH_INVALIDATORS = (
    "source not accepted",
    "lang not a language code",
    "request id header differs",
    "entries over the limit",
    "an entry that is no object",
    "empty entries",
    "the seed's requestId (conflict)",
    "entries missing",
    "actorUsername too long",
)
SIGNING_FLAWS = ["bad timestamp"] * 4 + ["bad signature"] * 2 + ["missing", "unsigned", "odd id"]
STATUS_AUTH = (
    ["admin"] * 2 + ["signed"] * 2 + ["bad timestamp"] * 3 + ["bad signature", "signed other id"]
)


@dataclass
class PushBatch:
    """A batch as pieces of JSON text, so one piece can be made odd as it is."""

    fields: list[tuple[str, str]]  # (key, JSON text), in order; entries added last
    entries: list[str]
    signed_id: bytes  # what x-sync-request-id will say

    def replace(self, key: str, value: str) -> None:
        self.fields = [(k, value if k == key else v) for k, v in self.fields]

    def body(self, with_entries: bool) -> bytes:
        fields = list(self.fields)
        if with_entries and not any(k == "entries" for k, _ in fields):
            fields.append(("entries", "[" + ",".join(self.entries) + "]"))
        return obj_bytes(fields)


@dataclass
class PushSigning:
    """The signature headers a push carries, and what the report says of them."""

    headers: Headers
    auth: str
    label: str  # '' when the signature headers are right
    timestamp: bytes
    request_id: bytes


def make_odd(draw: st.DrawFn, focus: str, batch: PushBatch) -> tuple[str, str]:
    """Put one odd value into an entry or a batch field: (label, where)."""
    if focus == "entry value":
        name = draw(st.sampled_from(ENTRY_FIELDS))
        value, what = draw(odd_value())
        key = "x-unknown" if name == "an unknown field" else name
        index = draw(st.integers(0, len(batch.entries) - 1))
        batch.entries[index] = obj(
            [("en", '"word"'), (key, value)] if key != "en" else [(key, value)]
        )
        return f"entry value: {what}", f"entry.{key}"
    if focus == "field value":
        name = draw(st.sampled_from([*PUSH_FIELDS, "an unknown field"]))
        value, what = draw(odd_value())
        if name == "entries":
            batch.entries = []
            batch.fields.append(("entries", value))
        elif name == "an unknown field":
            batch.fields.append(("x-unknown", value))
        else:
            batch.replace(name, value)
        return f"batch field value: {what}", name
    return "", ""


def invalidate(draw: st.DrawFn, t: Target, batch: PushBatch) -> str:
    """Make the batch invalid in one of PUSH_INVALIDATORS ways; returns which."""
    invalidator = draw(st.sampled_from(PUSH_INVALIDATORS))
    if invalidator == "source not accepted":
        batch.replace("source", '"not-the-sender"')
    elif invalidator == "lang not a language code":
        batch.replace("lang", draw(st.sampled_from(['"EN"', '"e"', '"engl"', '"en-US"', '"ру"'])))
    elif invalidator == "request id header differs":
        batch.signed_id = f"other-{uuid.uuid4()}".encode()
    elif invalidator == "entries over the limit":
        missing = t.max_entries + 1 - len(batch.entries)
        batch.entries += [ordinary_entry(f"x{i}") for i in range(missing)]
    elif invalidator == "an entry that is no object":
        batch.entries.append(draw(st.sampled_from(['"word"', "1", "null", "[]"])))
    elif invalidator == "empty entries":
        batch.entries = []
    elif invalidator == "the seed's requestId (conflict)":
        batch.replace("requestId", text_of(t.seed_request_id))
        batch.signed_id = t.seed_request_id.encode()
    elif invalidator == "actorUsername too long":
        batch.replace("actorUsername", text_of("a" * 201))
    return invalidator


def sign_push(
    draw: st.DrawFn, t: Target, flawed: bool, body: bytes, request_id: bytes, batch_id: str
) -> PushSigning:
    """The signature headers for ``body``; when ``flawed``, wrong in one way."""
    secret = draw(st.sampled_from(t.push_secrets))
    mode = draw(st.sampled_from(SIGNING_FLAWS)) if flawed else "good"
    flaw = signing_flaw(draw, mode)
    auth, label = flaw.auth, flaw.label
    if mode == "odd id":
        name, request_id = draw(
            st.sampled_from(
                [
                    ("raw non-ASCII bytes", b"fuzz-\xff\xb2-" + batch_id.encode()),
                    ("UTF-8 text", ("ид-" + batch_id).encode()),
                    ("300 characters", b"r" * 300),
                    ("spaces inside", b"a b c"),
                ]
            )
        )
        label = f"x-sync-request-id: {name}"
    body_hash = sha256(body).hexdigest()
    headers = signature_headers(secret, flaw.timestamp, request_id, body_hash, flaw.bad_signature)
    if mode == "missing":
        drop = draw(st.sets(st.sampled_from([h for h, _ in headers]), min_size=1))
        headers = [(h, v) for h, v in headers if h not in drop]
        auth = "signature headers missing"
        label = "missing " + ", ".join(sorted(h.decode() for h in drop))
    elif mode == "unsigned":
        headers, auth, label = [], "unsigned", "no signature"
    return PushSigning(headers, auth, label, flaw.timestamp, request_id)


@st.composite
def push_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /api/internal/dictionary-upserts: mostly correctly signed, never a valid batch."""
    rid = f"fuzz-{draw(st.uuids())}"
    batch = PushBatch(
        fields=[
            ("requestId", text_of(rid)),
            ("source", text_of(t.push_source)),
            ("payloadVersion", '"1"'),
            ("lang", '"en"'),
            ("actorUsername", '"fuzz"'),
        ],
        entries=[ordinary_entry(f"w{i}") for i in range(draw(st.integers(1, t.max_entries)))],
        signed_id=rid.encode(),
    )
    focus = draw(st.sampled_from(PUSH_FOCUS))
    label, where = make_odd(draw, focus, batch)
    invalidator = invalidate(draw, t, batch)
    body = batch.body(with_entries=invalidator != "entries missing")
    if focus == "top level":
        body, label = draw(
            st.sampled_from(
                [
                    (b"[" + body + b"]", "body: an array"),
                    (b'"' + rid.encode() + b'"', "body: a string"),
                    (b"null", "body: null"),
                    (b"1e1000000", "body: number 1e1000000"),
                    (b"[" * 300 + b"]" * 300, "body: 300 nested arrays"),
                ]
            )
        )
    elif focus == "corrupted":
        body, label = draw(corrupted(body))
    framing = draw(framing_for(body, t.push_max_body, force=focus == "framing"))
    if focus == "framing" or (framing.label and not label):
        label = framing.label
    elif framing.label:
        label = f"{label}; {framing.label}"
    request = BadRequest(PUSH_ROUTE, "signed", label, b"POST", PUSH_PATH, must_refuse=True)
    frame(request, framing, body, t.push_max_body)
    if framing.kind == "declared":
        request.body = b"{" * min(len(body), 512)
    received = request.received()
    if arrives_whole(framing) and not push_refused(received, batch.signed_id, t):
        batch.signed_id = f"other-{uuid.uuid4()}".encode()  # the signed id is not the batch's
        invalidator = "request id header differs"
    signing = sign_push(draw, t, focus == "signature", received, batch.signed_id, rid)
    ctype, ctype_label = draw(content_type())
    request.headers = signing.headers + ctype + draw(noise_headers())
    request.auth = signing.auth
    request.label = signing.label or label or ctype_label or f"invalid batch: {invalidator}"
    request.detail = (
        f"[{where or 'batch'}; {invalidator}] ts={shorten(signing.timestamp, 24)} "
        f"rid={shorten(signing.request_id, 30)} body={shorten(received, 90)}"
    )
    return request


def status_credentials(
    draw: st.DrawFn, t: Target, how: str, request_id: bytes
) -> tuple[str, Headers, bool, str]:
    """Credentials of one of STATUS_AUTH: (auth, headers, must refuse, label or '')."""
    if how == "admin":
        auth, headers, authed = draw(admin_auth(t))
        return auth, headers, not authed, ""
    secret = draw(st.sampled_from(t.push_secrets))
    flaw = signing_flaw(draw, how)
    auth = flaw.auth
    if how == "signed other id":
        request_id = b"other-id"
        auth = "signed for another id"
    headers = signature_headers(
        secret, flaw.timestamp, request_id, EMPTY_BODY_SHA256, flaw.bad_signature
    )
    return auth, headers, how != "signed", flaw.label


@st.composite
def status_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET /api/internal/dictionary-upserts/status: query, admin or the sender's signature."""
    choice = draw(st.sampled_from(["seed", "unknown", "odd", "missing", "long", "twice"]))
    # The uuid is drawn whatever the choice: the fixed seed's requests depend on that.
    rid_text = {
        "seed": t.seed_request_id,
        "unknown": f"nope-{draw(st.uuids())}",
        "long": "r" * 201,
    }.get(choice, "x")
    query = [b"requestId=" + quoted(rid_text)]
    label = f"requestId: {choice}"
    if choice == "odd":
        raw, name = draw(query_value())
        query = [b"requestId=" + raw]
        label = f"requestId: {name}"
        rid_text = server_view(raw)
    elif choice == "missing":
        query = []
    elif choice == "twice":
        query = [b"requestId=a", b"requestId=" + quoted(t.seed_request_id)]
    if draw(st.booleans()):
        query = [*query, *draw(unknown_query())]
    how = draw(st.sampled_from(STATUS_AUTH))
    rid = rid_text.encode("utf-8", "surrogatepass")
    auth, headers, refuse, auth_label = status_credentials(draw, t, how, rid)
    return build(
        STATUS_ROUTE,
        auth,
        auth_label or label,
        "GET",
        STATUS_PATH,
        query,
        headers + draw(noise_headers()),
        must_refuse=refuse,
        odd_if_ok=choice not in ("seed", "twice"),
        detail=f"?{shorten(b'&'.join(query), 70)}",
    )
