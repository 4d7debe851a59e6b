"""Bad input to the commands: a reason, the usage exit code (2), no traceback, no secret.

None of these needs a running service: each is refused before anything is reached, or
names the api it could not reach.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.processes import free_port
from tests.cli_run import captured

UNREACHABLE = {
    "DATABASE_URL": "postgresql://syncbus@127.0.0.1:1/syncbus",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
}
KEY = ("--admin-key", "dev-admin-key")
ADD_NAN = ("schedules", "add", "n", "--domain", "models", "--every", "15m", "--param", "a=NaN")


def closed_url(credentials: str = "") -> str:
    return f"http://{credentials}127.0.0.1:{free_port()}"


CASES: dict[str, tuple[tuple[str, ...], dict[str, str], str]] = {
    # args, environment, what the one line says
    "a time before year 1": (
        ("tail", "progress", "--since", "99999999999d"),
        UNREACHABLE,
        "further back than year 1",
    ),
    "a replay window that is empty": (
        ("replay", "--since", "10m", "--until", "1h"),
        UNREACHABLE,
        "--since 10m is after --until 1h",
    ),
    "reversed offsets": (
        ("replay", "--topic", "requests.dictionary", "--from-offset", "10", "--to-offset", "5"),
        UNREACHABLE,
        "--from-offset 10 is past --to-offset 5",
    ),
    "a trigger URL httpx cannot read": (
        ("trigger", "models", *KEY, "--url", "http://[::1"),
        {},
        "invalid --url",
    ),
    "a schedules URL httpx cannot read": (
        ("schedules", "list", *KEY, "--url", "http://[::1"),
        {},
        "invalid --url",
    ),
    "a non-ASCII admin key": (
        ("schedules", "list", "--admin-key", "kä", "--url", closed_url()),
        {},
        "the admin key must be printable ASCII",
    ),
    "NaN as a parameter, the api away": (
        (*ADD_NAN, *KEY, "--url", closed_url()),
        {},
        "cannot reach http://127.0.0.1:",
    ),
    "an unknown log level": (
        ("migrate",),
        {**UNREACHABLE, "SYNCBUS_LOG_LEVEL": "nope"},
        "invalid SYNCBUS_LOG_LEVEL",
    ),
    "a port past 65535": (("dev", "--port", "99999"), {}, "Invalid value for '--port'"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_with_exit_2(tmp_path: Path, case: str) -> None:
    args, env, said = CASES[case]
    result = captured(*args, cwd=tmp_path, **env)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert said in output, output
    assert "Traceback" not in output, output


def test_urls_are_named_without_their_credentials(tmp_path: Path) -> None:
    url = closed_url("user:s3cret-pw@")
    answers = [
        captured("trigger", "models", *KEY, "--url", url, cwd=tmp_path),
        captured("schedules", "list", *KEY, "--url", url, cwd=tmp_path),
        captured("health", cwd=tmp_path, DATABASE_URL="mysql://user:s3cret-pw@host/db"),
    ]
    for answer in answers:
        output = answer.stdout + answer.stderr
        assert answer.returncode == 2, output
        assert "s3cret-pw" not in output and "Traceback" not in output, output
    assert "cannot reach http://127.0.0.1:" in answers[0].stderr
    assert "DATABASE_URL is not a PostgreSQL URL" in answers[2].stdout + answers[2].stderr


def test_send_refuses_what_it_could_not_sign_or_reach(tmp_path: Path) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps({"requestId": "мир", "entries": [], "lang": "en"}))
    secret = ("--file", str(batch), "--secret", "s")
    answers = {
        "a requestId a header cannot carry": (
            captured("send", *secret, "--url", closed_url(), cwd=tmp_path),
            "requestId must be printable ASCII",
        ),
        "a URL httpx cannot read": (
            captured("send", *secret, "--url", "http://[::1", cwd=tmp_path),
            "invalid --url",
        ),
        "a negative wait": (
            captured("send", *secret, "--timeout", "-5", cwd=tmp_path),
            "Invalid value for '--timeout'",
        ),
    }
    for name, (answer, said) in answers.items():
        output = answer.stdout + answer.stderr
        assert answer.returncode == 2, (name, output)
        assert said in output and "Traceback" not in output, (name, output)
