"""Layer collapse over a pruning-at-initialization sweep: per method and compression, how many
masked layers lost every path from input to output (connectivity.py), the effective compression
(weights / kept weights on a path), the critical compression (the highest compression up to
which no seed's mask cut the network: SynFlow's claim is that its own is the highest), and the
kept weights whose score was exactly 0 (ties.py)."""

from __future__ import annotations

import statistics

from ... import checkpoints, paths
from ...data.spec import spec_for
from ...report.markdown import table
from .connectivity import connectivity
from .controls import connectivity_fields


def connectivity_of(cell_exp, checkpoint: dict) -> dict:
    """The collapse fields of a pruned checkpoint: from its rounds log when the prune logged them,
    else computed from its masks (runs pruned before prunelab logged them)."""
    last = (checkpoint.get("log") or [{}])[-1]
    if "disconnected_layers" in last:
        return {key: last[key] for key in ("empty_layers", "disconnected_layers", "effective_density")}
    model = checkpoints.build_model(cell_exp, checkpoint, paths.pruned(cell_exp))
    return connectivity_fields(connectivity(model, checkpoint["masks"], spec_for(cell_exp).image_shape))


def _layers(text) -> list[str]:
    return [name for name in str(text or "").split(";") if name]


def _plain(cells) -> dict[tuple[float, str], list]:
    out: dict[tuple[float, str], list] = {}
    for cell in cells:
        if cell.control == "plain" and cell.log and cell.compression > 1:
            out.setdefault((cell.compression, cell.method), []).append(cell)
    return out


def critical_compression(cells, method: str) -> tuple[float | None, float | None]:
    """(the highest grid compression up to which no seed's mask has a disconnected layer, the first
    at which one does); None where there is no such compression."""
    grid = _plain(cells)
    critical, first_cut = None, None
    for compression in sorted(c for c, m in grid if m == method):
        if any(_layers(cell.connectivity["disconnected_layers"]) for cell in grid[(compression, method)]):
            first_cut = compression
            break
        critical = compression
    return critical, first_cut


def _effective(group) -> str:
    """Mean effective compression over the seeds whose network is not cut, and how many are."""
    densities = [float(cell.connectivity["effective_density"]) for cell in group
                 if cell.connectivity["effective_density"] not in ("", None)]
    if not densities:
        return "-"
    live = [d for d in densities if d > 0]
    if not live:
        return "cut"
    text = f"{statistics.mean(1 / d for d in live):,.4g}x"
    return text if len(live) == len(densities) else f"{text} ({len(densities) - len(live)} of {len(densities)} cut)"


def collapse_section(cells, methods: list[str]) -> list[str]:
    grid = _plain(cells)
    compressions = sorted({c for c, _ in grid})
    rows, effective_rows = [], []
    for method in methods:
        row, effective = [method], [method]
        for compression in compressions:
            group = grid.get((compression, method), [])
            if not group:
                row.append("-")
                effective.append("-")
                continue
            cut = [len(_layers(cell.connectivity["disconnected_layers"])) for cell in group]
            seeds_cut = sum(n > 0 for n in cut)
            row.append(f"{max(cut)}" + (f" ({seeds_cut} of {len(cut)} seeds)" if 0 < seeds_cut < len(cut) else ""))
            effective.append(_effective(group))
        critical, first_cut = critical_compression(cells, method)
        row.append("-" if critical is None else f"{critical:g}x")
        row.append("none in the grid" if first_cut is None else f"{first_cut:g}x")
        rows.append(row)
        effective_rows.append(effective)
    labels = [f"{c:g}x" for c in compressions]
    return [
        "## Layer collapse",
        "A masked layer is cut when none of its kept weights lies on a path from the input to the output "
        "(SynFlow's layer collapse: an empty layer, or one whose kept weights all start at units no input "
        "reaches or end at units that reach no output); the network's output then no longer depends on its "
        "input. Each entry is the most cut layers of any seed (how many seeds had a cut, if not all). "
        "The critical compression is the highest compression of the grid up to which no seed's mask cut a layer.",
        table(rows, ["method"] + labels + ["critical compression", "first cut at"]),
        "### Effective compression (weights / kept weights on an input-output path, mean over seeds)",
        "Kept weights off every path cannot change the output (Vysogorets and Kempe 2023 call the rest the "
        "effective density); 'cut' means no path is left (the mean is over the seeds with a path).",
        table(effective_rows, ["method"] + labels),
    ]


def zero_score_text(cell) -> str:
    """Kept weights with score exactly 0, from the rounds log ('not logged' for older runs)."""
    if "zero_score_kept" not in cell.log:
        return "not logged"
    return f"{int(cell.log['zero_score_kept']):,}"
