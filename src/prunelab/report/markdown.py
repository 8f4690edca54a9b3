"""Markdown tables (tabulate, GitHub style) and the number and word formats every report uses."""

from __future__ import annotations

from tabulate import tabulate


def table(rows: list[list], headers: list[str]) -> str:
    """A GitHub markdown table; cells are shown as given (no re-parsing of numbers)."""
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def count(value: float) -> str:
    """A count with thousands separators: 266,610."""
    return f"{round(value):,}"


def percent(numerator: float, denominator: float) -> str:
    """100 x numerator / denominator with two decimals, "-" when the denominator is 0."""
    return f"{100 * numerator / denominator:.2f}" if denominator else "-"


def plural(number: float, noun: str, nouns: str | None = None) -> str:
    """'1 thread', '2 threads', '0 rounds', '1.5 epochs' (`nouns` for an irregular plural). The
    count is written as given (an int stays an int; a float prints with :g)."""
    shown = f"{number:,}" if isinstance(number, int) else f"{number:g}"
    return f"{shown} {noun if number == 1 else (nouns or noun + 's')}"


def words(items: list[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'; '' for none."""
    items = [item for item in items if item]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def points(change: float | None) -> str:
    """A signed change in accuracy points, '-' when there is none: '+0.09', '-0.96'."""
    return "-" if change is None else f"{change:+.2f}"
