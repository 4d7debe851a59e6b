"""``syncbus topics``: each topic's partitions and offsets, and each consumer group's lag."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.table import Table

from cli.kafka_read import REQUEST_TIMEOUT_S, TP, open_consumer, watermarks
from producers.kafka import CLIENT_LOG_LEVEL
from schemas.settings import Settings
from schemas.topics import Topics


@dataclass
class PartitionInfo:
    partition: int
    low: int
    high: int


@dataclass
class TopicInfo:
    topic: str
    exists: bool
    partitions: list[PartitionInfo] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(p.high - p.low for p in self.partitions)


@dataclass
class GroupLag:
    """A group's committed offsets on one topic; ``lag`` counts partitions it committed on."""

    group: str
    topic: str
    state: str
    members: int | None
    committed: dict[int, int]
    lag: int


@dataclass
class Report:
    topics: list[TopicInfo]
    groups: list[GroupLag]
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        topics = [{**asdict(t), "messages": t.messages} for t in self.topics]
        groups = [
            {**asdict(g), "committed": {str(p): o for p, o in g.committed.items()}}
            for g in self.groups
        ]
        return {"topics": topics, "groups": groups, "notes": self.notes}


def collect(settings: Settings) -> Report:
    """Everything ``syncbus topics`` shows; KafkaProblem when the broker is away."""
    names = Topics(settings.topic_prefix).all()
    consumer, partitions = open_consumer(settings)
    try:
        tps: list[TP] = [(t, p) for t in names for p in partitions.get(t, [])]
        marks = watermarks(consumer, tps)
    finally:
        consumer.close()
    topics = [
        TopicInfo(
            name,
            name in partitions,
            [PartitionInfo(p, *marks[(name, p)]) for p in partitions.get(name, [])],
        )
        for name in names
    ]
    ends = {tp: high for tp, (_low, high) in marks.items()}
    notes: list[str] = []
    groups = _group_lags(settings, ends, notes)
    return Report(topics, groups, notes)


def _group_lags(settings: Settings, ends: dict[TP, int], notes: list[str]) -> list[GroupLag]:
    """Committed offsets on syncbus topics of the worker group and every other group."""
    admin = AdminClient(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "log_level": CLIENT_LOG_LEVEL}
    )
    worker = settings.worker_group_id
    names = [worker]
    try:
        listed = admin.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S).result()
        names += sorted(g.group_id for g in listed.valid if g.group_id != worker)
    except KafkaException as exc:
        notes.append(f"the broker does not list consumer groups ({_why(exc)}): worker group only")
    states = _describe(admin, names, notes)
    lags: list[GroupLag] = []
    for name in names:
        try:
            request = [ConsumerGroupTopicPartitions(name)]
            future = admin.list_consumer_group_offsets(request, request_timeout=REQUEST_TIMEOUT_S)
            offsets = future[name].result().topic_partitions or []
        except KafkaException as exc:
            notes.append(f"no committed offsets for group {name}: {_why(exc)}")
            continue
        lags += _lags(name, offsets, ends, states.get(name, ("unknown", None)))
        if name == worker and not any(g.group == worker for g in lags):
            notes.append(f"the worker group {worker} has committed no offset yet")
    return lags


def _describe(
    admin: AdminClient, names: list[str], notes: list[str]
) -> dict[str, tuple[str, int | None]]:
    try:
        futures = admin.describe_consumer_groups(names, request_timeout=REQUEST_TIMEOUT_S)
        described = {name: f.result() for name, f in futures.items()}
    except KafkaException as exc:
        notes.append(f"the broker does not describe consumer groups ({_why(exc)})")
        return {}
    shown: dict[str, tuple[str, int | None]] = {}
    for name, d in described.items():
        state, members = str(d.state.name).lower(), len(d.members or [])
        # The embedded broker (Tansu 0.6) describes a stable group without its members.
        shown[name] = (state, None if state == "stable" and not members else members)
    return shown


def _lags(
    group: str, offsets: list[TopicPartition], ends: dict[TP, int], state: tuple[str, int | None]
) -> list[GroupLag]:
    per_topic: dict[str, dict[int, int]] = {}
    for tp in offsets:
        if (tp.topic, tp.partition) in ends and tp.offset >= 0:
            per_topic.setdefault(tp.topic, {})[tp.partition] = tp.offset
    return [
        GroupLag(
            group,
            topic,
            state[0],
            state[1],
            dict(sorted(committed.items())),
            sum(max(0, ends[(topic, p)] - o) for p, o in committed.items()),
        )
        for topic, committed in sorted(per_topic.items())
    ]


def _why(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return str(getattr(error, "str", lambda: exc)())


def render(report: Report, as_json: bool, out: Console) -> None:
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    table = Table(title="syncbus topics")
    for column in ("topic", "partitions", "messages", "offsets (partition:low-high)"):
        table.add_column(column, justify="right" if column != "topic" else "left")
    for topic in report.topics:
        if not topic.exists:
            table.add_row(topic.topic, "-", "-", "not created yet", style="dim")
            continue
        ends = " ".join(f"{p.partition}:{p.low}-{p.high}" for p in topic.partitions)
        table.add_row(topic.topic, str(len(topic.partitions)), str(topic.messages), ends)
    out.print(table)
    groups = Table(title="consumer groups")
    for column in ("group", "topic", "state", "members", "committed (partition:offset)", "lag"):
        groups.add_column(column, justify="right" if column in ("members", "lag") else "left")
    for lag in report.groups:
        committed = " ".join(f"{p}:{o}" for p, o in lag.committed.items())
        members = "-" if lag.members is None else str(lag.members)
        style = "yellow" if lag.lag else None
        groups.add_row(
            lag.group, lag.topic, lag.state, members, committed, str(lag.lag), style=style
        )
    if report.groups:
        out.print(groups)
    for note in report.notes:
        out.print(note, style="yellow", markup=False, highlight=False)
