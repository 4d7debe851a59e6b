"""A syncbus with one Stripe app instance served by the local fake Stripe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.fake_stripe import FakeStripe, Kind
from tests.stack import ADMIN_KEY, Stack

APP = "stripe_test"
WEBHOOK_SECRET = "whsec_test_webhook_secret"
COLLECTIONS: dict[Kind, str] = {
    "customer": "stripe_customer",
    "product": "stripe_product",
    "price": "stripe_price",
    "plan": "stripe_plan",
    "subscription": "stripe_subscription",
    "subscription_item": "stripe_subscription_item",
}


def configure(stack: Stack, fake: FakeStripe, directory: Path, **settings: str) -> None:
    """The app in an apps file, its secrets, and a pace the local fake can take."""
    apps = directory / "apps.yaml"
    apps.write_text(
        f"apps:\n  - app_key: {APP}\n    connector: stripe\n    api_base: {fake.base_url}\n"
    )
    stack.env_overrides.update(
        {
            "SYNCBUS_APPS_FILE": str(apps),
            "STRIPE_API_KEY_STRIPE_TEST": fake.api_key,
            "STRIPE_WEBHOOK_SECRET_STRIPE_TEST": WEBHOOK_SECRET,
            "SYNCBUS_STRIPE_REQUESTS_PER_S": "2000",
            "SYNCBUS_SAAS_MAX_RETRY_WAIT_S": "0.2",
            **settings,
        }
    )


def sync(stack: Stack, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/sync",
        json={"app_key": APP, **body},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=120,
    )


def stored(stack: Stack, collection: str) -> dict[str, dict[str, Any]]:
    """The collection's entities by external id (payload and archived_at)."""
    rows = stack.query(
        "SELECT external_id, raw_payload, archived_at FROM supasaasy.entities "
        "WHERE app_key = %s AND collection_key = %s",
        (APP, collection),
    )
    return {r[0]: {"payload": r[1], "archived_at": r[2]} for r in rows}


def by_collection(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["collection_key"]: c for c in answer["collections"]}
