"""Two workers and two apis on one broker and one PostgreSQL: scopes run in parallel, and a
worker or an api killed outright loses, doubles and reorders nothing."""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import psycopg

from cli.processes import free_port, wait_http_ok
from tests.kafka_tools import read_topic
from tests.payloads import signed
from tests.stack import SECRET, Stack
from tests.waiting import wait_for

# One scope per partition of the 4-partition request topic: the producer's partitioner is
# CRC32(key) % partitions, and dictionary:de, :en, :nl, :it give 0, 1, 2, 3.
LANGS = ("de", "en", "nl", "it")
ENTRIES = 100  # per batch: enough work that jobs queue up behind the one running
SESSION_TIMEOUT_S = 2.0  # tests/stack.py's SYNCBUS_KAFKA_SESSION_TIMEOUT_S
PUSH = "/api/internal/dictionary-upserts"


@dataclass
class Pushed:
    """What senders got back: the request ids each api accepted, in the order sent."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_lang: dict[str, list[str]] = field(default_factory=dict)
    by_api: dict[str, list[str]] = field(default_factory=dict)
    in_flight: dict[str, str] = field(default_factory=dict)  # request id -> api

    def sending(self, api: str, request_id: str) -> None:
        with self.lock:
            self.in_flight[request_id] = api

    def accepted(self, lang: str, api: str, request_id: str) -> None:
        with self.lock:
            self.in_flight.pop(request_id, None)
            self.by_lang.setdefault(lang, []).append(request_id)
            self.by_api.setdefault(api, []).append(request_id)

    def sent_to(self, api: str) -> list[str]:
        """Request ids ``api`` accepted or is answering now."""
        with self.lock:
            return [*self.by_api.get(api, []), *(r for r, a in self.in_flight.items() if a == api)]

    def all(self) -> list[str]:
        with self.lock:
            return [rid for rids in self.by_lang.values() for rid in rids]


def payload(lang: str, seq: int, request_id: str) -> dict[str, Any]:
    """Batch ``seq`` of ``lang``: ``shared`` gets this batch's value, plus new words."""
    entries = [{lang: "shared", "ru": f"общий-{seq}", "example": f"{lang}-{seq}"}]
    entries += [{lang: f"w{seq}-{i}", "ru": f"слово-{i}"} for i in range(ENTRIES - 1)]
    return {
        "requestId": request_id,
        "source": "de-ai-worker",
        "payloadVersion": "1",
        "lang": lang,
        "actorUsername": "scale-out",
        "entries": entries,
    }


def post(client: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
    content, headers = signed(body, SECRET)
    return client.post(url + PUSH, content=content, headers=headers)


def start_api_cut_off(stack: Stack, name: str) -> Callable[[], str]:
    """An api replica whose broker address answers nothing: it accepts requests (they wait
    in the outbox, as when the broker is down) but publishes none of them itself. Its
    start-up first waits out the broker's topic check (10 s), so the other services can
    start meanwhile: returns a call that waits until it answers, then gives its URL."""
    port = free_port()
    nowhere = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    proc = stack._spawn(name, ["api", "--port", str(port)], nowhere)
    url = f"http://127.0.0.1:{port}"

    def ready() -> str:
        wait_http_ok(f"{url}/healthz", proc, 30)  # not /readyz: it says the broker is missing
        return url

    return ready


def jobs_by_request(stack: Stack) -> dict[str, dict[str, Any]]:
    rows = stack.query(
        "SELECT request_id, id, status, attempt, created, updated, result, started_at, "
        "finished_at FROM sync_jobs"
    )
    keys = ("request_id", "id", "status", "attempt", "created", "updated", "result")
    return {row[0]: dict(zip((*keys, "started", "finished"), row, strict=True)) for row in rows}


def all_succeeded(stack: Stack, request_ids: list[str]) -> Callable[[], bool]:
    def probe() -> bool:
        return bool(
            stack.scalar(
                "SELECT count(*) = %s FROM sync_jobs WHERE request_id = ANY(%s) "
                "AND status = 'succeeded'",
                (len(request_ids), request_ids),
            )
        )

    return probe


def ran_on(stack: Stack, workers: list[str], request_ids: list[str]) -> dict[str, str]:
    """Which worker finished each request, from its log's ``job ... succeeded`` lines,
    waiting for all of ``request_ids``: a job's row says succeeded a moment before its
    worker logs it."""

    def all_logged() -> dict[str, str] | None:
        found: dict[str, str] = {}
        for name in workers:
            for line in stack.log(name).splitlines():
                match = re.search(r"job \S+ succeeded after .*request_id=([^\s\]]+)", line)
                if match:
                    found[match.group(1)] = name
        return found if found.keys() >= set(request_ids) else None

    return wait_for(all_logged, timeout=10, what=f"{len(request_ids)} jobs logged as succeeded")


def start_workers(stack: Stack, names: list[str]) -> dict[str, str]:
    """Start the workers and wait until each one has applied batches of its own in two
    alike rounds of warm-up batches: both are in the group, with partitions of the request
    topic each. Returns which worker applied each language's batch in the last round."""
    for name in names:
        stack.start_worker(name)
    stack.start_api()
    warmups: list[str] = []
    rounds: list[dict[str, str]] = []  # each round's worker by language

    def both_work() -> bool:
        for name in names:
            exited = stack.procs[name].poll()
            assert exited is None, f"{name} exited ({exited}):\n{stack.log(name)[-3000:]}"
        this_round = []
        with httpx.Client(timeout=30) as client:
            for lang in LANGS:
                rid = f"{lang}-000-{uuid.uuid4().hex[:8]}"
                assert post(client, stack.url, payload(lang, 0, rid)).status_code == 202
                this_round.append(rid)
        warmups.extend(this_round)
        wait_for(all_succeeded(stack, warmups), timeout=30, what="warm-up batches")
        ran = ran_on(stack, names, this_round)
        rounds.append({rid.split("-")[0]: ran[rid] for rid in this_round})
        # Two rounds alike: a round the rebalance cut through (a language applied by
        # worker-a just before worker-b took its partition) does not count.
        return (
            len(rounds) > 1 and rounds[-2] == rounds[-1] and set(rounds[-1].values()) == set(names)
        )

    wait_for(both_work, timeout=40, interval=0.2, what="both workers to take jobs")
    stack.execute("DELETE FROM dictionary_versions")
    return rounds[-1]


def send_in_order(
    urls: dict[str, str], lang: str, batches: int, pushed: Pushed, stop: threading.Event
) -> None:
    """One sender: ``lang``'s batches in sequence, each sent once it was accepted, to the
    apis in turn; a batch an api could not take goes (same request id) to the next one."""
    names = list(urls)
    with httpx.Client(timeout=30) as client:
        for seq in range(1, batches + 1):
            rid = f"{lang}-{seq:03d}-{uuid.uuid4().hex[:8]}"
            body = payload(lang, seq, rid)
            for turn in range(seq, seq + 20 * len(names)):
                if stop.is_set():
                    return
                name = names[turn % len(names)]
                pushed.sending(name, rid)
                try:
                    response = post(client, urls[name], body)
                except httpx.TransportError:
                    continue  # that api is gone: the next one takes the same request id
                if response.status_code in (200, 202):
                    pushed.accepted(lang, name if response.status_code == 202 else "", rid)
                    break
            else:
                raise AssertionError(f"no api accepted {rid}")


def check_exactly_once(stack: Stack, pushed: Pushed, batches: int) -> None:
    """Every accepted batch applied once: its counts, one version bump, its audit rows
    and its events once each."""
    jobs = jobs_by_request(stack)
    for lang in LANGS:
        sent = pushed.by_lang[lang]
        assert len(sent) == batches
        for rid in sent:
            job = jobs[rid]
            assert job["status"] == "succeeded", rid
            assert (job["created"], job["updated"]) == (ENTRIES - 1, 1), rid
        versions = sorted(jobs[rid]["result"]["version"] for rid in sent)
        assert versions == list(range(1, batches + 1)), f"{lang}: one version bump each"
        assert (
            stack.scalar("SELECT version FROM dictionary_versions WHERE lang = %s", (lang,))
            == batches
        )
    ids = [jobs[rid]["id"] for rid in pushed.all()]
    per_job = stack.query(
        "SELECT j.id, (SELECT count(*) FROM dictionary_audit_log a WHERE a.job_id = j.id), "
        "(SELECT count(*) FROM sync_events e WHERE e.job_id = j.id AND e.type = 'complete'), "
        "(SELECT count(*) FROM audit_log l WHERE l.job_id = j.id) "
        "FROM sync_jobs j WHERE j.id = ANY(%s)",
        (ids,),
    )
    assert len(per_job) == len(ids)
    assert {row[1:] for row in per_job} == {(ENTRIES, 1, 1)}, "audit rows and events once each"


def published_order(stack: Stack, pushed: Pushed) -> dict[str, list[str]]:
    """Each scope's requests in the order they first reached the request topic."""
    wanted = set(pushed.all())

    def complete(values: list[dict[str, Any]]) -> bool:
        return wanted <= {v["request_id"] for v in values}

    topic = f"t{stack.name}.requests.dictionary"
    order: dict[str, list[str]] = {}
    for value in read_topic(stack.broker.bootstrap, topic, until=complete):
        rid = value["request_id"]
        if rid in wanted and rid not in order.setdefault(value["scope"], []):
            order[value["scope"]].append(rid)
    return order


def order_problems(stack: Stack, pushed: Pushed) -> list[str]:
    """Where a scope's batches were not applied in the order their sender sent them (each
    was sent once the previous one was accepted). The order they reached the request topic
    in does not count: a batch published late (by another api replica) is applied before
    the ones accepted after it. The last batch's value must win, and audit rows follow the
    same order."""
    jobs = jobs_by_request(stack)
    problems = []
    for lang in LANGS:
        sent = pushed.by_lang[lang]
        applied = sorted(sent, key=lambda rid: jobs[rid]["result"]["version"])
        audited = [
            row[0]
            for row in stack.query(
                "SELECT j.request_id FROM dictionary_audit_log a JOIN sync_jobs j "
                "ON j.id = a.job_id WHERE a.lang = %s AND a.word = 'shared' "
                "AND j.request_id = ANY(%s) ORDER BY a.id",
                (lang, sent),
            )
        ]
        final = stack.scalar(
            "SELECT example FROM dictionary_entries WHERE lang = %s AND word = 'shared'", (lang,)
        )
        if applied != sent:
            problems.append(f"{lang}: applied out of send order: {seqs(applied)}")
        if audited != applied:
            problems.append(f"{lang}: audit rows not in version order")
        if final != f"{lang}-{len(sent)}":
            problems.append(f"{lang}: final value {final!r}, not the last batch's")
    return problems


def seqs(request_ids: list[str]) -> list[int]:
    return [int(rid.split("-")[1]) for rid in request_ids]


def expect_in_order(stack: Stack, pushed: Pushed) -> None:
    problems = order_problems(stack, pushed)
    assert not problems, problems


def unpublished(stack: Stack, pushed: Pushed, name: str) -> list[str]:
    """The requests api ``name`` accepted whose outbox rows are still waiting."""
    rows = stack.query(
        "SELECT request_id FROM outbox WHERE request_id = ANY(%s)", (pushed.sent_to(name),)
    )
    return [row[0] for row in rows]


def test_scopes_spread_over_both_workers_and_run_in_parallel(isolated_stack: Stack) -> None:
    stack = isolated_stack
    workers = ["worker-a", "worker-b"]
    start_workers(stack, workers)
    pushed, stop = Pushed(), threading.Event()
    batches = 6
    with ThreadPoolExecutor(len(LANGS)) as pool:
        for done in [
            pool.submit(send_in_order, {"api": stack.url}, lang, batches, pushed, stop)
            for lang in LANGS
        ]:
            done.result()
    wait_for(all_succeeded(stack, pushed.all()), timeout=60, what="every batch")
    check_exactly_once(stack, pushed, batches)
    expect_in_order(stack, pushed)

    where = ran_on(stack, workers, pushed.all())
    jobs = jobs_by_request(stack)
    langs_of = {
        w: {lang for lang in LANGS for r in pushed.by_lang[lang] if where[r] == w} for w in workers
    }
    assert all(langs_of.values()), f"both workers took scopes: {langs_of}"
    # In parallel: a job of one worker ran while a job of the other one did.
    spans: dict[str, list[tuple[datetime, datetime]]] = {w: [] for w in workers}
    for rid in pushed.all():
        spans[where[rid]].append((jobs[rid]["started"], jobs[rid]["finished"]))
    assert any(
        a_start < b_end and b_start < a_end
        for a_start, a_end in spans["worker-a"]
        for b_start, b_end in spans["worker-b"]
    ), "jobs of the two workers overlapped in time"


def test_worker_killed_mid_flow_hands_its_scopes_over_in_order(isolated_stack: Stack) -> None:
    stack = isolated_stack
    # Well above the session timeout, as in production (300 s against 10 s by default):
    # the surviving worker gets the partitions before the killed worker's job goes stale.
    stack.env_overrides["SYNCBUS_JOB_STALE_AFTER_S"] = "6"
    workers = ["worker-a", "worker-b"]
    # worker-a's languages now: a language it ran before worker-b joined may be worker-b's.
    mine = {lang for lang, worker in start_workers(stack, workers).items() if worker == "worker-a"}
    pushed, stop = Pushed(), threading.Event()
    batches = 12
    with psycopg.connect(stack.database_url) as blocker:
        # Holds back every version bump: a job writes its entries and audit rows, then
        # waits here, mid-transaction. So worker-a cannot finish the job it is killed in.
        blocker.execute("LOCK TABLE dictionary_versions IN EXCLUSIVE MODE")
        with ThreadPoolExecutor(len(LANGS)) as pool:
            senders = [
                pool.submit(send_in_order, {"api": stack.url}, lang, batches, pushed, stop)
                for lang in LANGS
            ]

            def victim_busy() -> str | None:
                """worker-a with a job of one of its scopes running."""
                running = stack.scalar(
                    "SELECT string_agg(request_id, ',' ORDER BY number) FROM sync_jobs "
                    "WHERE status = 'running'"
                )
                busy = [r for r in (running or "").split(",") if r.split("-")[0] in mine]
                return busy[0] if busy else None

            try:
                in_hand = wait_for(victim_busy, timeout=30, interval=0.01, what="worker-a busy")
                killed_at = time.monotonic()
                stack.stop("worker-a", signal.SIGKILL)
            except BaseException:
                stop.set()
                raise
            finally:
                blocker.rollback()
                for sender in senders:
                    sender.result()
    lang = in_hand.split("-")[0]
    after = pushed.by_lang[lang][pushed.by_lang[lang].index(in_hand) + 1 :]
    assert after, "the killed worker's scope had batches queued behind the one it held"

    def next_applied() -> bool:
        return bool(jobs_by_request(stack)[after[0]]["status"] == "succeeded")

    wait_for(next_applied, timeout=30, interval=0.02, what="worker-b to take over")
    took = time.monotonic() - killed_at
    print(f"the next batch of {lang} applied {took:.1f}s after the kill")
    wait_for(all_succeeded(stack, pushed.all()), timeout=60, what="every batch")
    check_exactly_once(stack, pushed, batches)
    assert took < SESSION_TIMEOUT_S + 8, f"takeover took {took:.1f}s"
    expect_in_order(stack, pushed)
    # Not left to the reconciler: the survivor took the held job over as soon as the
    # request came back to it (the killed worker's job lock was gone with its connection).
    assert jobs_by_request(stack)[in_hand]["attempt"] > 1
    assert "worker is gone; taking it over" in stack.log("worker-b"), stack.log("worker-b")


def test_api_replica_killed_loses_no_accepted_request(isolated_stack: Stack) -> None:
    """api-2 is cut off from the broker (its address answers nothing): what it accepts
    waits in the outbox until another process's relay publishes it, after batches of the
    same scope accepted later by the other api. Killed with rows still waiting, it loses
    none of them, and every scope is still applied in the order its batches were sent."""
    stack = isolated_stack
    workers = ["worker-a", "worker-b"]
    api_2 = start_api_cut_off(stack, "api-2")
    start_workers(stack, workers)
    urls = {"api": stack.url, "api-2": api_2()}
    pushed, stop = Pushed(), threading.Event()
    batches = 10
    with ThreadPoolExecutor(len(LANGS)) as pool:
        senders = [pool.submit(send_in_order, urls, lang, batches, pushed, stop) for lang in LANGS]
        try:

            def holding() -> list[str] | None:
                if len(pushed.by_api.get("api-2", [])) < len(LANGS) * 2:
                    return None
                return unpublished(stack, pushed, "api-2")

            left = wait_for(
                holding,
                timeout=30,
                interval=0.01,
                what="api-2 to hold accepted batches",
            )
            stack.stop("api-2", signal.SIGKILL)
            before = len(pushed.by_api.get("api", []))
        except BaseException:
            stop.set()
            raise
        finally:
            for sender in senders:
                sender.result()
    after_kill = len(pushed.by_api.get("api", [])) - before
    assert after_kill > 0, "the other api kept accepting"
    assert set(left) <= set(pushed.all()), "what the dead api left was accepted (or replayed)"
    wait_for(all_succeeded(stack, pushed.all()), timeout=60, what="every accepted batch")
    check_exactly_once(stack, pushed, batches)
    expect_in_order(stack, pushed)
    # Another process's relay publishes what the dead replica left once its claim on the
    # rows it wrote runs out (WRITER_CLAIM_S after each was written): let that time pass
    # now rather than wait for it. Then every batch reached the topic...
    stack.execute(
        "UPDATE outbox SET claimed_until = now() WHERE request_id = ANY(%s)",
        (pushed.sent_to("api-2"),),
    )
    wait_for(
        lambda: not unpublished(stack, pushed, "api-2"),
        timeout=30,
        what="the rows api-2 left to be published",
    )
    published = published_order(stack, pushed)
    assert {lang: sorted(published.get(lang, [])) for lang in LANGS} == {
        lang: sorted(pushed.by_lang[lang]) for lang in LANGS
    }
    # ...some of them after batches of their scope accepted after them: what made this a
    # test of order, each was still applied in its place.
    late = [lang for lang in LANGS if published[lang] != pushed.by_lang[lang]]
    assert late, "some batch was published after the next one of its scope"
