"""Many callers at once: one request id makes one job; one models sync runs at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from tests.fake_catalogues import FakeCatalogues
from tests.payloads import batch, signed
from tests.stack import ADMIN_KEY, SECRET, Stack
from tests.waiting import wait_for

CALLERS = 100


def test_concurrent_pushes_of_one_request_id_make_one_job(stack: Stack) -> None:
    payload = batch(["same-id-1", "same-id-2"])
    body, headers = signed(payload, SECRET)

    def post(_: int) -> int:
        with httpx.Client(timeout=60) as client:
            return client.post(stack.push_url, content=body, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = Counter(pool.map(post, range(CALLERS)))
    assert codes[202] == 1, codes
    assert set(codes) <= {202, 200, 409}, codes
    request_id = payload["requestId"]
    assert stack.scalar("SELECT count(*) FROM sync_jobs WHERE request_id = %s", (request_id,)) == 1
    wait_for(
        lambda: (
            stack.scalar("SELECT status FROM sync_jobs WHERE request_id = %s", (request_id,))
            == "succeeded"
        ),
        what="the one job",
    )
    assert (
        stack.scalar("SELECT count(*) FROM dictionary_audit_log WHERE word LIKE 'same-id-%%'") == 2
    )


@pytest.fixture
def slow_catalogues() -> Iterator[FakeCatalogues]:
    with FakeCatalogues() as fake:
        fake.delay("modelsdev", 60)  # held until the test lets it go (reset)
        yield fake


@pytest.fixture
def models_stack(
    postgres: EmbeddedPostgres,
    broker: EmbeddedBroker,
    workdir: Path,
    slow_catalogues: FakeCatalogues,
) -> Iterator[Stack]:
    stack = Stack(postgres, broker, workdir)
    stack.env_overrides.update({**slow_catalogues.settings_env(), "MODELS_SOURCE_TIMEOUT_S": "90"})
    stack.create()
    stack.start_worker()
    stack.start_api()
    yield stack
    stack.discard()


def test_concurrent_model_sync_triggers_run_one_sync(
    models_stack: Stack, slow_catalogues: FakeCatalogues
) -> None:
    stack = models_stack

    def trigger(_: int) -> int:
        with httpx.Client(timeout=60) as client:
            return client.post(
                f"{stack.url}/api/admin/sync-models",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = Counter(pool.map(trigger, range(CALLERS)))
    assert codes == Counter({202: 1, 409: CALLERS - 1}), codes
    assert stack.scalar("SELECT count(*) FROM sync_jobs WHERE domain = 'models'") == 1
    slow_catalogues.reset()  # the source answers; the one sync finishes
    wait_for(
        lambda: stack.scalar("SELECT status FROM sync_jobs WHERE domain = 'models'") == "succeeded",
        timeout=60,
        what="the models sync",
    )
