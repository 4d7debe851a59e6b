"""The outermost middleware: an unexpected error answers a clean 500 and keeps the connection.

Starlette's own error middleware sends its 500 and then re-raises, and uvicorn closes a
connection whose application raised, so the client's next request on that keep-alive
connection was reset. Here nothing escapes: the error is logged once, server-side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

BODY = orjson.dumps(
    {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "Internal server error",
    }
)

PROBLEM_HEADERS = {"content-type": "application/problem+json"}
# A page's body and its headers (content-type included).
Page = tuple[bytes, Mapping[str, str]]


class CrashGuardMiddleware:
    """Turns any exception escaping the app into a 500 problem document, or into the page
    (body and headers) ``page`` gives for a path people read in a browser (``page(path)``
    is None elsewhere)."""

    def __init__(self, app: ASGIApp, page: Callable[[str], Page | None] = lambda _p: None) -> None:
        self.app = app
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # The client left while sending its body: nobody is there to answer.
            log.info("client left mid-request on %s %s", scope.get("method"), scope.get("path"))
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                return  # the answer is half sent; the server ends it
            page = self.page(scope.get("path", ""))
            body, headers = (BODY, PROBLEM_HEADERS) if page is None else page
            length = [(b"content-length", str(len(body)).encode())]
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [*((k.encode(), v.encode()) for k, v in headers.items()), *length],
                }
            )
            await send({"type": "http.response.body", "body": body})
