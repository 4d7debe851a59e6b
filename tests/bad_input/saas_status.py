"""supasaasy's job status: GET /functions/v1/job-status/{job_id} and /sync/jobs/{job_id}."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.bad_input.jobs import job_id
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.query import query_value
from tests.bad_input.request import BadRequest, Target, build, quoted, shorten
from tests.bad_input.saas_answers import speaks_saasy
from tests.bad_input.saas_sync import saas_auth

STATUS_PATHS = (b"/functions/v1/job-status/", b"/sync/jobs/")
STATUS_ROUTES = {
    b"/functions/v1/job-status/": "GET /functions/v1/job-status/{job_id}",
    b"/sync/jobs/": "GET /sync/jobs/{job_id}",
}
# Ids that are a job's, or look like one, but no saas job has: (label, segment).
OTHER_IDS = {
    "the seed schedule's id": "schedule",
    "empty": "",
    "UUID with a trailing newline": "%s%0A",
    "UUID with a NUL": "%s%00",
    "UUID with fullwidth digits": "%s-fullwidth",
}


@st.composite
def status_segment(draw: st.DrawFn, t: Target) -> tuple[bytes, str]:
    """(path segment, label): the generic job ids, the seed's dictionary job, or others."""
    if draw(st.integers(0, 4)) > 0:
        return draw(job_id(t, seed_share=0.15))
    name = draw(st.sampled_from(sorted(OTHER_IDS)))
    pattern = OTHER_IDS[name]
    some = str(draw(st.uuids()))
    if pattern == "schedule":
        return t.schedule_id.encode(), f"job id: {name}"
    if pattern == "%s-fullwidth":
        wide = some.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
        return quoted(wide), f"job id: {name}"
    return (pattern.replace("%s", some)).encode(), f"job id: {name}"


@st.composite
def job_status_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """A job status with an odd, unknown or non-saas job id, or without the key."""
    prefix = draw(st.sampled_from(STATUS_PATHS))
    segment, label = draw(status_segment(t))
    auth, headers, authed = draw(saas_auth(t, ok_share=0.7))
    query: list[bytes] = []
    if draw(st.integers(0, 3)) == 0:
        raw, name = draw(query_value())
        query = [b"include_tasks=" + raw]
        label = f"{label}, include_tasks: {name}"
    if draw(st.integers(0, 4)) == 0:
        query += draw(unknown_query())
    body = b""
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.sampled_from([b"{}", b"\xff\xfe", b'{"job_id":1}', b"x" * 5000]))
        label = f"{label}, GET with a body"
    request = build(
        STATUS_ROUTES[prefix],
        auth,
        label,
        "GET",
        prefix + segment,
        query,
        headers + draw(noise_headers()),
        body,
        must_refuse=not authed,
        odd_if_ok=True,
        detail=f"{prefix.decode()}{shorten(segment, 50)}",
    )
    if not authed and speaks_saasy(request):  # the key is checked first
        request.expect = (401,)
    return request
