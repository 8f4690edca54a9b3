"""Markdown tables (tabulate, GitHub style) and the number formats every report uses."""

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
