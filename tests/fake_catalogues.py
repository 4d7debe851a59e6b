"""One local HTTP server speaking the four model catalogue APIs from fixtures, faults on demand."""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

from cli.processes import free_port
from schemas.models import SourceName

FIXTURES = Path(__file__).parent / "fixtures" / "models"
AA_API_KEY = "test-aa-key"
PATHS: dict[SourceName, str] = {
    "modelsdev": "/api.json",
    "openrouter": "/api/v1/models",
    "huggingface": "/api/models",
    "artificialanalysis": "/api/v2/data/llms/models",
}
SOURCE_BY_PATH = {path: source for source, path in PATHS.items()}
# The Hub's anonymous API quota per 5-minute window (rate-limits.md, September 2025).
HF_QUOTA = 500
HF_WINDOW_S = 300
HF_MAX_LIMIT = 1000
# The token huggingface_pagination.md gives for page 2 of search=llama&sort=downloads&limit=3.
HF_PAGE2_CURSOR = (
    "eyIkb3IiOlt7ImRvd25sb2FkcyI6MjA4NzU1MiwiX2lkIjp7IiRndCI6IjY2ZWFlZjc4ZDI0MDAxZDc4Mzg4MGRkMC"
    "J9fSx7ImRvd25sb2FkcyI6eyIkbHQiOjIwODc1NTJ9fV19"
)
MALFORMED_BODY = b'{"data": [{"id": "openai/gpt-4.1", "name": '


def load_fixture(name: str) -> Any:
    """A fixture file from ``tests/fixtures/models`` as parsed JSON."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def fixture_payloads() -> dict[SourceName, Any]:
    """What each source serves by default; Hugging Face's is its two pages as one item list."""
    return {
        "modelsdev": load_fixture("models_dev_api.json"),
        "openrouter": load_fixture("openrouter_models.json"),
        "huggingface": [
            *load_fixture("huggingface_models_page1.json"),
            *load_fixture("huggingface_models_page2.json"),
        ],
        "artificialanalysis": load_fixture("artificialanalysis_models.json"),
    }


def unreachable_base_url() -> str:
    """An origin on 127.0.0.1 where nothing listens: connecting is refused."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it; ``at`` is ``time.monotonic()`` on arrival."""

    source: SourceName | None
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float
    url: str


@dataclass(frozen=True)
class _CannedFailure:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class _SourceControls:
    payload: Any
    failures: deque[_CannedFailure] = field(default_factory=deque)
    pass_through: int = 0
    delay_s: float = 0.0
    malformed: bool = False
    disappeared: Literal["404", "drop"] | None = None


@dataclass(frozen=True)
class _Answer:
    """How to answer one request, decided under the lock when it arrives."""

    failure: _CannedFailure | None
    delay_s: float
    malformed: bool
    disappeared: Literal["404", "drop"] | None
    payload: Any
    cut_delay_short: threading.Event


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeCatalogues

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up on a slow answer is expected here; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Tests read ``FakeCatalogues.requests`` instead of an access log."""

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(document, separators=(",", ":")).encode(), headers)


class FakeCatalogues:
    """models.dev, OpenRouter, Hugging Face and Artificial Analysis on one 127.0.0.1 port.

    Use as a context manager. Every control applies to one source and lasts until ``reset()``:
    ``fail_next`` / ``throttle_next`` (canned 429/5xx answers), ``delay``, ``serve_malformed``,
    ``disappear`` (404 or a dropped connection), ``set_payload``. ``requests()`` lists what arrived.
    """

    def __init__(self, *, aa_api_key: str = AA_API_KEY) -> None:
        self.aa_api_key = aa_api_key
        self._lock = threading.Lock()
        self._controls = {source: _SourceControls(p) for source, p in fixture_payloads().items()}
        self._requests: list[RecordedRequest] = []
        self._release_delays = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeCatalogues:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release_delays.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def settings_env(self) -> dict[str, str]:
        """Env pointing syncbus at this fake; the HF query is the fixtures' own (2 pages of 3)."""
        return {
            "MODELSDEV_BASE_URL": self.base_url,
            "OPENROUTER_BASE_URL": self.base_url,
            "HUGGINGFACE_BASE_URL": self.base_url,
            "ARTIFICIALANALYSIS_BASE_URL": self.base_url,
            "ARTIFICIALANALYSIS_API_KEY": self.aa_api_key,
            "HUGGINGFACE_SEARCH": "llama",
            "HUGGINGFACE_PAGE_SIZE": "3",
        }

    # --- controls ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Fixture payloads back, every fault off, request log emptied, slow answers released."""
        with self._lock:
            self._controls = {
                source: _SourceControls(p) for source, p in fixture_payloads().items()
            }
            self._requests.clear()
            self._release_delays.set()
            self._release_delays = threading.Event()

    def fail_next(
        self,
        source: SourceName,
        times: int = 1,
        *,
        status: int = 503,
        headers: dict[str, str] | None = None,
        body: Any = None,
        after: int = 0,
    ) -> None:
        """Answer ``times`` requests with ``status``, after letting ``after`` requests through."""
        document = body if body is not None else {"error": f"HTTP {status}"}
        failure = _CannedFailure(status, dict(headers or {}), json.dumps(document).encode())
        with self._lock:
            controls = self._controls[source]
            controls.pass_through = after
            controls.failures.extend([failure] * times)

    def throttle_next(
        self,
        source: SourceName,
        times: int = 1,
        *,
        retry_after: str | None = None,
        ratelimit_reset_s: int | None = None,
        after: int = 0,
    ) -> None:
        """429 for ``times`` requests, with ``Retry-After`` and/or ``RateLimit: ..;r=0;t=..``."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if ratelimit_reset_s is not None:
            headers["RateLimit"] = f'"api";r=0;t={ratelimit_reset_s}'
            headers["RateLimit-Policy"] = f'"fixed window";"api";q={HF_QUOTA};w={HF_WINDOW_S}'
        self.fail_next(
            source,
            times,
            status=429,
            headers=headers,
            body={"error": "Too Many Requests"},
            after=after,
        )

    def delay(self, source: SourceName, seconds: float) -> None:
        """Hold every answer of ``source`` for ``seconds`` before anything is sent."""
        with self._lock:
            self._controls[source].delay_s = seconds

    def serve_malformed(self, source: SourceName, malformed: bool = True) -> None:
        """Answer 200 with a truncated JSON body."""
        with self._lock:
            self._controls[source].malformed = malformed

    def disappear(self, source: SourceName, how: Literal["404", "drop"] | None = "404") -> None:
        """``"404"``: the path is gone; ``"drop"``: close the connection without answering.

        For a refused connection, point the source at ``unreachable_base_url()`` instead.
        """
        with self._lock:
            self._controls[source].disappeared = how

    def set_payload(self, source: SourceName, payload: Any) -> None:
        """Replace what ``source`` serves; for Hugging Face, a flat list of items to page."""
        with self._lock:
            self._controls[source].payload = copy.deepcopy(payload)

    def payload(self, source: SourceName) -> Any:
        """A copy of what ``source`` serves now."""
        with self._lock:
            return copy.deepcopy(self._controls[source].payload)

    def requests(self, source: SourceName | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if source is None or r.source == source]

    def count(self, path: str) -> int:
        """How many requests arrived for ``path`` (query string ignored)."""
        with self._lock:
            return sum(1 for r in self._requests if r.path == path)

    # --- serving -----------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        source = SOURCE_BY_PATH.get(parts.path)
        request = RecordedRequest(
            source=source,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in handler.headers.items()},
            at=time.monotonic(),
            url=handler.path,
        )
        with self._lock:
            self._requests.append(request)
            answer = None if source is None else self._next_answer(source)
        if answer is None:
            handler.send_json(404, {"error": "Not Found"})
            return
        if answer.delay_s and answer.cut_delay_short.wait(answer.delay_s):
            handler.close_connection = True
            return
        if answer.disappeared == "drop":
            handler.close_connection = True
        elif answer.disappeared == "404":
            handler.send_json(404, {"error": "Not Found"})
        elif answer.failure is not None:
            handler.send(answer.failure.status, answer.failure.body, answer.failure.headers)
        elif answer.malformed:
            handler.send(200, MALFORMED_BODY)
        elif source == "artificialanalysis":
            self._serve_artificialanalysis(handler, request, answer.payload)
        elif source == "huggingface":
            self._serve_huggingface(handler, request, answer.payload)
        else:
            handler.send_json(200, answer.payload)

    def _next_answer(self, source: SourceName) -> _Answer:
        """What to do with a request to ``source`` (called under the lock)."""
        controls = self._controls[source]
        failure = None
        if controls.pass_through > 0:
            controls.pass_through -= 1
        elif controls.failures:
            failure = controls.failures.popleft()
        return _Answer(
            failure,
            controls.delay_s,
            controls.malformed,
            controls.disappeared,
            controls.payload,
            self._release_delays,
        )

    def _serve_artificialanalysis(
        self, handler: _Handler, request: RecordedRequest, payload: Any
    ) -> None:
        key = request.headers.get("x-api-key")
        if not key:
            handler.send_json(401, {"error": "API key is required"})
        elif key != self.aa_api_key:
            handler.send_json(401, {"error": "Invalid API key"})
        else:
            handler.send_json(200, payload)

    def _serve_huggingface(self, handler: _Handler, request: RecordedRequest, items: Any) -> None:
        query = request.query
        search = query.get("search", [""])[0].lower()
        tags = query.get("filter", [])
        sort_key = query.get("sort", ["downloads"])[0] or "downloads"
        try:
            limit = min(int(query.get("limit", [str(HF_MAX_LIMIT)])[0]), HF_MAX_LIMIT)
        except ValueError:
            handler.send_json(400, {"error": "Invalid limit"})
            return
        selected = [
            item
            for item in items
            if search in str(item.get("id", "")).lower()
            and all(tag in item.get("tags", ()) or tag == item.get("pipeline_tag") for tag in tags)
        ]
        start = 0
        if "cursor" in query:
            resumed = _resume_after(selected, query["cursor"][0])
            if resumed is None:
                handler.send_json(400, {"error": "Invalid cursor"})
                return
            start = resumed
        page = selected[start : start + max(limit, 1)]
        with self._lock:
            remaining = max(
                0, HF_QUOTA - sum(1 for r in self._requests if r.source == "huggingface")
            )
        headers = {
            "RateLimit": f'"api";r={remaining};t={HF_WINDOW_S}',
            "RateLimit-Policy": f'"fixed window";"api";q={HF_QUOTA};w={HF_WINDOW_S}',
        }
        if page and start + len(page) < len(selected):
            kept = [(k, v) for k, v in parse_qsl(urlsplit(request.url).query) if k != "cursor"]
            cursor = quote(_cursor_after(page[-1], sort_key), safe="")
            next_url = f"{self.base_url}{request.path}?{urlencode(kept)}&cursor={cursor}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        handler.send_json(200, page, headers)


def _cursor_after(item: dict[str, Any], sort_key: str) -> str:
    """The 2022-documented cursor shape: base64 of a Mongo range query on the sort key and _id."""
    value = item.get(sort_key)
    query = {
        "$or": [{sort_key: value, "_id": {"$gt": item.get("_id")}}, {sort_key: {"$lt": value}}]
    }
    return base64.b64encode(json.dumps(query, separators=(",", ":")).encode()).decode()


def _resume_after(items: list[dict[str, Any]], cursor: str) -> int | None:
    """Index of the first item after the one ``cursor`` names; None for a cursor we never gave."""
    try:
        query = json.loads(base64.b64decode(cursor, validate=True))
        last_id = query["$or"][0]["_id"]["$gt"]
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError):
        return None
    for index, item in enumerate(items):
        if item.get("_id") == last_id:
            return index + 1
    return None
