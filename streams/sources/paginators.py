"""Paginators: strategy objects that turn one page's response into the next page's request.

The protocol is one method, ``Paginator.next_request(request, response)``: given the request
that fetched a page and its ``JsonResponse``, the ``PageRequest`` for the next page, or None
when that page was the last. ``Paginator.items(response)`` reads a page's records.

Subclasses implement only ``next_token`` (the value that names the next page: a cursor, a
URL, a page token, an offset; None when done) and, where the token is not simply a query
parameter, ``request_for``. The base class refuses a token it has already followed with a
``PaginationLoopError``, so a server that hands back the same token cannot loop a sync
forever. A paginator remembers its tokens: use a new one for each walk through a collection.

``pages(client, first_request, paginator, label=...)`` walks a collection and yields each
page's items; a connector picks the paginator and never writes the loop itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from streams.sources.http import JsonResponse, MalformedResponseError, SourceClient, SourceError

Token = str | int


class PaginationLoopError(SourceError):
    """The server named a page already fetched; ``token`` is what it sent again."""

    def __init__(self, label: str, token_name: str, token: Token) -> None:
        super().__init__(f"{label}: pagination loop: {token_name}={token} was already followed")
        self.token = token


@dataclass(frozen=True)
class PageRequest:
    """One page's GET: URL, query pairs (repeats and ``created[gte]`` allowed) and headers."""

    url: str
    params: Sequence[tuple[str, str | int]] = ()
    headers: Mapping[str, str] | None = None

    def param(self, name: str) -> str | int | None:
        """The last value given for ``name``, if any."""
        values = [value for key, value in self.params if key == name]
        return values[-1] if values else None

    def with_param(self, name: str, value: str | int) -> PageRequest:
        """This request with ``name`` set to ``value`` alone (any earlier values replaced)."""
        kept = tuple((key, old) for key, old in self.params if key != name)
        return replace(self, params=(*kept, (name, value)))


def _field(document: object, path: str) -> object:
    """``document["a"]["b"]`` for ``"a.b"``; None where the path runs out."""
    value = document
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


class Paginator(ABC):
    """One walk through a paginated collection whose records sit at ``items_key``.

    ``items_key`` is a dotted path into the body (``"data"``), or None for a body that is
    the list itself. ``token_name`` names the token in messages and, for the query-parameter
    paginators, is the parameter that carries it.
    """

    token_name: str

    def __init__(self, items_key: str | None = "data") -> None:
        self.items_key = items_key
        self._followed: set[str] = set()

    def items(self, response: JsonResponse) -> list[Any]:
        """The page's records; a body without the list is a ``MalformedResponseError``."""
        document = response.document
        found = document if self.items_key is None else _field(document, self.items_key)
        if not isinstance(found, list):
            expected = "a JSON array" if self.items_key is None else f"a list at '{self.items_key}'"
            raise MalformedResponseError(
                f"{response.label}: unexpected document: expected {expected},"
                f" got {type(document).__name__}"
            )
        return found

    def next_request(self, request: PageRequest, response: JsonResponse) -> PageRequest | None:
        """The next page's request, None after the last page; refuses a token seen before."""
        token = self.next_token(request, response)
        if token is None:
            return None
        if str(token) in self._followed:
            raise PaginationLoopError(response.label, self.token_name, token)
        self._followed.add(str(token))
        return self.request_for(request, token)

    @abstractmethod
    def next_token(self, request: PageRequest, response: JsonResponse) -> Token | None:
        """The value naming the next page, or None when ``response`` was the last page."""

    def request_for(self, request: PageRequest, token: Token) -> PageRequest:
        """The next page's request: by default the same request with the token as a param."""
        return request.with_param(self.token_name, token)


class CursorPaginator(Paginator):
    """Stripe's lists: ``starting_after`` = the last item's ``id`` while ``has_more`` is true."""

    def __init__(
        self,
        items_key: str = "data",
        *,
        cursor_param: str = "starting_after",
        id_key: str = "id",
        has_more_key: str = "has_more",
    ) -> None:
        super().__init__(items_key)
        self.token_name = cursor_param
        self.id_key = id_key
        self.has_more_key = has_more_key

    def next_token(self, request: PageRequest, response: JsonResponse) -> Token | None:
        if _field(response.document, self.has_more_key) is not True:
            return None
        items = self.items(response)
        last = items[-1] if items else None
        cursor = last.get(self.id_key) if isinstance(last, dict) else None
        if not isinstance(cursor, str | int) or isinstance(cursor, bool) or cursor == "":
            raise MalformedResponseError(
                f"{response.label}: {self.has_more_key} is true but the last item has no"
                f" '{self.id_key}' to continue after"
            )
        return cursor


class LinkHeaderPaginator(Paginator):
    """Follows ``Link: <url>; rel="next"`` exactly as given, until a page has none.

    The link carries every query parameter. The request's headers go only to the origin
    they were meant for: a link to another origin is followed without them.
    """

    token_name = "next link"  # noqa: S105 (a label, not a secret)

    def __init__(self, items_key: str | None = None) -> None:
        super().__init__(items_key)

    def next_token(self, request: PageRequest, response: JsonResponse) -> Token | None:
        # A link back to the page just read is a loop too, even on the first page.
        self._followed.add(response.url)
        return response.next_url

    def request_for(self, request: PageRequest, token: Token) -> PageRequest:
        url = str(token)
        here, there = httpx.URL(request.url), httpx.URL(url)
        same_origin = (here.scheme, here.host, here.port) == (there.scheme, there.host, there.port)
        return PageRequest(url, (), request.headers if same_origin else None)


class PageTokenPaginator(Paginator):
    """A body field (``next_page_token``, ``response_metadata.next_cursor``) sent back as a param.

    An absent, null or empty token ends the walk.
    """

    def __init__(
        self,
        items_key: str = "data",
        *,
        next_key: str = "next_page_token",
        page_param: str = "page_token",
    ) -> None:
        super().__init__(items_key)
        self.next_key = next_key
        self.token_name = page_param

    def next_token(self, request: PageRequest, response: JsonResponse) -> Token | None:
        token = _field(response.document, self.next_key)
        if token is None or token == "":
            return None
        if not isinstance(token, str | int) or isinstance(token, bool):
            raise MalformedResponseError(
                f"{response.label}: '{self.next_key}' is a {type(token).__name__}, not a token"
            )
        return token


class OffsetPaginator(Paginator):
    """``offset``/``limit`` pages: done on an empty or short page, or once ``total`` is reached.

    The page size is the request's ``limit`` param (put it in the first request). When the
    body echoes the offset it served (``offset_key``), the next offset counts from that one,
    so a server that ignores the offset parameter is caught as a loop, not read forever.
    """

    def __init__(
        self,
        items_key: str = "data",
        *,
        offset_param: str = "offset",
        limit_param: str = "limit",
        total_key: str | None = "total",
        offset_key: str | None = "offset",
    ) -> None:
        super().__init__(items_key)
        self.token_name = offset_param
        self.limit_param = limit_param
        self.total_key = total_key
        self.offset_key = offset_key

    def next_token(self, request: PageRequest, response: JsonResponse) -> Token | None:
        items = self.items(response)
        limit = _whole_number(request.param(self.limit_param))
        if not items or (limit is not None and len(items) < limit):
            return None
        served = self._body_number(response, self.offset_key)
        if served is None:
            served = _whole_number(request.param(self.token_name)) or 0
        following = served + len(items)
        total = self._body_number(response, self.total_key)
        if total is not None and following >= total:
            return None
        return following

    @staticmethod
    def _body_number(response: JsonResponse, key: str | None) -> int | None:
        return None if key is None else _whole_number(_field(response.document, key))


async def pages(
    client: SourceClient, first_request: PageRequest, paginator: Paginator, *, label: str
) -> AsyncIterator[list[Any]]:
    """Each page's items, fetching the next page only when the caller asks for it.

    Page 1's messages start with ``label``, later pages' with ``label (page N)``.
    """
    request: PageRequest | None = first_request
    number = 0
    while request is not None:
        number += 1
        response = await client.get_json(
            request.url,
            label=label if number == 1 else f"{label} (page {number})",
            params=request.params or None,
            headers=request.headers,
        )
        yield paginator.items(response)
        request = paginator.next_request(request, response)
