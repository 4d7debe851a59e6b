"""The operators' commands: topics, tail, replay and inspect (their options and exit codes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.config import MISCONFIGURED, load_settings
from cli.console import error, make_console

if TYPE_CHECKING:  # the commands import their modules when run: `syncbus` starts faster
    import uuid

    from schemas.settings import Settings

console = make_console()
Json = Annotated[bool, typer.Option("--json", help="One JSON document.")]
JsonLines = Annotated[bool, typer.Option("--json", help="One JSON document per message.")]
Since = Annotated[
    str | None,
    typer.Option(help="From this time: a duration ago (10m, 2h, 1d) or an ISO 8601 timestamp."),
]
Until = Annotated[str | None, typer.Option(help="Up to this time (same forms as --since).")]
RequestIds = Annotated[
    list[str] | None,
    typer.Option(
        "--request-id",
        metavar="ID",
        help="Only messages with this request_id header (repeatable).",
    ),
]


def _fail(message: str, code: int = MISCONFIGURED) -> typer.Exit:
    error(console, message)
    return typer.Exit(code)


def register(app: typer.Typer, client_note: str) -> None:
    """Add the four commands to ``app``."""
    app.command(
        "topics",
        short_help="Topics, their partitions and end offsets, and consumer lag.",
        help="Every syncbus topic: partitions, offsets, and each consumer group's lag.\n\n"
        "Exit 0, or 2 when the broker cannot be reached.\n\n" + client_note,
    )(topics_command)
    app.command(
        "tail",
        short_help="Print a topic's messages, filtered by request or job.",
        help="Print a topic's messages, one line each (or JSON), filtered by their headers.\n\n"
        "TOPIC is a syncbus topic with or without its prefix (progress, requests.dictionary). "
        "Without --from-beginning or --since: the last --last messages. Without --follow it "
        "stops at the end offsets taken at start. Exit 2 for an unknown topic or job.\n\n"
        + client_note,
    )(tail_command)
    app.command(
        "replay",
        short_help="Send dead-lettered or earlier requests again.",
        help="Send dead-lettered requests (or, with --topic, a range of a request topic) "
        "again.\n\nA failed job runs again; a request that succeeded is skipped by the worker "
        "(request-id idempotency): --rerun runs it again as a new job with a new request id. "
        "Exit 0 sent, 1 some not acknowledged or nothing matched the request ids, 2 refused."
        "\n\n" + client_note,
    )(replay_command)
    app.command(
        "inspect",
        short_help="A job, its events and audit rows.",
        help="A job's row, its events and its audit rows from PostgreSQL.\n\n"
        "JOB is the job's id (a UUID) or its number. Exit 2 for an unknown or malformed "
        "one.\n\n" + client_note,
    )(inspect_command)


def topics_command(as_json: Json = False) -> None:
    from cli.kafka_read import KafkaProblem
    from cli.topics import collect, render

    settings = load_settings(console)
    try:
        report = collect(settings)
    except KafkaProblem as exc:
        raise _fail(str(exc)) from None
    render(report, as_json, make_console(stderr=False))


def tail_command(
    topic: Annotated[str, typer.Argument(help="The topic, e.g. progress or syncbus.dlq.")],
    from_beginning: Annotated[bool, typer.Option(help="From each partition's start.")] = False,
    since: Since = None,
    last: Annotated[
        int, typer.Option(min=0, help="Without --from-beginning/--since: how many to show.")
    ] = 10,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")] = False,
    job: Annotated[
        str | None,
        typer.Option(
            help="Only this job's messages (by id or number; its request id header or key)."
        ),
    ] = None,
    request_id: RequestIds = None,
    as_json: JsonLines = False,
) -> None:
    from cli.inspect import parse_job_ref
    from cli.kafka_read import KafkaProblem, resolve_topic
    from cli.tail import Options, tail
    from cli.when import BadTime, parse_when, to_ms
    from schemas.topics import Topics

    settings = load_settings(console)
    if from_beginning and since:
        raise _fail("give --from-beginning or --since, not both")
    try:
        name = resolve_topic(Topics(settings.topic_prefix), topic)
        since_ms = to_ms(parse_when(since)) if since else None
        ref = parse_job_ref(job) if job else None
    except (KafkaProblem, BadTime, ValueError) as exc:
        raise _fail(str(exc)) from None
    request_ids = set(request_id or [])
    job_key = None
    if ref is not None:
        job_key, job_request_id = _job_of(settings, ref)
        request_ids.add(job_request_id)
    options = Options(
        name, from_beginning, since_ms, last, follow, frozenset(request_ids), job_key, as_json
    )
    try:
        tail(settings, options, make_console(stderr=False))
    except KafkaProblem as exc:
        raise _fail(str(exc)) from None


def _job_of(settings: Settings, ref: uuid.UUID | int) -> tuple[str, str]:
    """The job's id (the progress topic's key) and request id (every message's header)."""
    from cli.database import DatabaseProblem
    from cli.inspect import UnknownJob, load

    try:
        job = load(settings, ref).job
    except UnknownJob as exc:
        raise _fail(str(exc)) from None
    except DatabaseProblem as exc:
        raise _fail(f"--job needs the database to find the job's request id: {exc}") from None
    return str(job["id"]), str(job["request_id"])


def replay_command(
    request_id: RequestIds = None,
    since: Since = None,
    until: Until = None,
    topic: Annotated[
        str | None,
        typer.Option(help="Re-publish from this request topic instead of the dead letters."),
    ] = None,
    from_offset: Annotated[
        int | None, typer.Option(min=0, help="With --topic: the first offset (each partition).")
    ] = None,
    to_offset: Annotated[
        int | None, typer.Option(min=0, help="With --topic: the last offset, included.")
    ] = None,
    partition: Annotated[int | None, typer.Option(min=0, help="Only this partition.")] = None,
    rerun: Annotated[
        bool, typer.Option(help="Run again as new jobs with new request ids (params.rerun_of).")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="List what would be sent; send nothing.")] = False,
) -> None:
    from cli.database import DatabaseProblem
    from cli.kafka_read import KafkaProblem, resolve_topic
    from cli.replay import Selection, replay, select
    from cli.when import BadTime, parse_when, to_ms
    from schemas.topics import DOMAINS, Topics

    settings = load_settings(console)
    topics = Topics(settings.topic_prefix)
    try:
        name = resolve_topic(topics, topic) if topic else None
        since_ms = to_ms(parse_when(since)) if since else None
        until_ms = to_ms(parse_when(until)) if until else None
    except (KafkaProblem, BadTime) as exc:
        raise _fail(str(exc)) from None
    if name is not None and name not in [topics.requests(d) for d in DOMAINS]:
        raise _fail(f"--topic must be a request topic ({topics.requests('<domain>')}), not {name}")
    if name is None and (from_offset is not None or to_offset is not None):
        raise _fail("--from-offset and --to-offset need --topic (offsets of a request topic)")
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise _fail(f"--since {since} is after --until {until}: nothing lies between them")
    if from_offset is not None and to_offset is not None and from_offset > to_offset:
        raise _fail(f"--from-offset {from_offset} is past --to-offset {to_offset}")
    ranged = (request_id, since, until, from_offset is not None, to_offset is not None)
    if name is not None and not any(ranged):
        raise _fail(
            "with --topic, say what: --from-offset/--to-offset, --since/--until or --request-id"
        )
    selection = Selection(
        name, frozenset(request_id or []), since_ms, until_ms, from_offset, to_offset, partition
    )
    out = make_console(stderr=False)
    try:
        candidates = select(settings, selection, out)
        result = replay(settings, candidates, rerun=rerun, dry_run=dry_run, out=out)
    except (KafkaProblem, DatabaseProblem) as exc:
        raise _fail(str(exc)) from None
    for failure in result.failed:
        error(console, f"not sent: {failure}")
    verb = "would send" if dry_run else "sent"
    count = len(candidates) - len(result.skipped) if dry_run else result.sent
    out.print(f"{verb} {count}, skipped {len(result.skipped)}", highlight=False)
    if result.failed or (request_id and not candidates):
        if not candidates:
            error(console, "nothing matched the request ids given")
        raise typer.Exit(1)


def inspect_command(
    job: Annotated[str, typer.Argument(metavar="JOB", help="The job's id or number.")],
    as_json: Json = False,
) -> None:
    from cli.database import DatabaseProblem
    from cli.inspect import UnknownJob, load, parse_job_ref, render

    settings = load_settings(console)
    try:
        view = load(settings, parse_job_ref(job))
    except (ValueError, UnknownJob, DatabaseProblem) as exc:
        raise _fail(str(exc)) from None
    render(view, as_json, make_console(stderr=False))
