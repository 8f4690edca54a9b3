"""Terminal output: one rich console, and the progress bar every long loop uses."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=False, highlight=False, soft_wrap=True)  # long paths stay on one line
error_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_plain(lines: list[str]) -> None:
    """Lines as they are: no rich markup, highlighting or wrapping (a report's terminal summary)."""
    for line in lines:
        console.print(line, markup=False, highlight=False, emoji=False)


def progress_bar(transient: bool = True) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=transient,
    )
