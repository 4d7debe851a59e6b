"""App instances of the saas domain: SYNCBUS_APPS_FILE at start and ``/v1/apps``, checked
with clear messages; each app's cron becomes a schedule; secrets stay in the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli_run import captured
from tests.stack import Stack

SECRETS = {
    "STRIPE_API_KEY_STRIPE_PROD": "sk_test_prod_secret",
    "STRIPE_WEBHOOK_SECRET_STRIPE_PROD": "whsec_prod_secret",
    "STRIPE_KEY_EU": "sk_test_eu_secret",
    "STRIPE_HOOK_EU": "whsec_eu_secret",
}
APPS_YAML = """
apps:
  - app_key: stripe_prod
    connector: stripe
    api_base: http://127.0.0.1:9/
    resources: [customer, subscription]
    schedule: "0 * * * *"
    sync_from: 2024-01-01
"""


def app_schedules(client: httpx.Client) -> dict[str, dict[str, Any]]:
    items = client.get("/v1/schedules", params={"domain": "saas"}).json()["items"]
    return {s["scope"]: s for s in items}


@pytest.fixture
def apps_stack(isolated_stack: Stack, tmp_path: Path) -> Stack:
    path = tmp_path / "apps.yaml"
    path.write_text(APPS_YAML)
    isolated_stack.env_overrides.update({**SECRETS, "SYNCBUS_APPS_FILE": str(path)})
    isolated_stack.start_api()
    return isolated_stack


def test_the_apps_file_seeds_apps_and_their_schedules(apps_stack: Stack) -> None:
    with apps_stack.client() as client:
        app = client.get("/v1/apps/stripe_prod").json()
        schedules = app_schedules(client)
    assert app == {
        "app_key": "stripe_prod",
        "connector": "stripe",
        "api_key_env": "STRIPE_API_KEY_STRIPE_PROD",
        "webhook_secret_env": "STRIPE_WEBHOOK_SECRET_STRIPE_PROD",
        "api_base": "http://127.0.0.1:9",
        "resources": ["customer", "subscription"],
        "schedule": "0 * * * *",
        "mode": "incremental",
        "sync_from": "2024-01-01",
        "origin": "config",
    }
    schedule = schedules["stripe_prod"]
    assert (schedule["cron"], schedule["mode"], schedule["enabled"]) == (
        "0 * * * *", "incremental", True
    )  # fmt: skip


def test_apps_through_the_api(apps_stack: Stack) -> None:
    with apps_stack.client() as client:
        made = client.post(
            "/v1/apps",
            json={
                "app_key": "stripe-eu",
                "connector": "stripe",
                "api_key_env": "STRIPE_KEY_EU",
                "webhook_secret_env": "STRIPE_HOOK_EU",
                "mode": "full",
                "schedule": "30 2 * * *",
            },
        )
        assert made.status_code == 201, made.text
        assert made.headers["location"] == "/v1/apps/stripe-eu"
        assert made.json()["resources"] == [
            "customer", "product", "price", "plan", "subscription", "subscription_item"
        ]  # fmt: skip
        assert app_schedules(client)["stripe-eu"]["mode"] == "full"
        again = client.post("/v1/apps", json={"app_key": "stripe-eu", "connector": "stripe",
                                              "api_key_env": "STRIPE_KEY_EU",
                                              "webhook_secret_env": "STRIPE_HOOK_EU"})  # fmt: skip
        assert again.status_code == 409

        changed = client.patch("/v1/apps/stripe_prod", json={"schedule": "15 * * * *"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["origin"] == "api"
        assert app_schedules(client)["stripe_prod"]["cron"] == "15 * * * *"
        stopped = client.patch("/v1/apps/stripe_prod", json={"schedule": None}).json()
        assert stopped["schedule"] is None
        assert app_schedules(client)["stripe_prod"]["enabled"] is False

        assert client.delete("/v1/apps/stripe-eu").status_code == 204
        assert client.get("/v1/apps/stripe-eu").status_code == 404
        assert "stripe-eu" not in app_schedules(client)
        listed = client.get("/v1/apps").text
    for secret in SECRETS.values():
        assert secret not in listed


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"app_key": "x", "connector": "hubspot"}, "unknown connector 'hubspot'"),
        ({"app_key": "bad key", "connector": "stripe"}, "^[A-Za-z0-9_-]{1,64}$"),
        ({"app_key": "x", "connector": "stripe", "schedule": "hourly"}, "cron needs 5 fields"),
        ({"app_key": "x", "connector": "stripe", "resources": ["invoice"]}, "invoice"),
        ({"app_key": "x", "connector": "stripe", "api_base": "ftp://x"}, "not an http(s) URL"),
        ({"app_key": "nokey", "connector": "stripe"}, "STRIPE_API_KEY_NOKEY"),
        ({"app_key": "x", "connector": "stripe", "api_key": "sk_live_1"}, "api_key"),
    ],
)
def test_bad_apps_are_422_with_the_reason(
    apps_stack: Stack, body: dict[str, Any], reason: str
) -> None:
    with apps_stack.client() as client:
        response = client.post("/v1/apps", json=body)
        listed = [a["app_key"] for a in client.get("/v1/apps").json()["items"]]
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert listed == ["stripe_prod"]


def test_a_bad_apps_file_stops_the_api_with_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    path.write_text(
        "apps:\n"
        "  - {app_key: one, connector: hubspot}\n"
        "  - {app_key: two, connector: stripe, schedule: 'every hour'}\n"
        "  - {app_key: three, connector: stripe}\n"
    )
    result = captured("api", cwd=tmp_path, SYNCBUS_APPS_FILE=str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert "apps.0: connector: unknown connector 'hubspot'" in lines[0]
    assert "apps.1.schedule: cron needs 5 fields" in lines[1]
    assert "Traceback" not in result.stderr

    path.write_text("apps:\n  - {app_key: three, connector: stripe}\n")
    missing = captured("api", cwd=tmp_path, SYNCBUS_APPS_FILE=str(path))
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"invalid SYNCBUS_APPS_FILE {path}: app three: the secret variable "
        "STRIPE_API_KEY_THREE is not set",
        f"invalid SYNCBUS_APPS_FILE {path}: app three: the secret variable "
        "STRIPE_WEBHOOK_SECRET_THREE is not set",
    ]
