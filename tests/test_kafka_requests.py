"""Outside producers publish sync requests straight to Kafka; handled exactly like HTTP ones."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from confluent_kafka import Producer
from pydantic import ValidationError

from producers.publisher import SyncRequestPublisher
from schemas.events import SyncRequest
from tests.kafka_tools import read_topic
from tests.payloads import batch, entry
from tests.stack import ADMIN_PIN, Stack
from tests.waiting import wait_for

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "jsonschema"


def job_status(stack: Stack, request_id: str) -> str | None:
    value = stack.scalar("SELECT status FROM sync_jobs WHERE request_id = %s", (request_id,))
    return str(value) if value is not None else None


def test_published_request_is_processed_like_an_http_push(stack: Stack) -> None:
    payload = batch(["from-kafka-1", "from-kafka-2"])
    del payload["requestId"]
    prefix = stack.env["SYNCBUS_TOPIC_PREFIX"]

    with SyncRequestPublisher(stack.broker.bootstrap, topic_prefix=prefix) as publisher:
        request = publisher.publish("dictionary", payload=payload, scope="en", actor="importer")
        again = publisher.publish("dictionary", payload=payload, scope="en", actor="importer")

    assert again.request_id == request.request_id  # derived from the payload: stable
    wait_for(lambda: job_status(stack, request.request_id) == "succeeded", what="kafka job")
    status = stack.client().get(
        "/api/internal/dictionary-upserts/status",
        params={"requestId": request.request_id},
        headers={"X-Admin-PIN": ADMIN_PIN},
    )
    assert status.json()["status"] == "success"
    assert status.json()["created"] == 2
    assert (
        stack.scalar("SELECT count(*) FROM sync_jobs WHERE request_id = %s", (request.request_id,))
        == 1
    )
    assert (
        stack.scalar(
            "SELECT trigger || ':' || actor FROM sync_jobs WHERE request_id = %s",
            (request.request_id,),
        )
        == "kafka:importer"
    )
    assert (
        stack.scalar("SELECT count(*) FROM dictionary_audit_log WHERE word LIKE 'from-kafka-%%'")
        == 2
    )


def test_request_envelope_matches_the_published_json_schema() -> None:
    schema = json.loads((SCHEMAS / "syncbus.sync_request.v1.json").read_text())
    request = SyncRequest(request_id="r-1", domain="dictionary", scope="en", payload=batch())
    published = json.loads(request.to_json())
    jsonschema.validate(published, schema)
    # The worker runs syncbus.sync_request v1 only (see the DLQ test below): so says the schema.
    for other in ({"name": "syncbus.sync_request", "version": 2}, {"name": "x", "version": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**published, "schema": other}, schema)
    batch_schema = json.loads((SCHEMAS / "syncbus.dictionary_batch.v1.json").read_text())
    jsonschema.validate(batch(), batch_schema)


def test_only_parameters_refuse_numbers_that_read_back_past_64_bits() -> None:
    """jsonb writes 1e20 as 100000000000000000000: parameters are read back into a request
    (the reconciler, a takeover), so they may not hold one; a payload never is."""
    kept = SyncRequest(request_id="r-1", domain="dictionary", payload={"x": 1e20})
    assert kept.payload == {"x": 1e20}
    with pytest.raises(ValidationError, match="number out of range"):
        SyncRequest(request_id="r-2", domain="dictionary", params={"x": 1e20})


def test_garbage_and_bad_payloads_go_to_the_dead_letter_topic(stack: Stack) -> None:
    prefix = stack.env["SYNCBUS_TOPIC_PREFIX"]
    producer = Producer({"bootstrap.servers": stack.broker.bootstrap})
    producer.produce(f"{prefix}requests.dictionary", b"{not json", key=b"dictionary:en")
    producer.flush(10)
    bad = batch(entries=[entry("ok"), {"en": ""}])
    with SyncRequestPublisher(stack.broker.bootstrap, topic_prefix=prefix) as publisher:
        failed = publisher.publish("dictionary", payload=bad, scope="en")

    letters = read_topic(
        stack.broker.bootstrap,
        f"{prefix}dlq",
        until=lambda vs: {v.get("request_id") for v in vs} >= {"unknown", failed.request_id},
    )
    by_request = {v.get("request_id"): v for v in letters}
    assert by_request["unknown"]["reason"].startswith("invalid sync request")
    assert by_request["unknown"]["original"] == "{not json"
    assert by_request[failed.request_id]["reason"].startswith("entry 1: 'en'")
    assert by_request[failed.request_id]["_headers"]["schema"] == "syncbus.dead_letter/v1"
    assert job_status(stack, failed.request_id) == "failed"


def test_a_tombstone_and_another_schema_go_to_the_dead_letter_topic(stack: Stack) -> None:
    prefix = stack.env["SYNCBUS_TOPIC_PREFIX"]
    other_schema = orjson.dumps(
        {
            "schema": {"name": "syncbus.sync_request", "version": 2},
            "request_id": "schema-v2",
            "domain": "dictionary",
            "scope": "en",
            "payload": batch(["schema-v2"]),
        }
    )
    producer = Producer({"bootstrap.servers": stack.broker.bootstrap})
    producer.produce(f"{prefix}requests.dictionary", None, key=b"dictionary:en")
    producer.produce(f"{prefix}requests.dictionary", other_schema, key=b"dictionary:en")
    producer.flush(10)
    with SyncRequestPublisher(stack.broker.bootstrap, topic_prefix=prefix) as publisher:
        after = publisher.publish("dictionary", payload=batch(["after-them"]), scope="en")
    wait_for(lambda: job_status(stack, after.request_id) == "succeeded", what="the next request")

    expected = {"", other_schema.decode()}
    letters = read_topic(
        stack.broker.bootstrap,
        f"{prefix}dlq",
        until=lambda vs: expected <= {v.get("original") for v in vs},
    )
    reasons = {v["original"]: v["reason"] for v in letters if v.get("original") in expected}
    assert set(reasons) == expected, reasons
    assert "is not syncbus.sync_request/v1" in reasons[other_schema.decode()]
    assert stack.scalar("SELECT count(*) FROM dictionary_entries WHERE word = 'schema-v2'") == 0


def test_reused_request_id_with_other_payload_is_dead_lettered(stack: Stack) -> None:
    prefix = stack.env["SYNCBUS_TOPIC_PREFIX"]
    with SyncRequestPublisher(stack.broker.bootstrap, topic_prefix=prefix) as publisher:
        first = publisher.publish("dictionary", payload=batch(["reuse-a"]), request_id="reuse-1")
        wait_for(lambda: job_status(stack, first.request_id) == "succeeded", what="first job")
        publisher.publish("dictionary", payload=batch(["reuse-b"]), request_id="reuse-1")

    letters = read_topic(
        stack.broker.bootstrap,
        f"{prefix}dlq",
        until=lambda vs: any(v.get("request_id") == "reuse-1" for v in vs),
    )
    reused = [v for v in letters if v.get("request_id") == "reuse-1"]
    assert any("another payload" in v["reason"] for v in reused)
    assert stack.scalar("SELECT count(*) FROM dictionary_entries WHERE word = 'reuse-b'") == 0
