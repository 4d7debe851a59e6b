"""README's "Use it" examples run as written against ``syncbus dev``, and print what it shows.

Only the api and broker ports differ (free ones for 8000 and 9092), the model catalogues and
Stripe are local fakes, and GIT_REPO_URL is a repository the test makes. The blocks run in
order, from a directory holding a copy of ``examples/`` and the dev stack's ``.syncbus/``,
with the venv's bin first on PATH, as in a second terminal at the repository root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli.devenv import read_dev_env
from tests.cli_run import Dev, clean_env, start_dev
from tests.fake_catalogues import FakeCatalogues
from tests.fake_stripe import FakeStripe
from tests.git_repos import WorkRepository
from tests.git_stack import module_source
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
ELLIPSIS = "…"
OPEN = "<more>"  # stands for a sample's "..." (more keys or items than shown)
ANNOTATION = re.compile(r"\s{2,}\(.*\)$")  # "HTTP/1.1 200 OK      (illustrative: ...)"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


@dataclass
class Example:
    language: str
    code: str
    sample: list[str]  # the lines the output must show, in order


def use_it_examples() -> list[Example]:
    """The bash and python blocks of "## Use it", each with the sample that follows it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Use it\n", 1)[1].split("\n## ", 1)[0]
    blocks = list(FENCE.finditer(section))
    examples = []
    for index, block in enumerate(blocks):
        language, code = block.group(1), block.group(2)
        if language not in ("bash", "python"):
            continue
        # A comment line holding JSON is the sample of what the line above it prints.
        sample = [m.group(1) for m in re.finditer(r"^#[^{\n]*(\{.*\})\s*$", code, re.MULTILINE)]
        after = blocks[index + 1] if index + 1 < len(blocks) else None
        if (
            after
            and after.group(1) not in ("bash", "python")
            and not section[block.end() : after.start()].strip()
        ):
            sample += sample_lines(after.group(2))
        examples.append(Example(language, code, sample))
    return examples


def sample_lines(sample: str) -> list[str]:
    lines = (ANNOTATION.sub("", line).strip() for line in sample.splitlines())
    return [line for line in lines if line and line not in (ELLIPSIS, "...")]


def output_lines(output: str) -> list[str]:
    """Non-blank lines; JSON documents printed back to back (curl adds no newline) split."""
    lines: list[str] = []
    decoder = json.JSONDecoder()
    for raw in output.splitlines():
        line = raw.strip()
        while line.startswith(("{", "[")):
            try:
                _, end = decoder.raw_decode(line)
            except ValueError:
                break
            lines.append(line[:end])
            line = line[end:].strip()
        if line:
            lines.append(line)
    return lines


def loose_json(text: str) -> Any:
    """A sample's JSON, where ``...`` stands for more keys or items."""
    text = re.sub(r",\s*\.\.\.\s*\}", f', "{OPEN}": 0}}', text)
    text = text.replace("{...}", f'{{"{OPEN}": 0}}').replace("[...]", f'["{OPEN}"]')
    return json.loads(text)


def same_shape(sample: Any, actual: Any) -> bool:
    """Same keys (all of them unless the sample says ``...``), same words; numbers may differ."""
    if isinstance(sample, dict):
        if not isinstance(actual, dict):
            return False
        keys = set(sample) - {OPEN}
        if not keys <= set(actual) or (OPEN not in sample and keys != set(actual)):
            return False
        return all(same_shape(sample[k], actual[k]) for k in keys)
    if isinstance(sample, list):
        if OPEN in sample:
            return isinstance(actual, list)
        return (
            isinstance(actual, list)
            and len(actual) == len(sample)
            and all(same_shape(s, a) for s, a in zip(sample, actual, strict=True))
        )
    if isinstance(sample, bool) or (isinstance(sample, str) and ELLIPSIS not in sample):
        return bool(sample == actual)
    if isinstance(sample, str):
        return isinstance(actual, str) and bool(re.fullmatch(text_pattern(sample), actual))
    if sample is None:  # e.g. an age: null when nothing waits, a number otherwise
        return actual is None or (isinstance(actual, int | float) and not isinstance(actual, bool))
    return isinstance(actual, int | float) and not isinstance(actual, bool)


def text_pattern(sample: str) -> str:
    """``…`` and the id it cuts short (``5b0c…``) are anything; numbers are any number, except
    in an HTTP status line."""
    keep_numbers = sample.startswith("HTTP/")
    parts = re.split(r"([\w-]*…[\w-]*|\d+(?:\.\d+)?)", sample)
    return "".join(
        ".*"
        if ELLIPSIS in part
        else r"\d+(?:\.\d+)?"
        if part[:1].isdigit() and not keep_numbers
        else re.escape(part)
        for part in parts
    )


def line_matches(sample: str, actual: str) -> bool:
    brace = sample.find("{")
    if brace >= 0:  # "data: {...}", or a whole JSON line
        prefix = re.match(text_pattern(sample[:brace]) + r"(\{.*)$", actual)
        if prefix is None:
            return False
        try:
            return same_shape(loose_json(sample[brace:]), json.loads(prefix.group(1)))
        except ValueError:
            return False
    return re.fullmatch(text_pattern(sample), actual) is not None


def assert_shows(sample: list[str], output: str) -> None:
    """Every sample line matches an output line, in the sample's order."""
    lines = output_lines(output)
    position = 0
    for expected in sample:
        found = next(
            (i for i in range(position, len(lines)) if line_matches(expected, lines[i])), None
        )
        assert found is not None, f"no line like\n  {expected}\nafter line {position} of\n{output}"
        position = found + 1


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    cwd = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", cwd / "examples")
    tests_repo = WorkRepository(tmp_path_factory.mktemp("tests-repo"), branch="main")
    tests_repo.commit_files({"tests/test_login.py": module_source("test_a", "test_b", "test_c")})
    with FakeCatalogues() as catalogues, FakeStripe() as stripe:
        secrets = {
            "STRIPE_API_KEY_STRIPE_TEST": stripe.api_key,
            "STRIPE_WEBHOOK_SECRET_STRIPE_TEST": "whsec_readme",
        }
        env = clean_env(**catalogues.settings_env(), **secrets, GIT_REPO_URL=tests_repo.url)
        running = start_dev(cwd, env)
        running.stripe_url = stripe.base_url
        try:
            running.wait_ready()
            yield running
        finally:
            running.stop()


def run_example(example: Example, dev: Dev) -> subprocess.CompletedProcess[str]:
    code = example.code.replace("127.0.0.1:8000", f"127.0.0.1:{dev.port}")
    code = code.replace("127.0.0.1:9092", f"127.0.0.1:{dev.kafka_port}")
    code = code.replace("https://api.stripe.com", dev.stripe_url)  # the local fake Stripe
    env = clean_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if example.language == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    else:
        command = [sys.executable, "-c", code]
    return subprocess.run(
        command, cwd=dev.cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_use_it_examples_run_as_written_and_print_what_the_readme_shows(dev: Dev) -> None:
    examples = use_it_examples()
    assert [e.language for e in examples] == [
        "bash",
        "bash",
        "bash",
        "bash",
        "bash",
        "bash",
        "bash",
        "python",
        "bash",
    ]
    for example in examples:
        result = run_example(example, dev)
        # The CLI says what it did on stderr before it prints its result on stdout.
        output = f"{result.stderr}\n{result.stdout}"
        assert result.returncode == 0, f"{example.code}\nexited {result.returncode}:\n{output}"
        assert_shows(example.sample, output)

    # The Kafka example's request was processed like a pushed one.
    database = read_dev_env(dev.data_dir / "dev.env")["DATABASE_URL"]
    with psycopg.connect(database, autocommit=True) as conn:
        wait_for(
            lambda: conn.execute(
                "SELECT 1 FROM dictionary_entries WHERE lang = 'en' AND word = 'kafka'"
            ).fetchone(),
            timeout=20,
            what="the published request to be applied",
        )


def test_the_shape_check_tells_a_drifted_sample() -> None:
    stats = '{"pending": 0, "failed": 0, "recentWindowMinutes": 10}'
    assert line_matches(stats, '{"pending": 3, "failed": 1, "recentWindowMinutes": 60}')
    assert not line_matches(
        stats, '{"pending": 0, "failed": 0, "extra": 1, "recentWindowMinutes": 1}'
    )
    assert line_matches('{"ok": true, ...}', '{"ok": true, "more": 1}')
    assert not line_matches('{"ok": true, ...}', '{"ok": false}')
    assert line_matches("x-sync-log-id: 5b0c…", "x-sync-log-id: 0d9e-11")
    assert not line_matches("HTTP/1.1 200 OK", "HTTP/1.1 502 Bad Gateway")
    assert line_matches(
        'data: {"message": "Starting … (attempt 1)"}', 'data: {"message": "Starting x (attempt 1)"}'
    )
