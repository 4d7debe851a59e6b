"""The api's HTTP metrics: requests by route template, method and status, their latency,
rate-limit and auth refusals, and the SSE clients connected now."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from fastapi.routing import iter_route_contexts
from prometheus_client import Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A path no route serves: one label for all of them, so scanners cannot grow the series.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "syncbus_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "syncbus_http_request_duration_seconds",
    "Seconds from a request's arrival to its response's headers (an SSE stream's length is "
    "not its latency), by route template and method.",
    ["route", "method"],
)
RATE_LIMITED = Counter(
    "syncbus_http_rate_limited",
    "Requests refused with 429 (rate limits, too many wrong credentials), by route template.",
    ["route"],
)
AUTH_REFUSED = Counter(
    "syncbus_http_auth_refusals",
    "Requests refused with 401 or 403 (missing or wrong credentials, a source address not "
    "allowed), by route template and status.",
    ["route", "status"],
)
SSE_CLIENTS = Gauge("syncbus_sse_clients", "Server-Sent Events streams open now.")


@dataclass(frozen=True)
class _Template:
    regex: re.Pattern[str]
    template: str


class RouteTemplates:
    """Names the route that served a request by its template (``/v1/syncs/{job_id}``), never
    its raw path, with any prefix the router was included under. A request no route took
    (refused before routing, an unknown path) is named by matching its path."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self._routes = routes
        self._all: list[_Template] = []
        self._by_route: dict[int, list[_Template]] = {}
        self._seen: set[int] = set()

    def _build(self) -> None:
        self._all, self._by_route = [], {}
        for context in iter_route_contexts(self._routes):
            path = context.path
            if not isinstance(path, str) or not path:
                continue
            if isinstance(context.original_route, Mount):
                path = path.rstrip("/") + "/{path:path}"
            regex, template, _ = compile_path(path)
            entry = _Template(regex, template)
            self._all.append(entry)
            self._by_route.setdefault(id(context.original_route), []).append(entry)

    def name(self, route: object, path: str) -> str:
        if route is not None and id(route) not in self._by_route and id(route) not in self._seen:
            self._seen.add(id(route))
            self._build()  # first use, or a route added since
        entries = self._by_route.get(id(route), []) if route is not None else self._all
        if len(entries) == 1:
            return entries[0].template
        for entry in entries or self._all:
            if entry.regex.match(path):
                return entry.template
        return UNMATCHED


class HttpMetricsMiddleware:
    """Pure ASGI (a streamed body passes through unbuffered): counts each request and
    times it when its response's headers go out, when its status is known."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.templates = RouteTemplates(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]  # as it arrived: routing rewrites it on the way down
        method = scope["method"] if scope["method"] in METHODS else "other"
        status: int | None = None

        def answered(code: int) -> None:
            nonlocal status
            status = code
            route = self.templates.name(scope.get("route"), path)
            LATENCY.labels(route, method).observe(time.perf_counter() - started)
            _count(route, method, code)

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start" and status is None:
                answered(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except ClientDisconnect:
            raise  # nobody is there to answer
        except Exception:
            if status is None:
                answered(500)  # what the crash guard outside answers
            raise


def _count(route: str, method: str, status: int) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    if status == 429:
        RATE_LIMITED.labels(route).inc()
    elif status in (401, 403):
        AUTH_REFUSED.labels(route, str(status)).inc()
