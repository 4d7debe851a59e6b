"""Objects kept sorted by (created, id) with an id index, and Stripe's newest-first paging."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from itertools import pairwise

from tests.fake_stripe.objects import Obj

Key = tuple[int, str]


class Collection:
    """One kind's objects. Stored dicts are never changed in place: a change stores a new dict."""

    def __init__(self) -> None:
        self.keys: list[Key] = []  # ascending (created, id)
        self.objects: dict[str, Obj] = {}

    def __len__(self) -> int:
        return len(self.objects)

    def add(self, obj: Obj) -> None:
        key = (int(obj["created"]), str(obj["id"]))
        if not self.keys or key > self.keys[-1]:
            self.keys.append(key)
        else:
            insort(self.keys, key)
        self.objects[key[1]] = obj

    def add_many(self, objs: Iterable[Obj]) -> None:
        """Bulk insert: appended when already in order, else inserted one by one (a few) or
        appended and sorted once (many)."""
        batch = [((int(obj["created"]), str(obj["id"])), obj) for obj in objs]
        for key, obj in batch:
            self.objects[key[1]] = obj
        keys = [key for key, _ in batch]
        in_order = all(a < b for a, b in pairwise(keys))
        if in_order and (not self.keys or not keys or keys[0] > self.keys[-1]):
            self.keys.extend(keys)
        elif len(keys) < 64:
            for key in keys:
                insort(self.keys, key)
        else:
            self.keys.extend(keys)
            self.keys.sort()

    def replace(self, obj: Obj) -> None:
        """A new state of a stored object (same id and ``created``)."""
        self.objects[obj["id"]] = obj

    def remove(self, id: str) -> Obj:
        obj = self.objects.pop(id)
        del self.keys[bisect_left(self.keys, (int(obj["created"]), id))]
        return obj

    def key_of(self, id: str) -> Key | None:
        obj = self.objects.get(id)
        return None if obj is None else (int(obj["created"]), id)

    def newest_first(self) -> list[Obj]:
        return [self.objects[id] for _, id in reversed(self.keys)]


def select(
    keys: list[Key],
    objects: dict[str, Obj],
    *,
    limit: int,
    low: int | None = None,
    high: int | None = None,
    after: Key | None = None,
    before: Key | None = None,
    keep: Callable[[Obj], bool] | None = None,
) -> tuple[list[Obj], bool]:
    """One page, newest first: ``created`` in [low, high), strictly older than ``after`` or
    strictly newer than ``before`` (the ``limit`` objects just above it), matching ``keep``."""
    start = 0 if low is None else bisect_left(keys, (low, ""))
    stop = len(keys) if high is None else bisect_left(keys, (high, ""))
    if after is not None:
        stop = min(stop, bisect_left(keys, after))
    if before is not None:
        start = max(start, bisect_right(keys, before))
    indices = range(start, stop) if before is not None else range(stop - 1, start - 1, -1)
    picked: list[Obj] = []
    for index in indices:
        obj = objects[keys[index][1]]
        if keep is None or keep(obj):
            picked.append(obj)
            if len(picked) > limit:
                break
    has_more = len(picked) > limit
    del picked[limit:]
    if before is not None:
        picked.reverse()
    return picked, has_more
