"""Terminal output: one rich console, and the progress bar every long loop uses."""

from __future__ import annotations

from contextlib import contextmanager
from typing import IO, Iterator

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


@contextmanager
def to_file(handle: IO[str]) -> Iterator[None]:
    """Both consoles write plain text to `handle` inside the block (a sweep job's log file). Rich
    draws live progress bars only on a terminal, so none reach the file; its colour system is
    chosen once, for the stream a console had when it was made, so it is switched off here
    (rich has no public setter) to keep escape codes out of the file."""
    saved = [(each, each.file, each._color_system) for each in (console, error_console)]
    for each, _, _ in saved:
        each.file = handle
        each._color_system = None
    try:
        yield
    finally:
        for each, file, colors in saved:
            each.file = file
            each._color_system = colors
