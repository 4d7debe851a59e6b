"""What the senders saw, and the report of it: failures, exceptions the api logged, counts."""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

from tests.bad_input.credentials import ADMIN_BAD, ADMIN_OK
from tests.bad_input.exchange import Outcome
from tests.bad_input.request import BadRequest, shorten

SLOW_S = 2.0


def auth_class(auth: str) -> str:
    if auth in ADMIN_OK:
        return "admin"
    if auth in ADMIN_BAD:
        return "no valid credentials"
    return auth


@dataclass
class Seen:
    count: int
    example: str


@dataclass
class Failing:
    """One class of bad request that went wrong: what happened, how often."""

    outcomes: Counter[str] = field(default_factory=Counter)
    example: str = ""


@dataclass
class Tally:
    """Everything the senders saw, shared between their threads."""

    sent: int = 0
    answered: int = 0
    statuses: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    failures: dict[tuple[str, str, str], Failing] = field(default_factory=dict)
    review: dict[tuple[str, str, int], Seen] = field(default_factory=dict)
    parser_refused: Counter[str] = field(default_factory=Counter)
    announced_close: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    slow: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: BadRequest, outcome: Outcome) -> None:
        with self.lock:
            self.sent += 1
            self.answered += outcome.status is not None
            self.statuses[(request.route, outcome.status)] += 1
            if outcome.parser_refused:
                self.parser_refused[request.label] += 1
            elif outcome.announced_close:
                self.announced_close[(request.route, outcome.status)] += 1
            if outcome.elapsed > SLOW_S:
                self.slow.append((outcome.elapsed, request.route, request.label))
            if outcome.problems:
                key = (request.route, auth_class(request.auth), request.label)
                failing = self.failures.setdefault(key, Failing(example=request.example()))
                failing.outcomes["; ".join(outcome.problems)] += 1
            elif (
                outcome.status is not None
                and 200 <= outcome.status < 300
                and request.odd_if_ok
                and request.auth in (*ADMIN_OK, "signed")
            ):
                review = self.review.setdefault(
                    (request.route, request.label, outcome.status), Seen(0, request.example())
                )
                review.count += 1

    def failure(self, message: str, route: str = "(suite)") -> None:
        with self.lock:
            self.failures.setdefault((route, "-", message), Failing()).outcomes["failed"] += 1


EXCEPTION_LINE = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Disconnect|Group)\w*)(?::\s?(.*))?$"
)
MARKER = re.compile(r"unhandled error on (\S+ \S+)|Exception in ASGI application")
# An error a module logs itself (the saas routes catch theirs): its traceback follows.
LOGGED = re.compile(r" ERROR ([\w.]+): ")


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def logged_exceptions(log: str) -> Counter[str]:
    """The last exception line of each traceback the api logged, with the route it logged
    (tracebacks uvicorn logs again for the same error are left out)."""
    found: Counter[str] = Counter()
    bare: Counter[str] = Counter()
    route = ""
    last = ""

    def flush() -> None:
        if last and route:
            found[f"{route}: {last}"] += 1
        elif last:
            bare[last] += 1

    for line in log.splitlines():
        marker = MARKER.search(line) or LOGGED.search(line)
        if marker:
            flush()
            if marker.re is LOGGED:
                route = f"(logged by {marker.group(1)})"
            else:
                route = marker.group(1) or ""
            route, last = UUID.sub("{id}", shorten(route, 80)), ""
            continue
        match = EXCEPTION_LINE.match(line)
        if match:
            message = re.sub(r"\d{7,}", "<digits>", match.group(2) or "")
            last = f"{match.group(1)}: {message[:140]}"
    flush()
    known = {text.split(": ", 1)[1] for text in found}
    found.update({f"(logged by uvicorn only): {e}": n for e, n in bare.items() if e not in known})
    return found


def report(
    tally: Tally,
    counts: tuple[dict[str, int], dict[str, int]],
    log: str,
    took: float,
    by_route: bool,
) -> str:
    before, after = counts
    lines = [
        f"{tally.sent} bad requests sent in {took:.1f}s, {tally.answered} answered; "
        f"{sum(sum(f.outcomes.values()) for f in tally.failures.values())} went wrong, in "
        f"{len(tally.failures)} distinct classes "
        "(route [credentials] what was sent -> what happened xcount):"
    ]
    for (route, auth, label), failing in sorted(tally.failures.items()):
        happened = "; or ".join(f"{o} x{n}" for o, n in failing.outcomes.most_common())
        lines.append(f"  {route} [{auth}] {label} -> {happened}")
        if failing.example:
            lines.append(f"      e.g. {failing.example}")
    changed = {t: (before.get(t), after.get(t)) for t in after if before.get(t) != after.get(t)}
    if changed:
        lines.append(f"row counts changed (before, after): {changed}")
    exceptions = logged_exceptions(log)
    if exceptions:
        lines.append("exceptions in the api log (route: type: message xcount):")
        lines += [f"  {text} x{n}" for text, n in sorted(exceptions.items())]
    if tally.review:
        lines.append("for review, 2xx answers to odd input (not failures):")
        for (route, label, status), seen in sorted(tally.review.items()):
            lines.append(f"  {route} {label} -> {status} x{seen.count}  e.g. {seen.example}")
    if tally.parser_refused:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(tally.parser_refused.items()))
        lines.append(
            "refused by uvicorn's HTTP parser (400 text/plain, connection closed; expected "
            f"for these bytes): {kinds}"
        )
    if tally.announced_close:
        lines.append("answers that closed the connection with 'Connection: close':")
        lines += [f"  {r} {s} x{n}" for (r, s), n in sorted(tally.announced_close.items())]
    if tally.slow:
        lines.append(f"answers slower than {SLOW_S}s: {len(tally.slow)}")
        lines += [f"  {e:.1f}s {r} {lab}" for e, r, lab in sorted(tally.slow, reverse=True)[:10]]
    if by_route:
        routes: dict[str, Counter[int | None]] = {}
        for (path, answered), n in tally.statuses.items():
            routes.setdefault(path, Counter())[answered] += n
        lines.append("answers by route:")
        lines += [f"  {r}: {dict(sorted(c.items(), key=str))}" for r, c in sorted(routes.items())]
    return "\n".join(lines)
