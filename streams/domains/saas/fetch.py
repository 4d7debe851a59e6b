"""Listing a collection fast: cursor chains over slices of the creation time, in parallel.

One cursor chain reads a large collection a page at a time. Where a listing can filter on
the creation time, a chain that still has pages to go hands the older half of its remaining
range to a new chain and keeps the newer half: ``[lo, hi)`` becomes ``[lo, mid)`` (a fresh
chain) and ``[mid, hi)`` (the same chain, its cursor kept). Every object is read exactly
once, ties on a creation second included (``mid`` lies below the last one read), and the
chains share the account's rate limit. Pages reach the caller through a small queue, so
memory holds a few pages whatever the collection's size.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from streams.domains.saas.connector import Listing
from streams.sources.http import SourceClient
from streams.sources.paginators import PageRequest, Paginator, pages

MIN_SLICE_S = 120  # a range shorter than this is not split further
QUEUE_PAGES = 8


@dataclass
class _Walk:
    """One cursor chain: its next request, its paginator, and the lower bound it covers."""

    request: PageRequest
    paginator: Paginator
    lo: int


async def listed_pages(
    client: SourceClient,
    listing: Listing,
    *,
    label: str,
    lo: int | None,
    chains: int,
) -> AsyncIterator[list[Any]]:
    """Every page of ``listing``'s objects created at or after ``lo``; with ``chains`` > 1
    and a creation filter, read by up to that many chains at once."""
    param = listing.created_param
    if chains <= 1 or param is None:
        async for items in pages(client, listing.first, listing.paginator(), label=label):
            yield items
        return
    queue: asyncio.Queue[list[Any] | BaseException | None] = asyncio.Queue(QUEUE_PAGES)
    walker = _Walkers(client, listing, label, param, chains, queue)
    first = listing.first.with_param(f"{param}[gte]", lo or 0)
    walker.start(_Walk(first, listing.paginator(), lo or 0))
    waiter = asyncio.create_task(walker.wait_all())
    try:
        while True:
            got = await queue.get()
            if got is None:
                break
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        waiter.cancel()
        walker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter


class _Walkers:
    """The chains of one listing, feeding one queue; the first failure ends them all."""

    def __init__(
        self,
        client: SourceClient,
        listing: Listing,
        label: str,
        param: str,
        chains: int,
        queue: asyncio.Queue[list[Any] | BaseException | None],
    ) -> None:
        self._client = client
        self._listing = listing
        self._label = label
        self._param = param
        self._chains = chains
        self._queue = queue
        self._tasks: set[asyncio.Task[None]] = set()
        self._pages = 0

    def start(self, walk: _Walk) -> None:
        task = asyncio.create_task(self._walk(walk))
        self._tasks.add(task)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def wait_all(self) -> None:
        try:
            while self._tasks:
                done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                self._tasks -= done
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        self.cancel()
                        await self._queue.put(task.exception())
                        return
            await self._queue.put(None)
        except asyncio.CancelledError:
            self.cancel()
            raise

    async def _walk(self, walk: _Walk) -> None:
        request: PageRequest | None = walk.request
        while request is not None:
            self._pages += 1
            response = await self._client.get_json(
                request.url,
                label=f"{self._label} (page {self._pages})",
                params=request.params or None,
                headers=request.headers,
            )
            items = walk.paginator.items(response)
            await self._queue.put(items)
            request = walk.paginator.next_request(request, response)
            if request is not None and items:
                request = self._maybe_split(walk, request, items[-1])

    def _maybe_split(self, walk: _Walk, request: PageRequest, last: Any) -> PageRequest:
        """Hand the older half of what is left to a new chain, when worth it."""
        created = last.get("created") if isinstance(last, dict) else None
        if not isinstance(created, int) or len(self._tasks) >= self._chains:
            return request
        if created - walk.lo < MIN_SLICE_S:
            return request
        mid = walk.lo + (created - walk.lo) // 2
        older = self._listing.first.with_param(f"{self._param}[gte]", walk.lo).with_param(
            f"{self._param}[lt]", mid
        )
        self.start(_Walk(older, self._listing.paginator(), walk.lo))
        walk.lo = mid
        return request.with_param(f"{self._param}[gte]", mid)
