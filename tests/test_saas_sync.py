"""Seed 001's periodic sync of a Stripe account: full, incremental through events, counts
exact, deletions logged, state kept on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_stripe import FakeStripe
from tests.saas_stack import APP, COLLECTIONS, by_collection, configure, stored, sync
from tests.stack import Stack
from tests.waiting import wait_for


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        server.generate("customer", 250)
        server.generate("subscription", 30, items_per_subscription=2)
        yield server


@pytest.fixture
def saas(isolated_stack: Stack, fake: FakeStripe, tmp_path: Path) -> Stack:
    configure(isolated_stack, fake, tmp_path)
    isolated_stack.start_worker()
    isolated_stack.start_api()
    return isolated_stack


def test_full_then_incremental_then_full(saas: Stack, fake: FakeStripe) -> None:
    first = sync(saas, mode="full", immediate=True)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["success"] is True and answer["mode"] == "full"
    counts = by_collection(answer)
    for kind, collection in COLLECTIONS.items():
        expected = fake.object_count(kind)
        assert counts[collection]["created"] == expected, collection
        assert len(stored(saas, collection)) == expected, collection
    assert answer["total_created"] == sum(c["created"] for c in answer["collections"])
    list_calls = [r for r in fake.requests("/v1/customers")]
    assert all(r.values("limit") == ["100"] for r in list_calls)
    assert all(r.values("status") == ["all"] for r in fake.requests("/v1/subscriptions"))

    customers = fake.ids("customer")
    fake.update("customer", customers[0], name="Renamed Customer")
    fake.delete("customer", customers[1])
    fake.create("product", name="Brand new")
    second = sync(saas, immediate=True)  # incremental by default
    assert second.status_code == 200, second.text
    assert second.json()["mode"] == "incremental"
    changed = by_collection(second.json())
    assert (changed["stripe_customer"]["updated"], changed["stripe_customer"]["deleted"]) == (1, 1)
    assert changed["stripe_product"]["created"] == 1
    assert stored(saas, "stripe_customer")[customers[0]]["payload"]["name"] == "Renamed Customer"
    assert customers[1] not in stored(saas, "stripe_customer")
    assert fake.request_count("/v1/customers") == len(list_calls), "events, not lists"
    assert (
        saas.scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'entity.deleted' "
            "AND data ->> 'external_id' = %s",
            (customers[1],),
        )
        == 1
    )

    third = sync(saas, mode="full", immediate=True).json()
    assert (third["total_created"], third["total_updated"], third["total_deleted"]) == (0, 0, 0), [
        (c["collection_key"], c["updated"]) for c in third["collections"]
    ]
    assert saas.scalar("SELECT count(*) FROM supasaasy.stripe_customers") == fake.object_count(
        "customer"
    )
    states = saas.query("SELECT app_key, collection_key FROM supasaasy.sync_state")
    assert {c for _, c in states} == set(COLLECTIONS.values())
    assert {a for a, _ in states} == {APP}


def test_a_job_is_202_and_followed_at_job_status(saas: Stack) -> None:
    started = sync(saas, resource_types=["customer"])
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "pending" and body["total_tasks"] == 1
    assert body["resource_types"] == ["customer"]
    client = saas.client()

    def finished() -> dict[str, Any] | None:
        state: dict[str, Any] = client.get(f"/functions/v1/job-status/{body['job_id']}").json()
        return state if state["status"] in ("completed", "failed") else None

    final = wait_for(finished, timeout=60, what="the job")
    assert final["status"] == "completed" and final["progress_percentage"] == 100.0
    assert [c["collection_key"] for c in final["collections"]] == ["stripe_customer"]
    assert (final["total_tasks"], final["completed_tasks"], final["failed_tasks"]) == (1, 1, 0)

    # Subscription items are synced with their subscription, in its task (supasaasy's
    # tasks exclude them), whether the sync names the parent or the child.
    for asked in (["subscription"], ["subscription_item"]):
        started = sync(saas, resource_types=asked)
        assert started.status_code == 202, started.text
        body = started.json()
        assert body["total_tasks"] == 1, asked
        final = wait_for(finished, timeout=60, what="the job")
        assert (final["total_tasks"], final["completed_tasks"]) == (1, 1), final
        assert [c["collection_key"] for c in final["collections"]] == [
            "stripe_subscription",
            "stripe_subscription_item",
        ]
    everything = sync(saas).json()
    assert everything["total_tasks"] == 5 and len(everything["resource_types"]) == 6
    body = everything
    final = wait_for(finished, timeout=60, what="the job")
    assert (final["total_tasks"], final["completed_tasks"], final["failed_tasks"]) == (5, 5, 0)

    # A finished job's tasks are what it ran, whatever became of the app since (they were
    # 6 once it was deleted: each subscription item counted as a task of its own).
    narrowed = client.patch(f"/v1/apps/{APP}", json={"resources": ["customer"]})
    assert narrowed.status_code == 200, narrowed.text
    assert client.get(f"/functions/v1/job-status/{everything['job_id']}").json() == final
    assert client.delete(f"/v1/apps/{APP}").status_code == 204
    assert client.get(f"/functions/v1/job-status/{everything['job_id']}").json() == final


def test_a_failing_collection_keeps_its_state_and_the_others_report(
    saas: Stack, fake: FakeStripe
) -> None:
    assert sync(saas, mode="full", immediate=True).json()["success"] is True
    before = saas.query(
        "SELECT collection_key, last_synced_at FROM supasaasy.sync_state ORDER BY collection_key"
    )
    fake.throttle_next(50, path="/v1/products", should_retry=False)
    partial = sync(saas, mode="full", immediate=True).json()
    assert partial["success"] is False
    counts = by_collection(partial)
    assert counts["stripe_product"]["errors"] == 1
    assert "429" in counts["stripe_product"]["error_messages"][0]
    assert counts["stripe_customer"]["errors"] == 0
    after = dict(
        saas.query("SELECT collection_key, last_synced_at FROM supasaasy.sync_state ORDER BY 1")
    )
    assert after["stripe_product"] == dict(before)["stripe_product"], "its state stays"
    assert after["stripe_customer"] > dict(before)["stripe_customer"], "the others move on"
    assert fake.request_count("/v1/products") >= 1
    # The job went through; the end of its progress stream says what it left undone.
    end = saas.scalar(
        "SELECT data FROM sync_events WHERE type = 'complete' ORDER BY created_at DESC LIMIT 1"
    )
    assert end["success"] is False and end["error"].startswith("stripe_product: "), end
    job_id = saas.scalar("SELECT id FROM sync_jobs ORDER BY created_at DESC LIMIT 1")
    status = saas.client().get(f"/functions/v1/job-status/{job_id}").json()
    assert (status["total_tasks"], status["completed_tasks"], status["failed_tasks"]) == (5, 4, 1)

    # An object PostgreSQL cannot store (a NUL in a string) fails its collection alone,
    # saying why, where it failed the whole run's transaction as an internal error.
    fake.update("customer", fake.ids("customer")[0], name="Null\x00Byte")
    stored_nul = sync(saas, mode="full", immediate=True).json()
    assert stored_nul["success"] is False
    counts = by_collection(stored_nul)
    assert "contains a NUL character" in counts["stripe_customer"]["error_messages"][0]
    assert counts["stripe_price"]["errors"] == 0  # (products may still meet the 429s above)


def test_a_cursor_past_the_30_day_event_window_falls_back_to_full(
    saas: Stack, fake: FakeStripe
) -> None:
    assert sync(saas, mode="full", immediate=True).json()["success"] is True
    saas.execute(
        "UPDATE sync_state SET cursor = (extract(epoch FROM now()) - 31 * 86400)::bigint::text"
    )
    fake.delete("customer", fake.ids("customer")[0])
    listed_before = fake.request_count("/v1/customers")
    answer = sync(saas, immediate=True).json()
    assert answer["success"] is True
    assert by_collection(answer)["stripe_customer"]["mode"] == "full"
    assert by_collection(answer)["stripe_customer"]["deleted"] == 1
    assert fake.request_count("/v1/customers") > listed_before
    job = saas.scalar("SELECT result FROM sync_jobs ORDER BY created_at DESC LIMIT 1")
    assert "30-day event window" in job["notes"][0]


def test_an_incremental_run_takes_no_change_a_later_cursor_already_saw(
    saas: Stack, fake: FakeStripe
) -> None:
    """The change feed is read from the oldest cursor. For a collection whose last sync
    started later, the changes before that are neither counted nor reported as stale:
    that sync saw them."""
    assert sync(saas, mode="full", immediate=True).json()["success"] is True
    now = fake.now
    saas.execute(
        "UPDATE sync_state SET cursor = %s WHERE collection <> 'stripe_customer'", (now - 600,)
    )
    customer = fake.ids("customer")[0]
    seen = {**(fake.get("customer", customer) or {}), "name": "Seen by the last sync"}
    fake.record_event("customer.updated", seen, created=now - 300)
    answer = sync(saas, immediate=True).json()
    assert answer["success"] is True
    assert by_collection(answer)["stripe_customer"]["processed"] == 0
    job = saas.scalar("SELECT result FROM sync_jobs ORDER BY created_at DESC LIMIT 1")
    assert job["notes"] == []
    assert stored(saas, "stripe_customer")[customer]["payload"]["name"] != seen["name"]


def test_every_item_of_a_long_subscription_and_items_removed_later(
    saas: Stack, fake: FakeStripe
) -> None:
    [long_one] = fake.generate("subscription", 1, items_per_subscription=13)
    assert sync(saas, mode="full", immediate=True).json()["success"] is True
    items = [
        i for i, row in stored(saas, "stripe_subscription_item").items()
        if row["payload"]["subscription"] == long_one
    ]  # fmt: skip
    assert len(items) == 13, "10 embedded, 3 more fetched"
    assert fake.request_count("/v1/subscription_items") >= 1

    [short_one] = fake.generate("subscription", 1, items_per_subscription=3, record_events=True)
    subscription = fake.get("subscription", short_one)
    assert subscription is not None
    kept, *gone = [i["id"] for i in subscription["items"]["data"]]
    assert sync(saas, immediate=True).json()["success"] is True
    for item in gone:  # its subscription records an update with its items now
        fake.delete("subscription_item", item)
    assert sync(saas, immediate=True).json()["success"] is True
    remaining = [
        i
        for i, row in stored(saas, "stripe_subscription_item").items()
        if row["payload"]["subscription"] == short_one
    ]
    assert remaining == [kept]

    # A changed subscription whose items must be fetched, and that fetch refused: the
    # subscriptions fail, saying why; the other collections go on.
    fake.generate("subscription", 1, items_per_subscription=13, record_events=True)
    fake.throttle_next(50, path="/v1/subscription_items", should_retry=False)
    partial = sync(saas, immediate=True).json()
    assert partial["success"] is False
    counts = by_collection(partial)
    assert "429" in counts["stripe_subscription"]["error_messages"][0]
    assert counts["stripe_customer"]["errors"] == 0


def test_parallel_slices_read_every_object_once(isolated_stack: Stack, tmp_path: Path) -> None:
    with FakeStripe() as fake:
        ids = fake.generate("customer", 3000, spacing=37.0)
        configure(isolated_stack, fake, tmp_path, SYNCBUS_SAAS_PARALLEL_CHAINS="4")
        isolated_stack.start_worker()
        isolated_stack.start_api()
        answer = sync(isolated_stack, mode="full", immediate=True, resource_types=["customer"])
        assert answer.status_code == 200, answer.text
        created = by_collection(answer.json())["stripe_customer"]["created"]
        assert created == fake.object_count("customer") == len(ids) + 1  # + the fixture's
        assert set(stored(isolated_stack, "stripe_customer")) == set(fake.ids("customer"))
        walks = fake.requests("/v1/customers")
        sliced = [r for r in walks if r.values("created[lt]")]
        assert sliced, "the range was split"
        assert len(walks) <= 3000 // 100 + 20, "few wasted requests"


def test_retries_server_errors_and_honours_sync_from(isolated_stack: Stack, tmp_path: Path) -> None:
    with FakeStripe() as fake:
        old = fake.generate("customer", 5, start=1_600_000_000)
        new = fake.generate("customer", 5, start=1_800_000_000)
        configure(isolated_stack, fake, tmp_path)
        apps = tmp_path / "apps.yaml"
        apps.write_text(apps.read_text() + "    sync_from: 2025-01-01\n")
        isolated_stack.start_worker()
        isolated_stack.start_api()
        fake.fail_next(2, status=500, path="/v1/customers")
        answer = sync(isolated_stack, mode="full", immediate=True, resource_types=["customer"])
        assert answer.json()["success"] is True, answer.text
        assert set(stored(isolated_stack, "stripe_customer")) == set(new)
        assert all(r.values("created[gte]") for r in fake.requests("/v1/customers"))
        isolated_stack.execute(
            "INSERT INTO supasaasy.entities (external_id, app_key, collection_key, raw_payload) "
            "VALUES (%s, %s, 'stripe_customer', jsonb_build_object('created', 1600000000))",
            (old[0], APP),
        )
        again = sync(isolated_stack, mode="full", immediate=True, resource_types=["customer"])
        assert by_collection(again.json())["stripe_customer"]["deleted"] == 0
        assert old[0] in stored(isolated_stack, "stripe_customer"), "before sync_from: kept"
