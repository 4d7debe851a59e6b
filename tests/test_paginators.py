"""The four paginators and ``pages()`` against a real local server paging one small collection."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from streams.sources.http import JsonResponse, MalformedResponseError, SourceClient
from streams.sources.paginators import (
    CursorPaginator,
    LinkHeaderPaginator,
    OffsetPaginator,
    PageRequest,
    PageTokenPaginator,
    PaginationLoopError,
    Paginator,
    pages,
)
from streams.sources.retry import RetryPolicy

ITEMS = [{"id": f"obj_{n:02d}", "n": n} for n in range(1, 8)]  # 7 items: pages of 3, 3, 1


class _Handler(BaseHTTPRequestHandler):
    """Each path pages ``ITEMS`` its own way; ``stuck=1`` makes it hand back a token it gave."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Tests read ``CollectionServer.queries``."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        with self.server.lock:
            self.server.queries.append(parse_qs(parts.query))
        stuck = query.get("stuck") == "1"
        headers: dict[str, str] = {}
        if parts.path == "/v1/customers":
            body: Any = self.cursor_page(query, stuck)
        elif parts.path == "/link":
            body, headers = self.link_page(query, stuck, self.path)
        elif parts.path == "/token":
            body = self.token_page(query, stuck)
        elif parts.path == "/offset":
            body = self.offset_page(query, stuck)
        else:
            body = {"error": "not found"}
        data = json.dumps(body).encode()
        self.send_response(200 if "error" not in body else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    @staticmethod
    def cursor_page(query: dict[str, str], stuck: bool) -> dict[str, Any]:
        """Stripe's list envelope; ``stuck`` ignores ``starting_after``, ``empty`` lies."""
        limit = int(query.get("limit", "10"))
        after = query.get("starting_after")
        start = 0 if stuck or after is None else [i["id"] for i in ITEMS].index(after) + 1
        data = [] if query.get("empty") == "1" else ITEMS[start : start + limit]
        more = query.get("empty") == "1" or start + limit < len(ITEMS)
        return {"object": "list", "url": "/v1/customers", "has_more": more, "data": data}

    @staticmethod
    def link_page(query: dict[str, str], stuck: bool, path: str) -> tuple[Any, dict[str, str]]:
        """A bare array per page, with a relative ``Link: rel="next"``; ``back`` links to itself."""
        per_page, page = int(query["per_page"]), int(query.get("page", "1"))
        body = ITEMS[(page - 1) * per_page : page * per_page]
        if query.get("back") == "1":
            return body, {"Link": f'<{path}>; rel="next"'}
        following = 2 if stuck else page + 1
        if (following - 1) * per_page >= len(ITEMS):
            return body, {}
        kept = {k: v for k, v in query.items() if k != "page"}
        next_query = urlencode({**kept, "page": following})
        return body, {"Link": f'</link?{next_query}>; rel="next"'}

    @staticmethod
    def token_page(query: dict[str, str], stuck: bool) -> dict[str, Any]:
        """``next_page_token`` in the body, or Slack's ``response_metadata.next_cursor``."""
        size = int(query["page_size"])
        start = int(query.get("page_token", "tok-0").removeprefix("tok-"))
        following = size if stuck else start + size
        token = f"tok-{following}" if following < len(ITEMS) else ""
        page = ITEMS[start : start + size]
        if query.get("nested") == "1":
            return {"members": page, "response_metadata": {"next_cursor": token}}
        return {"members": page, "next_page_token": token or None}

    @staticmethod
    def offset_page(query: dict[str, str], stuck: bool) -> dict[str, Any]:
        """``offset``/``limit``, echoing the offset served; ``stuck`` ignores the offset asked."""
        limit, offset = int(query["limit"]), 0 if stuck else int(query.get("offset", "0"))
        body: dict[str, Any] = {"results": ITEMS[offset : offset + limit], "offset": offset}
        if query.get("no_total") != "1":
            body["total"] = len(ITEMS)
        return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.queries: list[dict[str, list[str]]] = []


class CollectionServer:
    """The collection on a 127.0.0.1 port; ``queries()`` lists each request's query."""

    def __init__(self) -> None:
        self._server = _Server()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> CollectionServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def queries(self) -> list[dict[str, list[str]]]:
        with self._server.lock:
            return list(self._server.queries)


@pytest.fixture
def server() -> Iterator[CollectionServer]:
    with CollectionServer() as running:
        yield running


def walk(first: PageRequest, paginator: Paginator) -> list[list[int]]:
    """Each page's item numbers, through the real client and ``pages()``."""

    async def run() -> list[list[int]]:
        async with httpx.AsyncClient() as http:
            client = SourceClient(http, timeout_s=5, retry=RetryPolicy(attempts=1))
            return [
                [item["n"] for item in items]
                async for items in pages(client, first, paginator, label="customers")
            ]

    return asyncio.run(run())


ALL_PAGES = [[1, 2, 3], [4, 5, 6], [7]]


def test_cursor_walks_stripe_lists_keeping_every_filter(server: CollectionServer) -> None:
    first = PageRequest(
        f"{server.base_url}/v1/customers",
        [("limit", 3), ("created[gte]", 1704067200), ("types[]", "a"), ("types[]", "b")],
    )

    assert walk(first, CursorPaginator()) == ALL_PAGES

    filters = {"limit": ["3"], "created[gte]": ["1704067200"], "types[]": ["a", "b"]}
    assert server.queries() == [
        filters,
        {**filters, "starting_after": ["obj_03"]},
        {**filters, "starting_after": ["obj_06"]},
    ]


def test_cursor_refuses_a_repeated_starting_after(server: CollectionServer) -> None:
    first = PageRequest(f"{server.base_url}/v1/customers", [("limit", 3), ("stuck", 1)])

    with pytest.raises(PaginationLoopError) as failure:
        walk(first, CursorPaginator())

    assert str(failure.value) == (
        "customers (page 2): pagination loop: starting_after=obj_03 was already followed"
    )
    assert failure.value.token == "obj_03"
    assert len(server.queries()) == 2


def test_cursor_with_more_but_no_items_fails(server: CollectionServer) -> None:
    first = PageRequest(f"{server.base_url}/v1/customers", [("empty", 1)])

    with pytest.raises(MalformedResponseError, match="has_more is true but the last item"):
        walk(first, CursorPaginator())


def test_link_header_walks_pages_as_linked(server: CollectionServer) -> None:
    first = PageRequest(f"{server.base_url}/link", [("per_page", 3), ("q", "x y")])

    assert walk(first, LinkHeaderPaginator()) == ALL_PAGES

    assert [query.get("page") for query in server.queries()] == [None, ["2"], ["3"]]
    assert all(query["q"] == ["x y"] for query in server.queries())


def test_link_header_refuses_a_repeated_url(server: CollectionServer) -> None:
    first = PageRequest(f"{server.base_url}/link", [("per_page", 3), ("stuck", 1)])

    with pytest.raises(PaginationLoopError) as failure:
        walk(first, LinkHeaderPaginator())

    repeated = f"{server.base_url}/link?per_page=3&stuck=1&page=2"
    assert str(failure.value) == (
        f"customers (page 2): pagination loop: next link={repeated} was already followed"
    )
    assert len(server.queries()) == 2


def test_link_header_refuses_a_link_to_the_page_just_read(server: CollectionServer) -> None:
    first = PageRequest(f"{server.base_url}/link", [("per_page", 3), ("back", 1)])

    with pytest.raises(PaginationLoopError, match=r"^customers: pagination loop: next link="):
        walk(first, LinkHeaderPaginator())
    assert len(server.queries()) == 1


def test_link_header_keeps_credentials_on_their_origin() -> None:
    here = PageRequest("https://api.example/v1/items", headers={"Authorization": "Bearer s3cret"})

    def linked(url: str) -> PageRequest | None:
        page = JsonResponse([], httpx.Headers(), url, 1, here.url, "items")
        return LinkHeaderPaginator().next_request(here, page)

    same = linked("https://api.example/v1/items?page=2")
    other = linked("https://cdn.example/v1/items?page=2")
    assert same is not None and same.headers == here.headers
    assert other is not None and other.headers is None


@pytest.mark.parametrize(
    ("paginator", "nested"),
    [
        (PageTokenPaginator("members"), "0"),
        (PageTokenPaginator("members", next_key="response_metadata.next_cursor"), "1"),
    ],
)
def test_page_token_walks_until_no_token(
    server: CollectionServer, paginator: PageTokenPaginator, nested: str
) -> None:
    first = PageRequest(f"{server.base_url}/token", [("page_size", 3), ("nested", nested)])

    assert walk(first, paginator) == ALL_PAGES

    assert [query.get("page_token") for query in server.queries()] == [
        None,
        ["tok-3"],
        ["tok-6"],
    ]


def test_page_token_refuses_a_repeated_token(server: CollectionServer) -> None:
    first = PageRequest(f"{server.base_url}/token", [("page_size", 3), ("stuck", 1)])

    with pytest.raises(PaginationLoopError, match=r"page_token=tok-3 was already followed$"):
        walk(first, PageTokenPaginator("members"))
    assert len(server.queries()) == 2


@pytest.mark.parametrize("no_total", ["0", "1"])
def test_offset_walks_to_the_total_or_a_short_page(server: CollectionServer, no_total: str) -> None:
    first = PageRequest(f"{server.base_url}/offset", [("limit", 3), ("no_total", no_total)])

    assert walk(first, OffsetPaginator("results")) == ALL_PAGES

    assert [query.get("offset") for query in server.queries()] == [None, ["3"], ["6"]]


def test_offset_stops_at_the_total_without_an_empty_page(server: CollectionServer) -> None:
    first = PageRequest(f"{server.base_url}/offset", [("limit", 7)])

    assert walk(first, OffsetPaginator("results")) == [[1, 2, 3, 4, 5, 6, 7]]
    assert len(server.queries()) == 1


def test_offset_refuses_a_server_that_ignores_it(server: CollectionServer) -> None:
    first = PageRequest(f"{server.base_url}/offset", [("limit", 3), ("stuck", 1)])

    with pytest.raises(PaginationLoopError) as failure:
        walk(first, OffsetPaginator("results"))

    assert str(failure.value).endswith("pagination loop: offset=3 was already followed")
    assert len(server.queries()) == 2


def test_a_page_without_its_items_is_malformed(server: CollectionServer) -> None:
    first = PageRequest(f"{server.base_url}/offset", [("limit", 3)])

    with pytest.raises(MalformedResponseError) as failure:
        walk(first, OffsetPaginator("items"))

    assert str(failure.value) == (
        "customers: unexpected document: expected a list at 'items', got dict"
    )
