"""``syncbus tail``: print a topic's envelopes, filtered by their headers and key only."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from cli.kafka_read import (
    KafkaProblem,
    Record,
    open_consumer,
    read,
    start_offsets_since,
    watermarks,
)
from cli.when import from_ms
from schemas.settings import Settings


@dataclass(frozen=True)
class Options:
    topic: str
    from_beginning: bool
    since_ms: int | None
    last: int
    follow: bool
    request_ids: frozenset[str]  # a message matches with one of these request_id headers
    job_key: str | None  # ... or this key (the progress topic is keyed by job id)
    as_json: bool


def matches(record: Record, options: Options) -> bool:
    """Headers and key decide; the body is never parsed (it may not even be JSON)."""
    if options.since_ms is not None and (record.timestamp_ms or 0) < options.since_ms:
        return False
    if not options.request_ids and options.job_key is None:
        return True
    if record.header("request_id") in options.request_ids:
        return True
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    return options.job_key is not None and key == options.job_key


def tail(settings: Settings, options: Options, out: Console) -> int:
    """Print matching messages; the count printed (a KafkaProblem when the broker is away)."""
    consumer, partitions = open_consumer(settings)
    stopping: list[bool] = []
    previous = _stop_on_signals(stopping)
    try:
        tps = [(options.topic, p) for p in partitions.get(options.topic, [])]
        if not tps:
            raise KafkaProblem(f"{options.topic} does not exist on the broker yet")
        marks = watermarks(consumer, tps)
        ends = {tp: high for tp, (_low, high) in marks.items()}
        shown = 0
        if options.from_beginning:
            starts = {tp: low for tp, (low, _high) in marks.items()}
        elif options.since_ms is not None:
            found = start_offsets_since(consumer, tps, options.since_ms)
            starts = {tp: off if off >= 0 else ends[tp] for tp, off in found.items()}
        else:
            # The topic's last N: of each partition's last N, the newest N, in time order.
            starts = {tp: max(low, high - options.last) for tp, (low, high) in marks.items()}
            recent = [r for r in read(consumer, starts, ends) if matches(r, options)]
            recent.sort(key=lambda r: (r.timestamp_ms or 0, r.partition, r.offset))
            for record in recent[max(0, len(recent) - options.last) :] if options.last else []:
                _print(record, options.as_json, out)
                shown += 1
            starts = dict(ends)
        if not options.follow and not options.from_beginning and options.since_ms is None:
            return shown
        for record in read(
            consumer, starts, None if options.follow else ends, stop=lambda: bool(stopping)
        ):
            if matches(record, options):
                _print(record, options.as_json, out)
                shown += 1
        return shown
    finally:
        _restore(previous)
        consumer.close()


def _stop_on_signals(flag: list[bool]) -> dict[int, Any]:
    """SIGINT and SIGTERM end a --follow cleanly (the consumer is closed, exit 0)."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        flag.append(True)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def as_dict(record: Record) -> dict[str, Any]:
    """The ``--json`` line: the value parsed when it is JSON, else ``raw`` holds it as text."""
    value: Any = None
    raw: str | None = None
    if record.value is not None:
        try:
            value = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            raw = record.value.decode("utf-8", errors="replace")
    line: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": from_ms(record.timestamp_ms) if record.timestamp_ms is not None else None,
        "key": record.key.decode("utf-8", errors="replace") if record.key is not None else None,
        "headers": {
            k: v.decode("utf-8", errors="replace") if v is not None else None
            for k, v in record.headers
        },
        "value": value,
    }
    if raw is not None:
        line["raw"] = raw
    return line


def summary(value: Any) -> str:
    """What an envelope says, in a few words, by its schema."""
    if not isinstance(value, dict):
        return json.dumps(value)[:200]
    schema = value.get("schema")
    name = schema.get("name", "") if isinstance(schema, dict) else ""
    fields: dict[str, Callable[[dict[str, Any]], str]] = {
        "syncbus.progress": lambda v: (
            f"job={v.get('job_id')} #{v.get('seq')} {v.get('type')} "
            + str((v.get("data") or {}).get("message") or json.dumps(v.get("data") or {}))
        ),
        "syncbus.sync_request": lambda v: (
            f"{v.get('domain')}:{v.get('scope')} {v.get('mode')} trigger={v.get('trigger')}"
            + (" payload_ref" if v.get("payload_ref") else "")
        ),
        "syncbus.audit": lambda v: f"{v.get('action')} {v.get('domain')} job={v.get('job_id')}",
        "syncbus.change": lambda v: f"{v.get('domain')} {v.get('change')} {v.get('key')}",
        "syncbus.dead_letter": lambda v: (
            f"from {v.get('source_topic')} job={v.get('job_id')}: {v.get('reason')}"
        ),
        "syncbus.alert": lambda v: f"{v.get('event')} {v.get('severity')} {v.get('key')}",
    }
    describe = fields.get(name)
    return describe(value) if describe else json.dumps(value)[:200]


def _print(record: Record, as_json: bool, out: Console) -> None:
    if as_json:
        sys.stdout.write(json.dumps(as_dict(record)) + "\n")
        sys.stdout.flush()
        return
    line = Text(no_wrap=True)
    line.append(from_ms(record.timestamp_ms), style="dim")
    line.append(f" {record.partition}@{record.offset}", style="cyan")
    line.append(f" {record.header('request_id') or '-'}", style="bold")
    line.append(f" {record.header('schema') or '-'} ", style="magenta")
    try:
        text = summary(orjson.loads(record.value or b"null"))
    except orjson.JSONDecodeError:
        size = len(record.value or b"")
        text = f"(not JSON, {size} bytes) {(record.value or b'')[:80]!r}"
    line.append(text.replace("\n", " "))
    out.print(line, soft_wrap=True)
    out.file.flush()
