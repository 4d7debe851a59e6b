"""The models sync's input fingerprint and reused reports, through the real client and the fake
catalogues: equal answers fingerprint equal, any change shows, stored reports stand for a read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.models import SourceReport
from schemas.settings import Settings
from streams.domains.models.http import new_client
from streams.domains.models.sources import Answers, fetch_answers, read_answers
from tests.fake_catalogues import FakeCatalogues
from tests.test_model_sources import settings_for


@pytest.fixture(scope="module")
def server() -> Iterator[FakeCatalogues]:
    with FakeCatalogues() as running:
        yield running


@pytest.fixture
def fake(server: FakeCatalogues) -> FakeCatalogues:
    server.reset()
    return server


def answers(settings: Settings) -> Answers:
    async def run() -> Answers:
        async with new_client(settings) as client:
            return await fetch_answers(settings, client)

    return asyncio.run(run())


def without_timings(reports: list[SourceReport]) -> list[dict[str, Any]]:
    return [r.model_dump(exclude={"duration_ms"}) for r in reports]


def test_equal_answers_fingerprint_equal_and_any_changed_value_shows(fake: FakeCatalogues) -> None:
    settings = settings_for(fake)
    first = answers(settings).fingerprint
    assert answers(settings).fingerprint == first

    openrouter = fake.payload("openrouter")
    openrouter["data"][0]["pricing"]["prompt"] = "0.000009"
    fake.set_payload("openrouter", openrouter)
    changed = answers(settings).fingerprint
    hf = fake.payload("huggingface")
    hf[-1]["likes"] = hf[-1].get("likes", 0) + 1  # on the last page, a field only extras keep
    fake.set_payload("huggingface", hf)
    changed_again = answers(settings).fingerprint

    assert len({first, changed, changed_again}) == 3
    fake.reset()
    assert answers(settings).fingerprint == first


def test_a_failed_source_counts_by_how_it_ended_not_by_its_message(fake: FakeCatalogues) -> None:
    settings = settings_for(fake)
    all_ok = answers(settings).fingerprint
    fake.disappear("huggingface", "404")
    gone = answers(settings)
    fake.disappear("huggingface", "drop")
    dropped = answers(settings)

    messages = {a.failure.message for a in (*gone.answers, *dropped.answers) if a.failure}
    assert len(messages) == 2  # two different failures...
    assert gone.fingerprint == dropped.fingerprint != all_ok  # ...one and the same input


def test_stored_reports_stand_for_a_read_of_the_same_answers(fake: FakeCatalogues) -> None:
    openrouter = fake.payload("openrouter")
    openrouter["data"].append({"name": "no id: skipped, and said so in the report"})
    fake.set_payload("openrouter", openrouter)
    fake.disappear("artificialanalysis")
    settings = settings_for(fake)
    _, reports = read_answers(answers(settings))
    stored = [r.model_dump(mode="json") for r in reports]
    assert "1 malformed item(s) skipped" in (stored[1]["message"] or "")

    again = answers(settings)
    reused = again.reports_as(stored)

    assert reused is not None
    assert without_timings(reused) == without_timings(read_answers(again)[1])
    assert reused[3].state == "failed" and "404" in (reused[3].message or "")
    assert again.reports_as(stored[:2] + stored[3:]) is None  # one missing: read afresh
