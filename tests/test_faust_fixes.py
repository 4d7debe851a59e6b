"""streams/faust_fixes.py: a worker app without tables starts without Faust's fixed second."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.tables.manager import TableManager
from mode.threads import ServiceThread

from streams import faust_fixes


@pytest.fixture(autouse=True)
def _restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The patched classes get their own methods back after each test."""
    monkeypatch.setattr(TableManager, "on_start", TableManager.on_start)
    monkeypatch.setattr(ServiceThread, "stop", ServiceThread.stop)


def started_table_manager(with_table: bool) -> list[str]:
    """What the app's table manager did on start: its sleeps and its start-up steps."""
    faust_fixes.start_without_waiting_for_no_tables()
    app = faust.App("fixes-test", broker="kafka://127.0.0.1:1", store="memory://")
    if with_table:
        app.Table("counts", default=int)
    manager: Any = app.tables  # the concrete TableManager, under its interface type
    done: list[str] = []

    async def sleep(seconds: float, *_: Any, **__: Any) -> None:
        done.append(f"sleep {seconds}")

    async def step(name: str) -> None:
        done.append(name)

    manager.sleep = sleep
    manager._update_channels = lambda: step("update channels")
    manager.recovery.start = lambda: step("start recovery")
    asyncio.run(manager.on_start())
    return done


@pytest.mark.parametrize(
    ("with_table", "expected"),
    [
        (False, ["update channels", "start recovery"]),
        (True, ["sleep 1.0", "update channels", "start recovery"]),
    ],
    ids=["no tables: no wait", "a table: Faust's own start"],
)
def test_the_table_manager_waits_only_for_tables_there_are(
    with_table: bool, expected: list[str]
) -> None:
    assert started_table_manager(with_table) == expected


def test_stopping_a_service_thread_that_crashed_raises_nothing() -> None:
    """A crashed thread's loop is closed; mode's stop raised 'Event loop is closed'."""
    faust_fixes.stop_a_crashed_thread_quietly()
    crashed_loop = asyncio.new_event_loop()
    crashed_loop.close()
    thread = ServiceThread(thread_loop=crashed_loop)
    thread._started.set()
    asyncio.run(thread.stop())
    assert not thread._stopped.is_set()  # as before: the stop ended there
