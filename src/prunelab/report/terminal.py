"""What a report prints: a few lines that fit an 80-column terminal or a log, then where the full
report.md is (its tables are too wide for a terminal and are not printed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from .baseline import Compared
from .kernels import terminal_line
from .experiment import ALL_WEIGHTS, rounds_counts
from .markdown import count, plural
from .references import dataset_label

WIDTH = 80
INDENT = "  "


def fit(lines: list[str], width: int = WIDTH) -> list[str]:
    """Each line wrapped at spaces to `width` columns, continuations indented further; a single word
    longer than that (a path) is kept whole, so that it can be copied."""
    out = []
    for line in lines:
        lead = line[: len(line) - len(line.lstrip())]
        out += textwrap.wrap(line, width, subsequent_indent=lead + INDENT, break_long_words=False,
                             break_on_hyphens=False) or [""]
    return out


def shown_path(path: Path) -> str:
    """The path relative to the current directory when it lies under it (shorter, and what the
    commands in the README take), else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def pointer(path: Path, what: str = "full report, with the per-layer tables") -> list[str]:
    """'<what>: <path>' on one line, or the path alone on the next when both do not fit."""
    where = shown_path(path)
    line = f"{what}: {where}"
    return [line] if len(line) <= WIDTH else [f"{what}:", f"{INDENT}{where}"]


def _cpu_ratio(pruned: dict, dense: dict, threads: int) -> str:
    cpu, base = pruned["latency"]["cpu"], dense["latency"]["cpu"]
    sizes = sorted((size for size in cpu if size in base), key=int)
    ratios = ", ".join(f"{cpu[s]['ms_per_batch'] / base[s]['ms_per_batch']:.2f} at batch {s}" for s in sizes)
    return f"{INDENT}CPU time pruned/dense ({plural(threads, 'torch thread')}): {ratios or 'no common batch size'}"


def experiment_lines(title: str, compared: Compared, log: list[dict], threads: int) -> list[str]:
    """Accuracy dense -> pruned with the change, compression, theoretical speedup and measured CPU
    time ratio, each on a line of at most WIDTH columns."""
    lines = [title]
    dense, pruned = compared.baseline, compared.entry("pruned")
    if dense is not None and pruned is not None:
        lines.append(f"{INDENT}top-1: dense {dense['accuracy']:.2f}% -> pruned {pruned['accuracy']:.2f}% "
                     f"({compared.change(pruned):+.2f} points vs dense)")
    elif pruned is not None:
        lines.append(f"{INDENT}top-1: pruned {pruned['accuracy']:.2f}% (pruned at initialization, no dense model)")
    elif dense is not None:
        lines.append(f"{INDENT}top-1: dense {dense['accuracy']:.2f}% (not pruned)")
    if compared.trained is not None:
        label, entry = compared.trained
        source = compared.rows[0][1].get("path")
        lines.append(f"{INDENT}dense: {shown_path(Path(source)) if source else 'the pretrained model'} "
                     "(train.pretrained)")
        lines.append(f"{INDENT}this run's dense.pt: {label}, top-1 {entry['accuracy']:.2f}%")
    if pruned is None:
        return fit(lines)
    compression = f"{INDENT}compression: {pruned['compression']:.2f}x of {ALL_WEIGHTS}"
    if log:  # the pruner's own count (rounds table)
        compression += f", {log[-1]['compression']:.2f}x of {rounds_counts(log)}"
    lines.append(compression)
    macs = (dense or pruned)["flops"]  # a physically pruned model has fewer MACs of its own
    lines.append(f"{INDENT}theoretical speedup: {pruned['theoretical_speedup']:.2f}x "
                 f"(MACs {count(macs)} -> {count(pruned['effective_flops'])})")
    if dense is not None:
        lines.append(_cpu_ratio(pruned, dense, threads))
    lines += terminal_line(pruned, INDENT)  # with sparse kernels, when test measured them
    compressed = compared.entry("compressed")
    if compressed is not None:
        change = f" ({compared.change(compressed):+.2f} points vs dense)" if dense is not None else ""
        lines.append(f"{INDENT}compressed file: {count(compressed['file_bytes'])} bytes, "
                     f"{compressed['storage_compression']:.1f}x smaller than dense fp32")
        lines.append(f"{INDENT}decoded from it: top-1 {compressed['accuracy']:.2f}%{change}")
    return fit(lines)


def experiment_title(name: str, arch: str, dataset: str) -> str:
    return f"{name}: {arch} on {dataset_label(dataset)}"
