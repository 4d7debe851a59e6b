"""FakeStripe: Stripe's read API on 127.0.0.1 from in-memory accounts, faults, a request log."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson

from tests.fake_stripe import endpoints, traffic
from tests.fake_stripe.account import DEFAULT_API_VERSION, StripeAccount
from tests.fake_stripe.objects import Kind, Obj
from tests.fake_stripe.traffic import Drop, Fault, RecordedRequest
from tests.fake_stripe.wire import (
    API_ERROR_MESSAGE,
    NO_KEY_MESSAGE,
    StripeError,
    api_key_of,
    mask_key,
    parse_params,
)

DEFAULT_API_KEY = "sk_test_51FakeStripeSyncbusTestKey00"
_ROUTE = re.compile(r"^/v1/([a-z_]+)(?:/([^/]+))?$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeStripe

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (or a dropped connection) is expected here; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "nginx"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Tests read ``FakeStripe.requests()`` instead of an access log."""

    def do_GET(self) -> None:
        self.server.fake._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._serve(self, "POST")

    def do_DELETE(self) -> None:
        self.server.fake._serve(self, "DELETE")

    def send(
        self, status: int, body: bytes, headers: dict[str, str], length: int | None = None
    ) -> None:
        """One answer; ``length`` declares a longer body than the one sent (a cut answer)."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class FakeStripe:
    """Stripe's REST read API (``/v1/customers``, ``products``, ``prices``, ``plans``,
    ``subscriptions``, ``subscription_items``, ``events``) on one 127.0.0.1 port.

    Use as a context manager. ``api_keys`` all open the default account (seeded with the
    fixtures unless ``seed_fixtures=False``); ``add_account`` adds another. The clock follows
    real time until ``now`` is set (then it stands still) or ``advance`` moves it.
    """

    def __init__(
        self,
        *,
        api_keys: Sequence[str] = (DEFAULT_API_KEY,),
        seed_fixtures: bool = True,
        random_seed: int = 0,
        api_version: str = DEFAULT_API_VERSION,
        now: int | None = None,
    ) -> None:
        self._frozen: int | None = now
        self._offset = 0.0
        self._lock = threading.Lock()
        self.default_account = StripeAccount(
            self._clock,
            seed_fixtures=seed_fixtures,
            random_seed=random_seed,
            api_version=api_version,
        )
        self._accounts = dict.fromkeys(api_keys, self.default_account)
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeStripe:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def base_url(self) -> str:
        """What replaces ``https://api.stripe.com`` for a client."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        """The first key of the default account."""
        keys = [k for k, a in self._accounts.items() if a is self.default_account]
        if not keys:
            raise LookupError("every key of the default account was revoked")
        return keys[0]

    # --- clock -----------------------------------------------------------------------------

    def _clock(self) -> int:
        frozen = self._frozen
        return frozen if frozen is not None else int(time.time() + self._offset)

    @property
    def now(self) -> int:
        """The fake's unix time: stamps events and bounds the 30-day event window."""
        return self._clock()

    @now.setter
    def now(self, value: int | None) -> None:
        """Stand the clock still at ``value``; None lets it follow real time again."""
        self._frozen = value
        self._offset = 0.0

    def advance(self, seconds: float) -> int:
        """Move the clock forward (or back, if negative); returns the new ``now``."""
        if self._frozen is not None:
            self._frozen += int(seconds)
        else:
            self._offset += seconds
        return self.now

    # --- accounts ----------------------------------------------------------------------------

    def account(self, api_key: str | None = None) -> StripeAccount:
        """The account ``api_key`` opens (the default account without one)."""
        return self.default_account if api_key is None else self._accounts[api_key]

    def add_account(
        self, api_key: str, *, seed_fixtures: bool = False, random_seed: int = 1
    ) -> StripeAccount:
        """A second Stripe account with its own data, opened by ``api_key``."""
        account = StripeAccount(
            self._clock,
            seed_fixtures=seed_fixtures,
            random_seed=random_seed,
            api_version=self.default_account.api_version,
        )
        with self._lock:
            self._accounts[api_key] = account
        return account

    def add_key(self, api_key: str, account: StripeAccount | None = None) -> None:
        """Another key for an account (default: the default account), e.g. a rolled key."""
        with self._lock:
            self._accounts[api_key] = account or self.default_account

    def revoke_key(self, api_key: str) -> None:
        """From now on the key gets 401 ``Invalid API Key provided``."""
        with self._lock:
            del self._accounts[api_key]

    # --- data of the default account (see StripeAccount) -------------------------------------

    def create(self, kind: Kind, obj: Obj | None = None, **fields: Any) -> Obj:
        """Store a new object and record ``<kind>.created``."""
        return self.default_account.create(kind, obj, **fields)

    def update(self, kind: Kind, id: str, **fields: Any) -> Obj:
        """Change fields and record ``<kind>.updated`` with ``previous_attributes``."""
        return self.default_account.update(kind, id, **fields)

    def delete(self, kind: Kind, id: str) -> Obj:
        """Delete (a subscription: cancel) and record ``<kind>.deleted``."""
        return self.default_account.delete(kind, id)

    def generate(self, kind: Kind, n: int, **options: Any) -> list[str]:
        """Add ``n`` realistic objects; options as ``StripeAccount.generate``."""
        return self.default_account.generate(kind, n, **options)

    def get(self, kind: Kind, id: str) -> Obj | None:
        """A copy of a stored object, or None."""
        return self.default_account.get(kind, id)

    def ids(self, kind: Kind) -> list[str]:
        """Every id of ``kind``, newest first."""
        return self.default_account.ids(kind)

    def object_count(self, kind: Kind) -> int:
        """How many objects of ``kind`` are stored (canceled subscriptions included)."""
        return self.default_account.object_count(kind)

    def record_event(self, type: str, obj: Obj, **options: Any) -> Obj:
        """Record an arbitrary event without changing data."""
        return self.default_account.record_event(type, obj, **options)

    def recorded_events(self, type: str | None = None) -> list[Obj]:
        """Every recorded event, newest first (the 30-day window not applied)."""
        return self.default_account.recorded_events(type)

    # --- faults ------------------------------------------------------------------------------

    def throttle_next(
        self,
        n: int = 1,
        *,
        path: str = "/v1/",
        should_retry: bool | None = None,
        retry_after: float | None = None,
        code: Literal["rate_limit", "lock_timeout"] = "rate_limit",
        reason: str | None = None,
    ) -> None:
        """429 for the next ``n`` requests under ``path``: type ``invalid_request_error``, code
        ``rate_limit``; ``Stripe-Should-Retry`` / ``Retry-After`` / ``Stripe-Rate-Limited-Reason``
        only when given."""
        fault = traffic.throttle(path, n, should_retry, retry_after, code, reason)
        with self._lock:
            self._faults.append(fault)

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        path: str = "/v1/",
        should_retry: bool | None = None,
        message: str = API_ERROR_MESSAGE,
    ) -> None:
        """``status`` with an ``api_error`` body for the next ``n`` requests under ``path``."""
        fault = traffic.failure(path, n, status, should_retry, message)
        with self._lock:
            self._faults.append(fault)

    def drop_next(self, n: int = 1, *, path: str = "/v1/", mid_body: bool = False) -> None:
        """Close the connection of the next ``n`` requests under ``path``: before any answer,
        or (``mid_body``) after the headers and half of a 200 body."""
        drop: Drop = "mid_body" if mid_body else "before_response"
        with self._lock:
            self._faults.append(Fault(path, n, drop=drop))

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

    # --- observation -------------------------------------------------------------------------

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        """Requests in arrival order, all or those for exactly ``path``."""
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def request_count(self, path: str | None = None) -> int:
        """How many requests arrived, all or for exactly ``path`` (faulted ones included)."""
        return len(self.requests(path))

    def request_counts(self) -> dict[str, int]:
        """Requests per path."""
        with self._lock:
            return dict(Counter(r.path for r in self._requests))

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # --- serving -----------------------------------------------------------------------------

    def _serve(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        key = api_key_of(headers.get("authorization"))
        request = RecordedRequest(method, parts.path, pairs, headers, key, time.monotonic())
        length = int(headers.get("content-length") or 0)
        if length:
            handler.rfile.read(length)
        with self._lock:
            self._requests.append(request)
            fault = traffic.take_fault(self._faults, parts.path)
            account = None if key is None else self._accounts.get(key)
        if fault is not None and fault.drop == "before_response":
            handler.close_connection = True
            return
        if fault is not None and fault.drop is None:
            handler.send(fault.status, fault.body, {**fault.headers, **_ids()})
            return
        try:
            status, document = 200, self._answer(method, parts.path, pairs, key, account)
        except StripeError as error:
            status, document = error.status, error.body()
        body = orjson.dumps(document)
        version = headers.get("stripe-version") or (account or self.default_account).api_version
        answer_headers = {**_ids(), "Stripe-Version": version}
        if fault is not None:  # mid_body: promise the whole body, send half, hang up
            handler.close_connection = True
            handler.send(status, body[: len(body) // 2], answer_headers, length=len(body))
            return
        handler.send(status, body, answer_headers)

    def _answer(
        self,
        method: str,
        path: str,
        pairs: list[tuple[str, str]],
        key: str | None,
        account: StripeAccount | None,
    ) -> Obj:
        if key is None:
            raise StripeError(401, NO_KEY_MESSAGE)
        if account is None:
            raise StripeError(401, f"Invalid API Key provided: {mask_key(key)}")
        route = _ROUTE.match(path)
        if method != "GET" or route is None or route.group(1) not in endpoints.RESOURCES:
            raise StripeError(
                404,
                f"Unrecognized request URL ({method}: {path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            )
        resource, id = route.group(1), route.group(2)
        params = parse_params(pairs)
        if id is None:
            return endpoints.list_page(account, resource, params)
        return endpoints.retrieve(account, resource, id, params)


def _ids() -> dict[str, str]:
    return {"Request-Id": f"req_{uuid.uuid4().hex[:14]}"}
