"""``syncbus --help`` describes the tool, every command and option; errors are never wrapped."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperCommand, TyperGroup

from cli.main import CLIENT_COMMANDS, app
from tests.cli_run import captured as syncbus


def commands() -> dict[str, TyperCommand | TyperGroup]:
    """The top-level commands and command groups (``schedules``)."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    found = {
        name: c for name, c in group.commands.items() if isinstance(c, TyperCommand | TyperGroup)
    }
    assert len(found) == len(group.commands)
    return found


def leaves() -> dict[str, TyperCommand]:
    """Every command that runs something, a group's as ``group sub``."""
    found: dict[str, TyperCommand] = {}
    for name, command in commands().items():
        if isinstance(command, TyperGroup):
            for sub, child in command.commands.items():
                assert isinstance(child, TyperCommand), f"{name} {sub}"
                found[f"{name} {sub}"] = child
        else:
            found[name] = command
    return found


def test_every_command_and_option_has_help() -> None:
    found = leaves()
    assert set(found) >= {"dev", "api", "worker", "migrate", "send", "health", "trigger"}
    assert {f"schedules {c}" for c in ("list", "add", "pause", "resume", "rm", "run")} <= set(found)
    for name, command in [*found.items(), *commands().items()]:
        assert command.help and len(command.help.split()) >= 4, name
        for param in command.params:
            text = getattr(param, "help", None)
            assert text and len(text.split()) >= 3, f"{name} {param.name}"


def test_client_commands_say_they_read_dev_env() -> None:
    found = commands()
    for name in CLIENT_COMMANDS:
        assert ".syncbus/dev.env" in (found[name].help or ""), name
    for name in ("api", "worker"):
        assert "dev.env" not in (found[name].help or ""), name


def test_top_level_help_is_a_description_and_lists_each_command(tmp_path: Path) -> None:
    result = syncbus("--help", cwd=tmp_path)
    assert result.returncode == 0
    text = result.stdout
    assert "Thin" not in text and "``" not in text
    assert "syncbus keeps data in PostgreSQL in step with outside sources" in " ".join(text.split())
    listed = text.split("Commands:", 1)[1].splitlines()
    for name in commands():
        line = next((row for row in listed if row.split()[:1] == [name]), None)
        assert line is not None, name
        assert len(line.split()) >= 4 and not line.endswith("..."), line


def test_send_help_shows_the_default_url(tmp_path: Path) -> None:
    text = syncbus("send", "--help", cwd=tmp_path).stdout
    squeezed = "".join(text.split())  # the help wraps at the terminal's width
    assert "default:http://127.0.0.1:8000/api/internal/dictionary-upserts" in squeezed
    assert "RF_SYNC_URL" in text


def test_a_long_error_stays_on_one_line_when_output_is_captured(tmp_path: Path) -> None:
    missing = tmp_path / ("a-directory-with-a-long-name-" * 4) / "batch.json"
    result = syncbus("send", "--file", str(missing), cwd=tmp_path, RF_SYNC_SHARED_SECRET="x")
    assert result.returncode == 2
    assert len(f"cannot read {missing}") > 100
    assert result.stderr.splitlines() == [
        f"cannot read {missing}: [Errno 2] No such file or directory: '{missing}'"
    ]
