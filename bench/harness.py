# Russian and IPA text is the point of the sample entries:
# ruff: noqa: RUF001
"""What both benchmarks share: a private syncbus deployment and realistic dictionary entries.

A :class:`BenchStack` starts the embedded broker and a durable embedded PostgreSQL (over
TCP, from the same wheels the tests use), runs the migrations, then spawns the real
``python -m cli api`` and ``python -m cli worker`` processes, exactly as a user would run
them. Everything it started is stopped, and its temporary directory removed, on exit,
on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import httpx
import psutil
import psycopg

from cli.embedded import EmbeddedBroker, EmbeddedPostgres, remove_tree
from cli.processes import child_env, free_port, spawn_syncbus, stop_process, wait_http_ok
from db.migrate import upgrade
from producers.sender import encode_body, signed_headers, status_url
from schemas.settings import Settings

ADMIN_KEY = "bench-admin-key"
SECRET = "bench-secret"
SOURCE = "de-ai-worker"
TOPIC_PREFIX = "syncbus."

# The service's own defaults everywhere else (outbox poll, reconciler, SSE polling), so the
# numbers are those of a default deployment; only the group-join wait is shortened.
SERVICE_ENV = {
    "ADMIN_API_KEY": ADMIN_KEY,
    "ADMIN_PIN": "bench-pin",
    "INTERNAL_SYNC_SHARED_SECRET": SECRET,
    "INTERNAL_SYNC_SOURCE": SOURCE,
    "INTERNAL_SYNC_ALLOWED_IPS": "127.0.0.1,::1",
    "SYNCBUS_KAFKA_REBALANCE_TIMEOUT_S": "1",
    "SYNCBUS_TOPIC_PREFIX": TOPIC_PREFIX,
    "SYNCBUS_LOG_LEVEL": "WARNING",
    "MODELS_SYNC_CRON": "",  # no daily models sync firing into a measurement at 02:00 UTC
}


def service_env(pairs: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` strings from the command line as an environment mapping."""
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--service-env wants NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure here."""
    return os.getloadavg()[0]


def load_line(before: float) -> str:
    """The load average before and after a run, for the figures' reader."""
    return (
        f"1-minute load average: {before:.2f} before the run, {load_average():.2f} after "
        f"({os.cpu_count()} CPUs; anything else running skews the figures)"
    )


INTERRUPTED = "[yellow]interrupted; every process started here was stopped[/yellow]"


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into the same unwinding as Ctrl-C so every process is stopped."""


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signum}")


def install_sigterm_handler() -> None:
    signal.signal(signal.SIGTERM, _raise_interrupted)


@dataclass
class BenchStack:
    """Broker, durable PostgreSQL, migrated database, api and worker; a context manager."""

    keep: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(init=False)
    postgres: EmbeddedPostgres | None = field(default=None, init=False)
    broker: EmbeddedBroker | None = field(default=None, init=False)
    database_url: str = field(default="", init=False)
    api_port: int = field(default=0, init=False)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)

    def __enter__(self) -> BenchStack:
        self.workdir = Path(tempfile.mkdtemp(prefix="syncbus-bench-"))
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            for name in ("api", "worker"):
                tail = self.log_tail(name)
                if tail:
                    print(f"--- last lines of the {name} log ---\n{tail}", file=sys.stderr)
        self.close()

    def _start(self) -> None:
        # durable=True: fsync and synchronous commit on, as a real deployment runs.
        self.postgres = EmbeddedPostgres(self.workdir / "pg", free_port(), durable=True).start()
        self.broker = EmbeddedBroker(free_port(), log_path=self.workdir / "broker.log").start()
        self.database_url = self.postgres.create_database("syncbus_bench")
        upgrade(Settings(DATABASE_URL=self.database_url))
        self.api_port = free_port()
        # The api creates the topics; start it first so the worker finds them.
        self.start_api()
        self.start_worker()

    @property
    def env(self) -> dict[str, str]:
        assert self.broker is not None
        own = {"KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap, "DATABASE_URL": self.database_url}
        return child_env(SERVICE_ENV, own, self.extra_env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def push_url(self) -> str:
        return f"{self.url}/api/internal/dictionary-upserts"

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        # Its own session: Ctrl-C reaches only us, and we stop the children.
        proc = spawn_syncbus(args, self.env, self.workdir / f"{name}.log")
        self.procs[name] = proc
        return proc

    def start_api(self) -> None:
        proc = self._spawn("api", ["api", "--port", str(self.api_port)])
        wait_http_ok(f"{self.url}/readyz", proc, 60)

    def start_worker(self) -> None:
        self._spawn("worker", ["worker"])

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with {proc.returncode}")

    def cpu_times(self) -> dict[str, dict[int, float]]:
        """CPU seconds (user + system) so far of the api, the worker, every PostgreSQL
        process, the broker and this script (``client``: the senders, on the same CPUs),
        by pid (PostgreSQL's :data:`REAPED`: its backends that exited); :func:`cpu_used` turns
        two of these into seconds used between."""
        pids = {name: proc.pid for name, proc in self.procs.items()}
        if self.broker is not None and self.broker.proc is not None:
            pids["broker"] = self.broker.proc.pid
        procs: dict[str, list[psutil.Process]] = {"client": [psutil.Process()]}
        for name, pid in pids.items():
            with contextlib.suppress(psutil.Error):  # one that died is counted no further
                procs[name] = [psutil.Process(pid)]
        if self.postgres is not None and self.postgres.proc is not None:
            main = psutil.Process(self.postgres.proc.pid)
            procs["postgres"] = [main, *main.children(recursive=True)]
        times: dict[str, dict[int, float]] = {}
        for name, group in procs.items():
            times[name] = {}
            for process in group:
                with contextlib.suppress(psutil.Error):
                    cpu = process.cpu_times()
                    times[name][process.pid] = cpu.user + cpu.system
        if self.postgres is not None and self.postgres.proc is not None:
            # The backends that exited, once the postmaster reaped them (its children's times).
            with contextlib.suppress(psutil.Error):
                reaped = psutil.Process(self.postgres.proc.pid).cpu_times()
                times["postgres"][REAPED] = reaped.children_user + reaped.children_system
        return times

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def close(self) -> None:
        """Stop every process this stack started (children first), then remove its files."""
        # Ignore a second Ctrl-C while stopping, so the clean-up itself is not cut short.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for name in ("api", "worker"):
                proc = self.procs.pop(name, None)
                if proc is not None:
                    stop_process(proc, signal.SIGTERM, grace_s=15)
            if self.broker is not None:
                self.broker.stop()
                self.broker = None
            if self.postgres is not None:
                self.postgres.stop()
                self.postgres = None
            if self.keep:
                print(f"kept {self.workdir}", file=sys.stderr)
            else:
                remove_tree(self.workdir)
        finally:
            signal.signal(signal.SIGINT, previous)

    def db(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.database_url, autocommit=True)

    def checkpoint(self) -> None:
        """Flush dirty pages now, so one measurement's writes do not slow the next one."""
        with self.db() as conn:
            conn.execute("CHECKPOINT")

    def admin_client(self, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


# The key under which cpu_times files the time of PostgreSQL's backends that exited.
REAPED = 0
# The parts of a run whose CPU seconds the scripts report, in their order.
CPU_PARTS = ("worker", "api", "postgres", "broker", "client")


def cpu_used(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds each part used between two :meth:`BenchStack.cpu_times` readings."""
    used = {}
    for name, pids in after.items():
        earlier = before.get(name, {})
        used[name] = sum(t - earlier.get(pid, 0.0) for pid, t in pids.items())
        if REAPED in pids:
            # A process that exited in between is in REAPED with all its time: take off
            # what it had used before the first reading.
            used[name] -= sum(t for pid, t in earlier.items() if pid not in pids)
    return used


# --- pushing -------------------------------------------------------------------------------


class PushFailed(RuntimeError):
    """A batch was refused, or its job failed."""


def batch_payload(request_id: str, lang: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "requestId": request_id,
        "source": SOURCE,
        "payloadVersion": "1",
        "lang": lang,
        "actorUsername": "bench",
        "entries": entries,
    }


def push_body(client: httpx.Client, push_url: str, request_id: str, body: bytes) -> dict[str, Any]:
    """POST a signed, already encoded batch; retries 429/5xx/network errors a few times."""
    for attempt in range(5):
        try:
            response = client.post(
                push_url, content=body, headers=signed_headers(SECRET, request_id, body)
            )
        except httpx.TransportError:
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
            continue
        if response.status_code in (200, 202):
            return dict(response.json())
        if response.status_code != 429 and response.status_code < 500:
            raise PushFailed(f"push {request_id}: HTTP {response.status_code}: {response.text}")
        time.sleep(0.5 * (attempt + 1))
    raise PushFailed(f"push {request_id}: gave up after 5 attempts")


def push_status(client: httpx.Client, push_url: str, request_id: str) -> dict[str, Any]:
    response = client.get(
        status_url(push_url),
        params={"requestId": request_id},
        headers=signed_headers(SECRET, request_id, b""),
    )
    if response.status_code != 200:
        raise PushFailed(f"status {request_id}: HTTP {response.status_code}: {response.text}")
    return dict(response.json())


def wait_terminal(
    client: httpx.Client,
    push_url: str,
    request_id: str,
    *,
    poll_s: float = 0.1,
    timeout_s: float = 900,
    check: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Poll the seed's status route until the job is ``success`` or ``failed``.

    ``check`` runs before every poll (to fail fast when the worker has died)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check is not None:
            check()
        state = push_status(client, push_url, request_id)
        if state["status"] in ("success", "failed"):
            return state
        if time.monotonic() > deadline:
            raise PushFailed(f"{request_id} still {state['status']} after {timeout_s:.0f}s")
        time.sleep(poll_s)


def wait_events_end(client: httpx.Client, job_id: str) -> None:
    """Follow the job's SSE stream (``client`` carries admin credentials) until it ends:
    the api closes a finished job's stream after its ``complete`` or ``error`` event."""
    with client.stream("GET", f"/v1/syncs/{job_id}/events") as response:
        if response.status_code != 200:
            raise PushFailed(f"events of {job_id}: HTTP {response.status_code}")
        for line in response.iter_lines():
            if line.startswith("event:") and line[6:].strip() in ("complete", "error"):
                return
    raise PushFailed(f"the event stream of {job_id} ended without complete or error")


def push_and_wait(stack: BenchStack, payload: dict[str, Any]) -> dict[str, Any]:
    """One batch, pushed and waited for (warm-up, blockers)."""
    with httpx.Client(timeout=120) as client:
        request_id = str(payload["requestId"])
        push_body(client, stack.push_url, request_id, encode_body(payload))
        state = wait_terminal(client, stack.push_url, request_id, check=stack.check_alive)
    if state["status"] != "success":
        raise PushFailed(f"{request_id} failed: {state.get('errorMessage')}")
    return state


def warm_up(stack: BenchStack, deadline_s: float = 90) -> float:
    """Push one tiny batch (another language) and wait for it: the worker has joined its
    group, topics exist, connections are open. Returns the seconds it took."""
    started = time.monotonic()
    payload = batch_payload(
        f"bench-warmup-{os.getpid()}-{time.time_ns()}",
        "de",
        [{"de": "Hallo", "ru": "привет", "level": "A0"}],
    )
    with httpx.Client(timeout=30) as client:
        push_body(client, stack.push_url, payload["requestId"], encode_body(payload))
        state = wait_terminal(
            client,
            stack.push_url,
            payload["requestId"],
            timeout_s=deadline_s,
            check=stack.check_alive,
        )
    if state["status"] != "success":
        raise PushFailed(f"warm-up batch failed: {state.get('errorMessage')}")
    return time.monotonic() - started


# --- realistic entries ---------------------------------------------------------------------

_ONSETS = (
    "b", "bl", "br", "c", "ch", "cl", "cr", "d", "dr", "f", "fl", "fr", "g", "gl", "gr", "h",
    "j", "k", "l", "m", "n", "p", "pl", "pr", "qu", "r", "s", "sc", "sh", "sl", "sm", "sn",
    "sp", "st", "str", "sw", "t", "th", "tr", "tw", "v", "w", "wh", "wr", "y", "z", "",
)  # fmt: skip
_NUCLEI = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou", "oi", "ie", "y")
_CODAS = (
    "", "", "", "n", "r", "s", "t", "l", "m", "ng", "ck", "ct", "nd", "nt", "st", "sh", "th",
    "ght", "rd", "rk",
)  # fmt: skip
_SUFFIXES = ("", "", "", "", "ing", "ed", "er", "ly", "ness", "ment", "tion", "able", "ful")
_RU_SYLLABLES = (
    "ка", "ро", "на", "ти", "ле", "мо", "ва", "ст", "пр", "ени", "ость", "ный", "ать", "ить",
    "по", "за", "ра", "ко", "де", "ми", "сл", "бо", "го", "жи", "ще", "ю", "я", "ё",
)  # fmt: skip
_IPA = ("ə", "ɪ", "æ", "ʌ", "ɒ", "ʊ", "iː", "uː", "ɜː", "eɪ", "aɪ", "əʊ", "ɔː", "θ", "ð", "ʃ")
_REGISTERS = ("нейтральная", "разговорная", "книжная", "официальная", "сленг", "устаревшее")
_RARITIES = ("не редкое", "не редкое", "редкое", "очень редкое")
_ACCENTS = ("both", "both", "both", "uk", "us")
_LEVELS = ("A0", "A1", "A2", "B1", "B2", "C1", "C2")
_TEMPLATES = (
    "I didn't expect the {w} to be so close.",
    "She said the {w} was the best part of the trip.",
    "We talked about {w} for hours.",
    "Is there a {w} near here?",
    "The report mentions {w} twice on the first page.",
    "He keeps a {w} in his desk drawer.",
)
_RU_TEMPLATES = (
    "Я не ожидал, что {w} будет так близко.",
    "Она сказала, что {w} — лучшая часть поездки.",
    "Мы часами говорили о {w}.",
    "Здесь рядом есть {w}?",
    "В отчёте {w} упоминается дважды на первой странице.",
    "Он держит {w} в ящике стола.",
)


def _headword(rng: random.Random) -> str:
    syllables = rng.choices((1, 2, 3, 4), weights=(3, 5, 3, 1))[0]
    word = "".join(
        rng.choice(_ONSETS) + rng.choice(_NUCLEI) + rng.choice(_CODAS) for _ in range(syllables)
    )
    word += rng.choice(_SUFFIXES)
    if rng.random() < 0.06:  # phrasal verbs and set phrases
        word += " " + rng.choice(("up", "off", "out", "in", "away", "over", "of the day"))
    return word


def _russian(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_RU_SYLLABLES) for _ in range(parts))


def make_entries(count: int, *, lang: str = "en", seed: int = 4) -> list[dict[str, Any]]:
    """``count`` seed-004-shaped entries with unique headwords, deterministic for ``seed``."""
    rng = random.Random(seed)
    seen: set[str] = set()
    entries: list[dict[str, Any]] = []
    while len(entries) < count:
        word = _headword(rng)
        if word in seen:
            continue
        seen.add(word)
        ru = _russian(rng, rng.randint(2, 4))
        ipa = "".join(rng.choice(_IPA) + rng.choice("bdfgklmnprstvz") for _ in range(3))
        template = rng.randrange(len(_TEMPLATES))
        entries.append(
            {
                lang: word,
                "ru": ru,
                "level": rng.choice(_LEVELS),
                "register": rng.choice(_REGISTERS),
                "accent": rng.choice(_ACCENTS),
                "frequencyRank": len(entries) + 1,
                "rarity": rng.choice(_RARITIES),
                "ipaUk": f"ˈ{ipa}",
                "ipaUs": f"ˈ{ipa.replace('əʊ', 'oʊ').replace('ɒ', 'ɑː')}",
                "example": _TEMPLATES[template].format(w=word),
                "exampleRu": _RU_TEMPLATES[template].format(w=ru),
            }
        )
    return entries


def chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
