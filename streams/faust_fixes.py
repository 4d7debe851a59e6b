"""Workarounds for Faust's and aiokafka's behaviour that the worker cannot set otherwise."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.consumer.fetcher import Fetcher
from faust.tables.manager import TableManager
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.threads import ServiceThread

_ORIGINAL_CREATE_CONSUMER = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
_ORIGINAL_TABLES_START = TableManager.on_start
_ORIGINAL_THREAD_STOP = ServiceThread.stop


def limit_fetch_wait(fetch_wait_ms: int) -> None:
    """Faust 0.15 hard-codes a 1500 ms fetch wait; the embedded broker never wakes a waiting
    fetch when data arrives, so every message would sit that long. Make it a setting."""

    def create(self: Any, transport: Any) -> Any:
        consumer = _ORIGINAL_CREATE_CONSUMER(self, transport)
        consumer._fetch_max_wait_ms = fetch_wait_ms
        return consumer

    setattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", create)  # noqa: B010


async def _close_fetcher(self: Any) -> None:
    """aiokafka 0.14's ``Fetcher.close`` awaits each fetch it cancels without catching the
    cancellation. A fetch backing off after a broker error (any time the broker is down)
    re-raises it, which ends Faust's consumer thread before it says it stopped: the
    worker's shutdown then waited 60 s (mode's shutdown_timeout). Same steps, every
    cancellation of the fetches absorbed; a cancellation of the caller still propagates."""
    self._closed = True
    fetches = [self._fetch_task, *self._pending_tasks]
    for fetch in fetches:
        fetch.cancel()
    try:
        await asyncio.gather(*fetches, return_exceptions=True)
    finally:
        for waiter in self._fetch_waiters:
            self._notify(waiter)


def stop_despite_a_failing_fetch() -> None:
    setattr(Fetcher, "close", _close_fetcher)  # noqa: B010


async def _start_tables(self: Any) -> None:
    """Faust 0.15's ``TableManager.on_start`` sleeps a fixed second before it lets the
    consumer subscribe, to let tables settle. An app without tables has none to wait for:
    every worker start (and every takeover after a restart) was a second later."""
    if len(self):
        await _ORIGINAL_TABLES_START(self)
        return
    if not self.should_stop:
        await self._update_channels()
        await self.recovery.start()


def start_without_waiting_for_no_tables() -> None:
    setattr(TableManager, "on_start", _start_tables)  # noqa: B010


async def _stop_thread(self: Any) -> None:
    """A mode service thread that crashed has closed its event loop; mode's stop then
    raised 'Event loop is closed' on its first step, and Faust logged that with a
    traceback each time the broker went away during a start. Nothing is left to stop."""
    try:
        await _ORIGINAL_THREAD_STOP(self)
    except RuntimeError:
        if not self.thread_loop.is_closed():
            raise


def stop_a_crashed_thread_quietly() -> None:
    setattr(ServiceThread, "stop", _stop_thread)  # noqa: B010
