"""FakeStripe speaks Stripe's list, events, error and webhook-signature wire formats."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fake_stripe import (
    FakeStripe,
    Kind,
    load_fixture,
    signed_webhook,
    stripe_signature,
)
from tests.fake_stripe.wire import NO_KEY_MESSAGE

NOW = 1_760_000_000
DAY = 86400
Obj = dict[str, Any]


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(now=NOW) as server:
        yield server


@pytest.fixture
def client(fake: FakeStripe) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=10) as http:
        yield http


def walk(
    client: httpx.Client, path: str, params: dict[str, Any] | None = None, limit: int = 100
) -> tuple[list[Obj], int]:
    """Every object of a list endpoint by ``starting_after``, and how many pages it took."""
    found: list[Obj] = []
    pages = 0
    query = {**(params or {}), "limit": limit}
    while True:
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert page["object"] == "list"
        assert page["url"] == path
        found.extend(page["data"])
        if not page["has_more"]:
            return found, pages
        query["starting_after"] = page["data"][-1]["id"]


def error_of(response: httpx.Response, status: int) -> Obj:
    assert response.status_code == status, response.text
    error: Obj = response.json()["error"]
    return error


def newest_first(objs: list[Obj]) -> bool:
    keys = [(o["created"], o["id"]) for o in objs]
    return keys == sorted(keys, reverse=True)


def verify(body: bytes, header: str, secret: str, tolerance: int = 300) -> bool:
    """stripe-python's check: any v1 equals HMAC-SHA256(secret, "t.body"), t not too old."""
    pairs = [part.split("=", 1) for part in header.split(",")]
    timestamp = int(next(value for key, value in pairs if key == "t"))
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    matched = any(hmac.compare_digest(expected, v) for k, v in pairs if k == "v1")
    return matched and timestamp >= time.time() - tolerance


# --- auth ----------------------------------------------------------------------------------


def test_requests_need_a_known_api_key(fake: FakeStripe) -> None:
    with httpx.Client(base_url=fake.base_url) as anonymous:
        missing = error_of(anonymous.get("/v1/customers"), 401)
        assert missing == {"message": NO_KEY_MESSAGE, "type": "invalid_request_error"}
        wrong = anonymous.get(
            "/v1/customers", headers={"Authorization": "Bearer sk_test_abcdefghij9876"}
        )
        assert error_of(wrong, 401)["message"] == (
            "Invalid API Key provided: sk_test_**********9876"
        )
        basic = anonymous.get("/v1/customers", auth=(fake.api_key, ""))
        assert basic.status_code == 200
    key = fake.api_key
    fake.revoke_key(key)
    with httpx.Client(base_url=fake.base_url) as anonymous:
        revoked = anonymous.get("/v1/customers", auth=(key, ""))
        assert revoked.status_code == 401


def test_each_account_sees_its_own_data(fake: FakeStripe, client: httpx.Client) -> None:
    other = fake.add_account("sk_test_second_account_0001")
    other.generate("customer", 3)
    theirs = client.get(
        "/v1/customers", headers={"Authorization": "Bearer sk_test_second_account_0001"}
    )
    assert [c["id"] for c in theirs.json()["data"]] == other.ids("customer")
    mine = client.get("/v1/customers").json()["data"]
    assert [c["id"] for c in mine] == ["cus_QXg1o8vcGmoR32"]


# --- lists -----------------------------------------------------------------------------------


def test_fixtures_are_served_as_stripe_gives_them(client: httpx.Client) -> None:
    for path, name in [
        ("/v1/customers", "customer"),
        ("/v1/products", "product"),
        ("/v1/prices", "price"),
        ("/v1/plans", "plan"),
        ("/v1/subscriptions", "subscription"),
    ]:
        page = client.get(path).json()
        assert page == {
            "object": "list",
            "data": [load_fixture(name)],
            "has_more": False,
            "url": path,
        }
    subscription = load_fixture("subscription")
    items = client.get("/v1/subscription_items", params={"subscription": subscription["id"]})
    assert items.json()["data"] == subscription["items"]["data"]
    one = client.get("/v1/customers/cus_QXg1o8vcGmoR32")
    assert one.json() == load_fixture("customer")
    assert one.headers["Stripe-Version"] == "2025-02-24.acacia"
    assert one.headers["Request-Id"].startswith("req_")


def test_pagination_walks_every_object_once_newest_first(
    fake: FakeStripe, client: httpx.Client
) -> None:
    fake.generate("customer", 250, start=NOW - 1000, spacing=0.5)  # two per second: ties
    found, pages = walk(client, "/v1/customers", limit=7)
    ids = [c["id"] for c in found]
    assert len(ids) == len(set(ids)) == 251
    assert ids == fake.ids("customer")
    assert newest_first(found)
    assert pages == 36
    assert all(c["id"].startswith("cus_") and len(c["id"]) >= 18 for c in found)
    # Walking back up with ending_before returns the pages above the cursor, newest first.
    page = client.get("/v1/customers", params={"limit": 5, "ending_before": ids[20]}).json()
    assert [c["id"] for c in page["data"]] == ids[15:20]
    assert page["has_more"] is True
    top = client.get("/v1/customers", params={"limit": 5, "ending_before": ids[3]}).json()
    assert [c["id"] for c in top["data"]] == ids[:3]
    assert top["has_more"] is False


def test_limit_and_cursor_errors(fake: FakeStripe, client: httpx.Client) -> None:
    fake.generate("customer", 30)
    assert len(client.get("/v1/customers").json()["data"]) == 10
    assert len(client.get("/v1/customers", params={"limit": 100}).json()["data"]) == 31
    for bad, message in [
        ("0", "This value must be greater than or equal to 1."),
        ("101", "This value must be less than or equal to 100."),
        ("ten", "Invalid integer: ten"),
    ]:
        error = error_of(client.get("/v1/customers", params={"limit": bad}), 400)
        assert (error["type"], error["param"], error["message"]) == (
            "invalid_request_error",
            "limit",
            message,
        )
    missing = error_of(client.get("/v1/customers", params={"starting_after": "cus_nope"}), 400)
    assert (missing["code"], missing["param"]) == ("resource_missing", "starting_after")
    assert missing["message"] == "No such customer: 'cus_nope'"
    both = client.get(
        "/v1/customers", params={"starting_after": fake.ids("customer")[0], "ending_before": "x"}
    )
    assert error_of(both, 400)["type"] == "invalid_request_error"
    unknown = error_of(client.get("/v1/customers", params={"colour": "red"}), 400)
    assert (unknown["code"], unknown["message"]) == (
        "parameter_unknown",
        "Received unknown parameter: colour",
    )
    not_done = error_of(client.get("/v1/customers?expand[]=data.tax_ids"), 400)
    assert not_done["code"] == "fake_not_implemented"
    gone = error_of(client.get("/v1/customers/cus_nope"), 404)
    assert (gone["code"], gone["param"]) == ("resource_missing", "id")
    assert error_of(client.post("/v1/customers", data={"name": "x"}), 404)["message"].startswith(
        "Unrecognized request URL (POST: /v1/customers)"
    )


def test_created_filters_in_form_encoding(fake: FakeStripe, client: httpx.Client) -> None:
    fake.generate("customer", 100, start=NOW - 100, spacing=1)

    def count(query: str) -> int:
        found: list[Obj] = []
        after = ""
        while True:
            response = client.get(f"/v1/customers?limit=100&{query}{after}")
            assert response.status_code == 200, response.text
            page = response.json()
            found.extend(page["data"])
            if not page["has_more"]:
                return len(found)
            after = f"&starting_after={page['data'][-1]['id']}"

    assert count(f"created[gte]={NOW - 10}") == 10
    assert count(f"created[gt]={NOW - 10}") == 9
    assert count(f"created[lt]={NOW - 90}") == 10 + 1  # the fixture customer is from 2009
    assert count(f"created[lte]={NOW - 90}") == 12
    assert count(f"created[gte]={NOW - 50}&created[lt]={NOW - 40}") == 10
    assert count(f"created={NOW - 5}") == 1
    bad = error_of(client.get("/v1/customers?created[gte]=yesterday"), 400)
    assert bad["param"] == "created[gte]"
    assert error_of(client.get("/v1/customers?created[after]=1"), 400)["code"] == (
        "parameter_unknown"
    )


def test_subscriptions_hide_canceled_unless_status_all(
    fake: FakeStripe, client: httpx.Client
) -> None:
    fake.generate("customer", 20)
    live = fake.generate("subscription", 6)
    fake.generate("subscription", 3, status="canceled")
    fake.generate("subscription", 2, status="incomplete_expired")
    fake.delete("subscription", live[0])

    def listed(**params: str) -> int:
        return len(walk(client, "/v1/subscriptions", params)[0])

    assert listed() == 1 + 5 + 2  # the fixture subscription is active
    assert listed(status="all") == 12
    assert listed(status="canceled") == 4
    assert listed(status="ended") == 6
    assert listed(status="active") == 6
    canceled = fake.get("subscription", live[0])
    assert canceled is not None
    assert (canceled["status"], canceled["canceled_at"], canceled["ended_at"]) == (
        "canceled",
        NOW,
        NOW,
    )
    assert error_of(client.get("/v1/subscriptions?status=gone"), 400)["param"] == "status"
    customer = canceled["customer"]
    mine = walk(client, "/v1/subscriptions", {"customer": customer, "status": "all"})[0]
    assert mine and all(s["customer"] == customer for s in mine)


def test_products_prices_plans_list_inactive_unless_asked(
    fake: FakeStripe, client: httpx.Client
) -> None:
    kinds: list[tuple[Kind, str]] = [
        ("product", "/v1/products"),
        ("price", "/v1/prices"),
        ("plan", "/v1/plans"),
    ]
    for kind, path in kinds:
        fake.generate(kind, 4)
        fake.generate(kind, 2, active=False)
        assert len(walk(client, path)[0]) == 7
        assert len(walk(client, path, {"active": "true"})[0]) == 5
        assert len(walk(client, path, {"active": "false"})[0]) == 2
        assert error_of(client.get(path, params={"active": "yes"}), 400)["param"] == "active"


def test_subscription_items_list_and_embedded_items(fake: FakeStripe, client: httpx.Client) -> None:
    fake.generate("price", 3)
    [sub_id] = fake.generate("subscription", 1, items_per_subscription=12)
    sub = client.get(f"/v1/subscriptions/{sub_id}").json()
    embedded = sub["items"]
    assert embedded["object"] == "list"
    assert embedded["url"] == f"/v1/subscription_items?subscription={sub_id}"
    assert (len(embedded["data"]), embedded["has_more"]) == (10, True)
    item = embedded["data"][0]
    assert item["object"] == "subscription_item" and item["subscription"] == sub_id
    assert item["price"]["id"] == item["plan"]["id"]
    items, pages = walk(client, "/v1/subscription_items", {"subscription": sub_id}, limit=5)
    assert (len(items), pages) == (12, 3)
    assert {i["id"] for i in embedded["data"]} <= {i["id"] for i in items}
    missing = error_of(client.get("/v1/subscription_items"), 400)
    assert (missing["code"], missing["param"]) == ("parameter_missing", "subscription")


# --- events ----------------------------------------------------------------------------------


def test_mutations_record_stripe_events(fake: FakeStripe, client: httpx.Client) -> None:
    created = fake.create("customer", {"email": "new@example.com"})
    fake.advance(1)
    fake.update("customer", created["id"], name="Ada", metadata={"tier": "gold"})
    fake.advance(1)
    [sub_id] = fake.generate("subscription", 1, customer=created["id"])
    fake.advance(1)
    fake.update("product", "prod_QXg1hqf4jFNsqG", active=False)
    fake.advance(1)
    fake.delete("customer", created["id"])

    events = walk(client, "/v1/events")[0]
    assert [e["type"] for e in events] == [
        "customer.deleted",
        "customer.subscription.deleted",
        "product.updated",
        "customer.updated",
        "customer.created",
    ]
    assert newest_first(events)
    deleted, canceled, product, updated, made = events
    for event in events:
        assert event["object"] == "event" and event["id"].startswith("evt_")
        assert event["api_version"] == "2025-02-24.acacia"
        assert event["livemode"] is False
    assert made["data"] == {"object": {**created}} and made["created"] == NOW
    assert updated["data"]["object"]["name"] == "Ada"
    assert updated["data"]["previous_attributes"] == {
        "name": created["name"],
        "metadata": created["metadata"],
    }
    assert product["data"]["previous_attributes"] == {"active": True, "updated": 1234567890}
    assert product["data"]["object"]["updated"] == NOW + 3
    assert canceled["data"]["object"]["id"] == sub_id
    assert canceled["data"]["object"]["status"] == "canceled"
    # customer.deleted carries the customer's last full state (a choice: Stripe's is unverified).
    assert deleted["data"]["object"]["name"] == "Ada"
    assert "previous_attributes" not in deleted["data"]
    stub = client.get(f"/v1/customers/{created['id']}").json()
    assert stub == {"id": created["id"], "object": "customer", "deleted": True}
    assert created["id"] not in fake.ids("customer")
    one = client.get(f"/v1/events/{deleted['id']}").json()
    assert one == deleted


def test_same_second_events_list_in_the_order_they_happened(
    fake: FakeStripe, client: httpx.Client
) -> None:
    for n in range(30):
        fake.update("customer", "cus_QXg1o8vcGmoR32", name=f"name {n}")
    names = [e["data"]["object"]["name"] for e in walk(client, "/v1/events", limit=4)[0]]
    assert names == [f"name {n}" for n in reversed(range(30))]


def test_subscription_item_changes_update_the_subscription(
    fake: FakeStripe, client: httpx.Client
) -> None:
    sub_id = "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"
    item = fake.create("subscription_item", subscription=sub_id, quantity=3)
    fake.update("subscription_item", item["id"], quantity=5)
    fake.delete("subscription_item", item["id"])
    events = walk(client, "/v1/events")[0]
    assert [e["type"] for e in events] == ["customer.subscription.updated"] * 3
    sizes = [len(e["data"]["object"]["items"]["data"]) for e in events]
    assert sizes == [1, 2, 2]
    assert events[1]["data"]["object"]["items"]["data"][1]["quantity"] == 5
    assert events[1]["data"]["previous_attributes"]["items"]["data"][1]["quantity"] == 3


def test_events_filters(fake: FakeStripe, client: httpx.Client) -> None:
    fake.create("customer")
    fake.create("product")
    fake.create("price")
    [sub_id] = fake.generate("subscription", 1)
    fake.delete("subscription", sub_id)

    def types(query: str) -> list[str]:
        response = client.get(f"/v1/events?limit=100&{query}")
        assert response.status_code == 200, response.text
        return sorted(e["type"] for e in response.json()["data"])

    assert types("type=customer.*") == ["customer.created", "customer.subscription.deleted"]
    assert types("type=*.created") == ["customer.created", "price.created", "product.created"]
    assert types("type=price.created") == ["price.created"]
    assert types("types[]=product.created&types[]=price.created") == [
        "price.created",
        "product.created",
    ]
    assert types("types[0]=product.created&types[1]=customer.created") == [
        "customer.created",
        "product.created",
    ]
    both = error_of(client.get("/v1/events?type=a&types[]=b"), 400)
    assert both["type"] == "invalid_request_error"
    many = "&".join(f"types[]=t{n}" for n in range(21))
    assert error_of(client.get(f"/v1/events?{many}"), 400)["param"] == "types"
    fake.advance(10)
    fake.create("plan")
    assert types(f"created[gt]={NOW}") == ["plan.created"]
    assert len(types(f"created[lte]={NOW}")) == 4


def test_events_only_from_the_last_30_days(fake: FakeStripe, client: httpx.Client) -> None:
    old = fake.create("customer")
    fake.advance(20 * DAY)
    fake.update("customer", old["id"], name="Later")
    events = client.get("/v1/events").json()["data"]
    assert [e["type"] for e in events] == ["customer.updated", "customer.created"]
    oldest_id = events[-1]["id"]
    fake.advance(11 * DAY)
    events = client.get("/v1/events").json()["data"]
    assert [e["type"] for e in events] == ["customer.updated"]
    assert error_of(client.get(f"/v1/events/{oldest_id}"), 404)["code"] == "resource_missing"
    # A cursor older than the window pages into nothing.
    after_old = client.get("/v1/events", params={"starting_after": oldest_id}).json()
    assert after_old["data"] == [] and after_old["has_more"] is False
    assert len(fake.recorded_events()) == 2


def test_generated_history_can_come_with_created_events(
    fake: FakeStripe, client: httpx.Client
) -> None:
    fake.generate("customer", 40, start=NOW - 40 * DAY + 1, spacing=DAY, record_events=True)
    events = walk(client, "/v1/events", {"type": "customer.created"})[0]
    assert [e["data"]["object"]["id"] for e in events] == fake.ids("customer")[:30]
    assert all(e["created"] == e["data"]["object"]["created"] for e in events)


def test_the_clock_follows_real_time_until_set() -> None:
    with FakeStripe() as fake:
        assert abs(fake.now - time.time()) < 2
        fake.advance(3600)
        assert abs(fake.now - time.time() - 3600) < 2
        fake.now = 1_000
        assert fake.now == 1_000
        fake.advance(5)
        assert fake.now == 1_005


# --- faults and observation ---------------------------------------------------------------


def test_throttle_next_answers_stripe_429s(fake: FakeStripe, client: httpx.Client) -> None:
    fake.throttle_next(2, path="/v1/customers", should_retry=True, retry_after=1.5)
    fake.throttle_next(1, path="/v1/events", code="lock_timeout", reason="global-rate")
    assert client.get("/v1/products").status_code == 200
    for _ in range(2):
        response = client.get("/v1/customers")
        assert error_of(response, 429) == {
            "code": "rate_limit",
            "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
            "message": (
                "Request rate limit exceeded. You can learn more about rate limits here "
                "https://stripe.com/docs/rate-limits."
            ),
            "type": "invalid_request_error",
        }
        assert response.headers["Stripe-Should-Retry"] == "true"
        assert response.headers["Retry-After"] == "1.5"
    assert client.get("/v1/customers").status_code == 200
    locked = client.get("/v1/events")
    assert error_of(locked, 429)["code"] == "lock_timeout"
    assert "Stripe-Should-Retry" not in locked.headers
    assert "Retry-After" not in locked.headers
    assert locked.headers["Stripe-Rate-Limited-Reason"] == "global-rate"


def test_fail_next_and_drop_next(fake: FakeStripe, client: httpx.Client) -> None:
    fake.fail_next(1, status=503, should_retry=False)
    fake.fail_next(1)
    failed = client.get("/v1/customers")
    assert error_of(failed, 503) == {"message": "An unknown error occurred", "type": "api_error"}
    assert failed.headers["Stripe-Should-Retry"] == "false"
    plain = client.get("/v1/customers")
    assert error_of(plain, 500)["type"] == "api_error"
    assert "Stripe-Should-Retry" not in plain.headers
    fake.drop_next(1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/customers")
    fake.drop_next(1, mid_body=True)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/customers")
    assert client.get("/v1/customers").status_code == 200
    assert fake.request_count("/v1/customers") == 5


def test_the_request_log(fake: FakeStripe, client: httpx.Client) -> None:
    walk(client, "/v1/subscriptions", {"status": "all"})
    client.get("/v1/events?types[]=customer.created&types[]=customer.deleted&created[gt]=5")
    client.get("/v1/events", params={"limit": 3})
    assert fake.request_counts() == {"/v1/subscriptions": 1, "/v1/events": 2}
    [subs] = fake.requests("/v1/subscriptions")
    assert (subs.method, subs.query) == ("GET", [("status", "all"), ("limit", "100")])
    assert subs.headers["authorization"] == f"Bearer {fake.api_key}"
    assert subs.api_key == fake.api_key
    first = fake.requests("/v1/events")[0]
    assert first.values("types[]") == ["customer.created", "customer.deleted"]
    assert first.values("created[gt]") == ["5"]
    fake.clear_requests()
    assert fake.request_count() == 0


# --- webhooks --------------------------------------------------------------------------------


def test_signature_matches_the_notes_vector() -> None:
    body = b'{"id":"evt_test_webhook","object":"event"}'
    header = stripe_signature(body, "whsec_test_secret", 1492774577)
    expected = "t=1492774577,v1=88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a"
    assert header.startswith(expected + ",v0=")
    assert header.count("v0=") == 1


def test_signed_webhook_verifies_like_stripe(fake: FakeStripe) -> None:
    fake.create("customer")
    [event] = fake.recorded_events()
    body, headers = signed_webhook(event, "whsec_new", extra_secrets=["whsec_old"])
    assert json.loads(body) == event
    signature = headers["Stripe-Signature"]
    assert signature.count("v1=") == 2
    assert verify(body, signature, "whsec_new") and verify(body, signature, "whsec_old")
    assert not verify(body, signature, "whsec_other")
    assert not verify(body + b" ", signature, "whsec_new")
    stale_body, stale = signed_webhook(event, "whsec_new", timestamp=int(time.time()) - 600)
    assert not verify(stale_body, stale["Stripe-Signature"], "whsec_new")


# --- scale -----------------------------------------------------------------------------------


def test_serving_200k_customers_at_limit_100() -> None:
    with FakeStripe(seed_fixtures=False) as fake:
        started = time.perf_counter()
        fake.generate("customer", 200_000)
        generated = time.perf_counter() - started
        fake.generate("price", 20)
        fake.generate("subscription", 20_000)
        with httpx.Client(
            base_url=fake.base_url, headers={"Authorization": f"Bearer {fake.api_key}"}
        ) as http:
            started = time.perf_counter()
            found, pages = walk(http, "/v1/customers")
            walked = time.perf_counter() - started
    assert (len(found), pages) == (200_000, 2_000)
    assert len({c["id"] for c in found}) == 200_000
    assert newest_first(found)
    print(f"generated 200k customers in {generated:.2f}s; full walk at limit=100 {walked:.2f}s")
