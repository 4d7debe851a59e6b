"""``POST /webhook/{app_key}``: Stripe-signed events applied at once, bad signatures refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_stripe import FakeStripe, signed_webhook
from tests.saas_stack import APP, WEBHOOK_SECRET, configure, stored, sync
from tests.stack import Stack
from tests.waiting import wait_for


@pytest.fixture
def hooked(isolated_stack: Stack, tmp_path: Path) -> Iterator[tuple[Stack, FakeStripe]]:
    with FakeStripe() as fake:
        fake.generate("customer", 5)
        configure(isolated_stack, fake, tmp_path)
        isolated_stack.start_worker()
        isolated_stack.start_api()
        assert sync(isolated_stack, mode="full", immediate=True).json()["success"] is True
        yield isolated_stack, fake


def deliver(stack: Stack, event: dict[str, Any], secret: str = WEBHOOK_SECRET,
            **options: Any) -> httpx.Response:  # fmt: skip
    body, headers = signed_webhook(event, secret, **options)
    return httpx.post(f"{stack.url}/webhook/{APP}", content=body, headers=headers)


def test_events_are_applied_at_once_and_once(hooked: tuple[Stack, FakeStripe]) -> None:
    stack, fake = hooked
    customer = fake.ids("customer")[0]
    fake.update("customer", customer, email="new@example.com")
    updated = fake.recorded_events("customer.updated")[-1]
    answer = deliver(stack, updated)
    assert answer.status_code == 200, answer.text
    assert answer.json()["handled"] is True and answer.json()["duplicate"] is False
    wait_for(
        lambda: stored(stack, "stripe_customer")[customer]["payload"]["email"] == "new@example.com",
        what="the event's object",
    )
    # The event's own object, not the change feed read instead (as when the worker took
    # the event's request for another's and dead-lettered it, and the job ran later).
    lines = stack.query(
        "SELECT e.data ->> 'message' FROM sync_events e JOIN sync_jobs j ON j.id = e.job_id "
        "WHERE j.request_id = %s AND e.type = 'log'",
        (f"stripe-event:{APP}:{updated['id']}",),
    )
    assert (f"Received customer.updated {customer}",) in lines, lines
    again = deliver(stack, updated)  # Stripe retries: the same event id is one job
    assert again.json()["duplicate"] is True
    assert (
        stack.scalar(
            "SELECT count(*) FROM sync_jobs WHERE request_id = %s",
            (f"stripe-event:{APP}:{updated['id']}",),
        )
        == 1
    )

    fake.delete("customer", customer)
    deleted = deliver(stack, fake.recorded_events("customer.deleted")[-1])
    assert deleted.status_code == 200
    wait_for(lambda: customer not in stored(stack, "stripe_customer"), what="the deletion")


def test_a_bad_signature_is_400_and_changes_nothing(hooked: tuple[Stack, FakeStripe]) -> None:
    stack, fake = hooked
    customer = fake.ids("customer")[1]
    fake.update("customer", customer, name="Forged")
    event = fake.recorded_events("customer.updated")[-1]
    wrong = deliver(stack, event, secret="whsec_someone_else")
    stale = deliver(stack, event, timestamp=int(time.time()) - 3600)
    body, _ = signed_webhook(event, WEBHOOK_SECRET)
    unsigned = httpx.post(f"{stack.url}/webhook/{APP}", content=body)
    for response in (wrong, stale, unsigned):
        assert response.status_code == 400, response.text
        assert response.json()["success"] is False
        assert response.json()["error"].startswith("Invalid signature")
    assert "outside the tolerance" in stale.json()["error"]
    assert stored(stack, "stripe_customer")[customer]["payload"]["name"] != "Forged"
    rotated = deliver(stack, event, secret="whsec_old", extra_secrets=[WEBHOOK_SECRET])
    assert rotated.status_code == 200, "one matching v1 among several is enough"


def test_an_unhandled_event_type_is_acknowledged(hooked: tuple[Stack, FakeStripe]) -> None:
    stack, fake = hooked
    fake.record_event("invoice.paid", {"id": "in_1", "object": "invoice"})
    answer = deliver(stack, fake.recorded_events("invoice.paid")[-1])
    assert answer.status_code == 200
    assert answer.json() == {"received": True, "handled": False}
    assert (
        stack.scalar("SELECT count(*) FROM sync_jobs WHERE request_id LIKE 'stripe-event:%%'") == 0
    )
    missing = httpx.post(f"{stack.url}/webhook/nope", content=b"{}")
    assert missing.status_code == 404


def test_a_signed_event_that_cannot_become_a_job_is_refused(
    hooked: tuple[Stack, FakeStripe],
) -> None:
    """Its id names the job (400 when it cannot)."""
    stack, fake = hooked
    customer = fake.ids("customer")[2]
    fake.update("customer", customer, name="Odd id")
    event = fake.recorded_events("customer.updated")[-1]
    jobs = "SELECT count(*) FROM sync_jobs"
    before = stack.scalar(jobs)
    answers = [deliver(stack, {**event, "id": odd}) for odd in ("evt_" + "x" * 200, "evt_\n1")]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("Invalid event: id must be printable")
    assert stack.scalar(jobs) == before
    assert stack.scalar("SELECT count(*) FROM outbox") == 0


def applied(stack: Stack, event: dict[str, Any]) -> dict[str, Any]:
    """The result of the job ``event`` became, once it succeeded."""
    request_id = f"stripe-event:{APP}:{event['id']}"
    query = "SELECT status, result FROM sync_jobs WHERE request_id = %s"
    done = wait_for(
        lambda: next((r for s, r in stack.query(query, (request_id,)) if s == "succeeded"), None),
        what=f"the job of {event['id']}",
    )
    return dict(done)


def test_an_older_event_never_overwrites_what_a_newer_one_stored(
    hooked: tuple[Stack, FakeStripe],
) -> None:
    """Stripe delivers events in no set order and retries them for days: a change older
    than the latest one applied to its object, or than its collection's last sync, is
    skipped (and said so), instead of overwriting newer data."""
    stack, fake = hooked
    customer = fake.ids("customer")[2]

    def email() -> str:
        return str(stored(stack, "stripe_customer")[customer]["payload"]["email"])

    fake.advance(10)
    fake.update("customer", customer, email="first@example.com")
    first = fake.recorded_events("customer.updated")[0]
    fake.advance(10)
    fake.update("customer", customer, email="second@example.com")
    second = fake.recorded_events("customer.updated")[0]
    assert deliver(stack, second).status_code == 200  # the newer one arrives first
    applied(stack, second)
    assert deliver(stack, first).status_code == 200
    notes = applied(stack, first)["notes"]
    assert email() == "second@example.com"
    assert notes == [f"skipped 1 changes older than what is stored: stripe_customer {customer}"]

    # From before the last sync, for a customer no event touched yet: the fixture's full
    # sync listed it after that.
    untouched = fake.ids("customer")[3]
    current = fake.get("customer", untouched)
    assert current is not None
    ancient = {**current, "email": "ancient@example.com"}
    older = fake.record_event("customer.updated", ancient, created=fake.now - 3600)
    assert deliver(stack, older).status_code == 200
    assert applied(stack, older)["notes"] == [
        f"skipped 1 changes older than what is stored: stripe_customer {untouched}"
    ]
    assert stored(stack, "stripe_customer")[untouched]["payload"]["email"] != ancient["email"]

    # Deleted, then a late update from the same second (Stripe's times are whole seconds):
    # it stays deleted.
    fake.advance(10)
    fake.delete("customer", customer)
    deletion = fake.recorded_events("customer.deleted")[0]
    assert deliver(stack, deletion).status_code == 200
    wait_for(lambda: customer not in stored(stack, "stripe_customer"), what="the deletion")
    late = fake.record_event(
        "customer.updated", {**ancient, "id": customer}, created=deletion["created"]
    )
    assert deliver(stack, late).status_code == 200
    applied(stack, late)
    assert customer not in stored(stack, "stripe_customer")


def test_an_event_no_longer_stored_is_read_from_the_change_feed(
    hooked: tuple[Stack, FakeStripe],
) -> None:
    """A webhook's request run after its stored event is gone (a replay past the payloads'
    retention): the job reads the change feed of the event's collection instead, says so,
    and leaves the collection's cursor where it was."""
    stack, fake = hooked
    stack.stop("worker")  # the event's job stays queued
    customer = fake.ids("customer")[4]
    fake.advance(10)
    fake.update("customer", customer, email="feed@example.com")
    event = fake.recorded_events("customer.updated")[0]
    assert deliver(stack, event).status_code == 200
    request_id = f"stripe-event:{APP}:{event['id']}"
    cursor = "SELECT cursor FROM sync_state WHERE collection = 'stripe_customer'"
    before = stack.scalar(cursor)
    assert before is not None
    gone = (
        "DELETE FROM sync_payloads WHERE job_id = (SELECT id FROM sync_jobs WHERE request_id = %s)"
    )
    assert stack.execute(gone, (request_id,)) == 1
    stack.start_worker()
    applied(stack, event)
    assert stored(stack, "stripe_customer")[customer]["payload"]["email"] == "feed@example.com"
    lines = stack.query(
        "SELECT e.data ->> 'message' FROM sync_events e JOIN sync_jobs j ON j.id = e.job_id "
        "WHERE j.request_id = %s AND e.type = 'log'",
        (request_id,),
    )
    assert ("The event is no longer stored; reading the change feed instead",) in lines, lines
    assert stack.scalar(cursor) == before
