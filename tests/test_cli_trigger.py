"""``syncbus trigger models --wait`` on a failing sync: the reason once, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.fake_catalogues import unreachable_base_url
from tests.stack import ADMIN_KEY, Stack


def test_a_failed_sync_prints_its_reason_once(isolated_stack: Stack) -> None:
    nowhere = unreachable_base_url()
    isolated_stack.env_overrides.update(
        {
            "MODELSDEV_BASE_URL": nowhere,
            "OPENROUTER_BASE_URL": nowhere,
            "HUGGINGFACE_BASE_URL": nowhere,
            "MODELS_SOURCE_RETRIES": "0",
        }
    )
    isolated_stack.start_worker()
    isolated_stack.start_api()

    result = subprocess.run(
        [sys.executable, "-m", "cli", "trigger", "models", "--wait"],
        env={**os.environ, "SYNCBUS_URL": isolated_stack.url, "ADMIN_API_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert result.stderr.count("no model source succeeded") == 1, result.stderr
    assert "Sync failed: no model source succeeded: modelsdev: connection failed" in result.stderr
    assert result.stderr.splitlines()[-1] == "sync failed"
