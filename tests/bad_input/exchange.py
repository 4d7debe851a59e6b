"""One bad request sent and judged: its answer, a problem document or not, the connection after."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from tests.bad_input.request import HEALTHZ, BadRequest, shorten
from tests.bad_input.saas_answers import saasy_fault, saasy_header_faults, speaks_saasy
from tests.raw_http import BODY_METHODS, RawConnection, RawResponse, WireError

PARSER_400 = b"Invalid HTTP request received."  # uvicorn's own answer to bytes it cannot parse
WRITE_METHODS = (*BODY_METHODS, b"DELETE")


@dataclass
class Outcome:
    """What one bad request got: the answer's status and anything wrong with it."""

    status: int | None
    problems: list[str]
    elapsed: float
    parser_refused: bool = False
    closed: bool = False
    announced_close: bool = False


def problem_fault(answer: RawResponse, head_only: bool) -> str:
    """'' when a 4xx answer is an RFC 9457 problem document, else what is wrong."""
    ctype = answer.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if ctype != b"application/problem+json":
        return f"{answer.status} with content-type {shorten(ctype, 40) or 'none'}"
    if head_only:
        return ""
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return f"{answer.status} whose body is not JSON"
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("detail"), str)
        or not data["detail"].strip()
    ):
        return f"{answer.status} problem without a detail"
    if data.get("status") not in (None, answer.status):
        return f"{answer.status} problem saying status {data.get('status')}"
    return ""


def answer_faults(request: BadRequest, answer: RawResponse, head_only: bool) -> list[str]:
    """What is wrong with the answer itself: a 5xx, a 4xx that is no problem document (no
    supasaasy error body on its paths), a 2xx to a write that must be refused, another
    status than the one expected, or supasaasy's headers missing."""
    saasy = speaks_saasy(request)
    faults = saasy_header_faults(request, answer) if saasy else []
    if request.expect and answer.status not in request.expect:
        expected = " or ".join(str(s) for s in request.expect)
        faults.append(f"{answer.status} where {expected} was due")
    if answer.status >= 500:
        return [str(answer.status), *faults]
    if answer.status >= 400:
        if saasy:
            wrong = saasy_fault(answer, head_only)
            return [f"not supasaasy's error body: {wrong}", *faults] if wrong else faults
        wrong = problem_fault(answer, head_only)
        return [f"not a problem document: {wrong}", *faults] if wrong else faults
    if answer.status < 300 and request.must_refuse and request.method in WRITE_METHODS:
        return [f"{answer.status} for a request that must be refused", *faults]
    return faults


def exchange(conn: RawConnection, request: BadRequest) -> Outcome:
    """Send one bad request, read its answer, judge it, and check the connection still
    serves a GET /healthz when it should. Leaves ``conn`` closed when it is done for."""
    head_only = request.method == b"HEAD"
    started = time.perf_counter()
    send_error = conn.send(request.wire())
    if request.framing == "halfclose" and not send_error:
        send_error = conn.shutdown_write()
    try:
        answer = conn.answer(head_only)
    except WireError as exc:
        conn.close()
        elapsed = time.perf_counter() - started
        if request.framing == "halfclose" and exc.kind == "connection closed":
            return Outcome(None, [], elapsed, closed=True)
        sent = f" (sending failed: {send_error})" if send_error else ""
        what = exc.kind if "cut off" in exc.kind else f"no answer: {exc.kind}"
        return Outcome(None, [f"{what}{sent}"], elapsed, closed=True)
    elapsed = time.perf_counter() - started
    if answer.status == 400 and answer.body == PARSER_400 and request.parser_may_refuse:
        conn.close()
        return Outcome(answer.status, [], elapsed, parser_refused=True, closed=True)
    problems = answer_faults(request, answer, head_only)
    if request.framing == "declared" and not answer.closes:
        # Answered before the declared body arrived, and the connection stays open: the
        # server reads whatever comes next as the rest of that body (a GET /healthz sent
        # now would wait out the timeout).
        problems.append(f"{answer.status} without 'Connection: close' before the body arrived")
        conn.close()
        return Outcome(answer.status, problems, elapsed, closed=True)
    if request.framing == "short" and not answer.closes:
        try:
            pipelined = conn.answer()
            if pipelined.status != 200:
                problems.append(f"the pipelined GET /healthz answered {pipelined.status}")
        except WireError as exc:
            problems.append(f"the pipelined GET /healthz got no answer: {exc.kind}")
            conn.close()
            return Outcome(answer.status, problems, elapsed, closed=True)
    if answer.closes or not request.keeps_alive or request.framing == "halfclose":
        conn.close()
        announced = answer.closes and request.keeps_alive
        return Outcome(answer.status, problems, elapsed, closed=True, announced_close=announced)
    conn.send(HEALTHZ)  # a failure shows when reading the answer
    try:
        health = conn.answer()
    except WireError as exc:
        conn.close()
        lost = exc.kind in ("connection closed", "connection reset")
        kind = "closed or reset" if lost else exc.kind
        problems.append(f"then the same connection failed GET /healthz: {kind}")
        return Outcome(answer.status, problems, elapsed, closed=True)
    if health.status != 200:
        problems.append(f"then GET /healthz on the same connection answered {health.status}")
    return Outcome(answer.status, problems, elapsed, closed=False)
