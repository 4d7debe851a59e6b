"""GET /v1/alerts: odd status and limit filters, unknown parameters, wrong credentials."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.bad_input.credentials import admin_auth
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.query import VALID_ISH, query_value
from tests.bad_input.request import BadRequest, Target, build, quoted, shorten

ROUTE = "GET /v1/alerts"
PATH = b"/v1/alerts"
# Odd values of the status filter: (label, encoded value).
ODD_STATUS = [
    ("uppercase", b"OPEN"),
    ("unknown", b"closed"),
    ("empty", b""),
    ("with a NUL", b"open%00"),
    ("trailing space", b"open%20"),
    ("twice", b"open&status=resolved"),
    ("both, comma-separated", b"open,resolved"),
    ("regex text", b"open%7Cresolved"),
    ("Cyrillic", quoted("открыт")),
    ("10 KB", b"o" * 10240),
]
LIMITS = [("0", b"0"), ("501", b"501"), ("500", b"500"), ("1", b"1"), ("twice", b"1&limit=x")]


@st.composite
def alerts_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET /v1/alerts with odd filters."""
    auth, headers, authed = draw(admin_auth(t, ok_share=0.8))
    query: list[bytes] = []
    labels = []
    odd = False
    # sorted: a set's order changes with each process's string hashing, the seed's requests not
    for name in sorted(draw(st.sets(st.sampled_from(["status", "limit", "unknown"]), min_size=1))):
        if name == "unknown":
            query += draw(unknown_query())
            labels.append("unknown parameters")
            continue
        if name == "status":
            what, raw = draw(st.sampled_from(ODD_STATUS))
            odd = odd or what not in ("twice",)
        elif draw(st.booleans()):
            what, raw = draw(st.sampled_from(LIMITS))
            odd = odd or what in ("0", "501")
        else:
            raw, what = draw(query_value())
            odd = odd or what not in VALID_ISH
        query.append(name.encode() + b"=" + raw)
        labels.append(f"{name}: {what}")
    request = build(
        ROUTE,
        auth,
        ", ".join(sorted(labels)),
        "GET",
        PATH,
        query,
        headers + draw(noise_headers()),
        odd_if_ok=odd,
        detail=f"?{shorten(b'&'.join(query), 80)}",
    )
    if not authed:
        request.expect = (401,)
    return request
