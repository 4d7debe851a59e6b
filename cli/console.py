"""The CLI's stderr console: one unbroken line per message when the output is not a terminal."""

from __future__ import annotations

from rich.console import Console


def make_console(*, stderr: bool = True) -> Console:
    """A rich console; piped or captured output keeps each message on one line (no wrap at 80)."""
    console = Console(stderr=stderr)
    # Off a terminal rich assumes 80 columns and would break long errors where a log or a
    # grep cannot put them together again.
    console.soft_wrap = not console.is_terminal
    return console


def error(console: Console, message: str) -> None:
    """One red line, printed as is: text from elsewhere may hold ``[...]`` that is not markup."""
    console.print(message, style="red", markup=False, highlight=False)
