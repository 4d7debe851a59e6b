"""``syncbus replay``: send dead-lettered requests, or a range of a request topic, again.

Request-id idempotency keeps a replay from applying anything twice: a failed job goes back
to the queue (it applied nothing), any other known request is skipped by the worker, and
``--rerun`` is the explicit way to run a request again under a new request id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from cli.database import explain
from cli.kafka_read import TP, Record, open_consumer, read, start_offsets_since, watermarks
from cli.when import from_ms
from db.replay import PayloadGone, Plan, plan_redrive, plan_rerun
from producers.kafka import producer_config
from schemas.events import DeadLetter, SyncRequest
from schemas.settings import Settings
from schemas.topics import DOMAINS, Topics, request_key


@dataclass(frozen=True)
class Selection:
    """Which messages to replay: from ``topic`` (None: the DLQ), filtered as given."""

    topic: str | None
    request_ids: frozenset[str]
    since_ms: int | None
    until_ms: int | None
    from_offset: int | None
    to_offset: int | None  # inclusive
    partition: int | None


@dataclass(frozen=True)
class Candidate:
    """A request to send again, where to, and the message it came from."""

    request: SyncRequest
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes | None]]
    source: str  # topic@partition:offset


@dataclass
class Result:
    sent: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def select(settings: Settings, selection: Selection, out: Console) -> list[Candidate]:
    """Read the chosen messages (never past the end offsets taken now)."""
    topics = Topics(settings.topic_prefix)
    topic = selection.topic or topics.dlq
    consumer, partitions = open_consumer(settings)
    try:
        numbers = partitions.get(topic, [])
        if selection.partition is not None:
            numbers = [p for p in numbers if p == selection.partition]
        tps: list[TP] = [(topic, p) for p in numbers]
        marks = watermarks(consumer, tps)
        ends = {tp: high for tp, (_low, high) in marks.items()}
        starts = {tp: low for tp, (low, _high) in marks.items()}
        if selection.from_offset is not None:
            starts = {tp: max(low, selection.from_offset) for tp, low in starts.items()}
        if selection.to_offset is not None:
            ends = {tp: min(end, selection.to_offset + 1) for tp, end in ends.items()}
        if selection.since_ms is not None:
            found = start_offsets_since(consumer, tps, selection.since_ms)
            starts = {
                tp: max(starts[tp], off if off >= 0 else ends[tp]) for tp, off in found.items()
            }
        chosen: dict[str, Candidate] = {}
        for record in read(consumer, starts, ends):
            if not _wanted(record, selection):
                continue
            candidate, why = _candidate(record, topics, dead_letters=selection.topic is None)
            if candidate is None:
                out.print(f"skipped {_where(record)}: {why}", markup=False, highlight=False)
                continue
            # A request dead-lettered twice is sent once (its latest letter).
            chosen.pop(candidate.request.request_id, None)
            chosen[candidate.request.request_id] = candidate
        return list(chosen.values())
    finally:
        consumer.close()


def _wanted(record: Record, selection: Selection) -> bool:
    """Header and timestamp filters: no body is parsed for them."""
    if selection.request_ids and record.header("request_id") not in selection.request_ids:
        return False
    stamp = record.timestamp_ms or 0
    if selection.since_ms is not None and stamp < selection.since_ms:
        return False
    return selection.until_ms is None or stamp <= selection.until_ms


def _candidate(
    record: Record, topics: Topics, *, dead_letters: bool
) -> tuple[Candidate | None, str]:
    value = record.value or b""
    key = record.key
    headers: list[tuple[str, str | bytes | None]] = [(k, v) for k, v in record.headers]
    if dead_letters:
        try:
            letter = DeadLetter.model_validate_json(value)
        except ValidationError:
            return None, "not a dead letter"
        value = letter.original.encode()
    try:
        request = SyncRequest.model_validate_json(value)
    except ValidationError as exc:
        return None, f"not a valid sync request ({exc.errors()[0]['msg']}): replaying cannot help"
    if request.domain not in DOMAINS:
        return None, f"unknown domain {request.domain!r}"
    if dead_letters:
        key = request_key(request.domain, request.scope).encode()
        headers = [(k, v) for k, v in request.kafka_headers()]
    topic = topics.requests(request.domain) if dead_letters else record.topic
    return Candidate(request, topic, key, value, headers, _where(record)), ""


def _where(record: Record) -> str:
    return f"{record.topic}@{record.partition}:{record.offset} ({from_ms(record.timestamp_ms)})"


def replay(
    settings: Settings, candidates: list[Candidate], *, rerun: bool, dry_run: bool, out: Console
) -> Result:
    """Plan each candidate in its own transaction, then send it (unless ``dry_run``)."""
    result = Result()
    producer = None if dry_run else Producer(producer_config(settings.kafka_bootstrap_servers))
    progress = Progress(console=out, transient=True, disable=not out.is_terminal or dry_run)

    def delivered(request_id: str) -> Callable[[KafkaError | None, Message], None]:
        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                result.sent += 1
            else:
                result.failed.append(f"{request_id}: {err.str()}")
            progress.advance(task)

        return report

    async def run() -> None:
        engine = create_async_engine(settings.sqlalchemy_url, poolclass=NullPool)
        try:
            for candidate in candidates:
                plan = await _plan(engine, candidate.request, rerun=rerun, dry_run=dry_run)
                if isinstance(plan, str) or not plan.publish:
                    reason = plan if isinstance(plan, str) else plan.detail
                    result.skipped.append(candidate.request.request_id)
                    progress.console.print(
                        f"skipped {candidate.request.request_id}: {reason}", markup=False
                    )
                    progress.advance(task)
                    continue
                verb = "would send" if dry_run else "sent"
                line = f"{verb} {plan.request.request_id} to {candidate.topic}: {plan.detail}"
                progress.console.print(line, markup=False, highlight=False)
                if producer is None:
                    progress.advance(task)
                    continue
                value, key, headers = candidate.value, candidate.key, candidate.headers
                if rerun:
                    value = plan.request.to_json()
                    headers = [(k, v) for k, v in plan.request.kafka_headers()]
                producer.produce(
                    candidate.topic,
                    value,
                    key=key,
                    headers=headers,
                    on_delivery=delivered(plan.request.request_id),
                )
                producer.poll(0)
        finally:
            await engine.dispose()

    with progress:
        task = progress.add_task("replaying", total=len(candidates))
        try:
            asyncio.run(run())
        except SQLAlchemyError as exc:
            raise explain(settings, exc) from None
        finally:
            if producer is not None:
                left = producer.flush(30)
                if left:
                    result.failed.append(f"{left} messages not acknowledged in 30 s")
    return result


async def _plan(
    engine: AsyncEngine, request: SyncRequest, *, rerun: bool, dry_run: bool
) -> Plan | str:
    try:
        async with engine.begin() as conn:
            if rerun:
                return await plan_rerun(conn, request, apply=not dry_run)
            return await plan_redrive(conn, request, apply=not dry_run)
    except PayloadGone as exc:
        return f"{exc}: not sent"
