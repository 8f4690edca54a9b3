"""The cells of a pruning-at-initialization sweep and the tables over them: methods x compressions,
mean ± std over seeds; the controls; achieved vs target density; whether the published ordering holds.

A cell with target compression 1 is dense training; where a method has no 1x cell of its
own, the dense cells stand in for it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ... import paths
from ...atomic import load_torch
from ...config import Experiment
from ...errors import UserError
from ...report.markdown import table
from .sweep_collapse import connectivity_of, zero_score_text

# A control counts as "close" to the plain mask within this many top-1 points, or within twice the
# larger seed standard deviation of the two (the seeds' own spread).
CLOSE_POINTS = 1.0


@dataclass
class Cell:
    cell_id: str
    exp: Experiment
    method: str  # column label
    compression: float  # target: prunable weights / kept ones
    seed: int
    control: str  # plain | shuffle | reinit | shuffle+reinit
    metrics: dict | None  # metrics.json["pruned"], None until measured
    log: dict  # the last row of the rounds log in pruned.pt ({} until pruned)
    empty: str = "-"  # all-zero output filters / all filters of the masked layers ("-" until pruned)
    connectivity: dict | None = None  # sweep_collapse.connectivity_of's fields (None until pruned)


# Override keys the tables lay out themselves (rows, columns, controls, seeds); any other key a cell
# overrides (an ablation's learning rate, say) is named in its method label, so its cells are not
# averaged with the plain ones as if they were seeds.
GRID_KEYS = frozenset({"seed", "prune.method", "prune.compression", "prune.density", "prune.sparsity",
                       "prune.at_init.shuffle", "prune.at_init.reinit", "prune.at_init.grasp_batchnorm",
                       "prune.at_init.pre_epochs", "prune.at_init.count"})


def _method_label(exp: Experiment) -> str:
    """The method, with what sets its cells apart from the default scoring (pre-training, BatchNorm mode)."""
    at = exp.prune.at_init
    label = f"{exp.prune.method} (after {at.pre_epochs} ep)" if at.pre_epochs else exp.prune.method
    if exp.prune.method == "grasp" and at.grasp_batchnorm != "eval":
        label += f" (BatchNorm {at.grasp_batchnorm})"
    return label


def _pruned_state(exp: Experiment) -> tuple[dict, str, dict | None]:
    """(the last rounds-log row, the empty filters, the collapse fields) from the digest-checked
    pruned.pt, read once (prune_log.csv holds the same rows, unchecked); ({}, "-", None) until pruned."""
    path = paths.pruned(exp)
    if not path.is_file():
        return {}, "-", None
    checkpoint = load_torch(path)
    rows = checkpoint.get("log") or []
    return (rows[-1] if rows else {}), empty_filters(checkpoint["masks"]), connectivity_of(exp, checkpoint)


def load_cells(exp: Experiment, summary: dict, experiments: dict[str, Experiment]) -> list[Cell]:
    """One Cell per row of sweep.json; `experiments` holds each cell's experiment by cell id."""
    cells = []
    for row in summary["cells"]:
        cell = experiments[row["cell"]]
        at = cell.prune.at_init
        control = "+".join(name for name, on in (("shuffle", at.shuffle), ("reinit", at.reinit)) if on) or "plain"
        measured = (row.get("metrics") or {}).get("pruned")
        if cell.prune.target_density() is None:
            raise UserError(f"{exp.path}: sweep cell {row['cell']}: prune needs compression, density or sparsity")
        # Rounded so that sparsity 0.9 (1 / 0.0999...) and compression 10 are the same row.
        compression = round(1 / cell.prune.target_density(), 6)
        label = _method_label(cell) + "".join(f" ({key.rsplit('.', 1)[-1]} {value})"
                                              for key, value in row["overrides"].items() if key not in GRID_KEYS)
        cells.append(Cell(row["cell"], cell, label, compression, cell.seed,
                          control, measured, *_pruned_state(cell)))
    return cells


def mean_std(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _fmt(values: list[float], digits: int) -> str:
    """mean ± std of the seeds' values; the value alone for one seed (no spread to show); "-" for none.
    digits >= 0: decimals; < 0: -digits significant digits (the std to 2), for quantities spanning
    orders of magnitude (a LeNet's effective MACs at 3000x are a millionth of a VGG16's)."""
    spec = f".{digits}f" if digits >= 0 else f".{-digits}g"
    if len(values) < 2:
        return format(values[0], spec) if values else "-"
    mean, std = mean_std(values)
    std = 0.0 if std <= 1e-9 * abs(mean) else std  # equal values' float rounding, not a spread
    return f"{format(mean, spec)} ± {format(std, spec if digits >= 0 else '.2g')}"


def _latency_ms(metrics: dict) -> float:
    cpu = metrics["latency"]["cpu"]
    return cpu[max(cpu, key=int)]["ms_per_batch"]


QUANTITIES = {  # name -> (table title, value of one cell's metrics, digits, PNG file, axis label)
    "accuracy": ("Top-1 accuracy (%)", lambda m: m["accuracy"], 2, "sweep_accuracy.png", "top-1 (%)"),
    "test_time": ("Test time (CPU ms per batch)", _latency_ms, 3, "sweep_test_time.png", "CPU ms / batch"),
    "flops": ("Effective MACs (millions, one image)", lambda m: m["effective_flops"] / 1e6, -4, "sweep_flops.png",
              "effective MACs (M)"),
}


def grid_values(cells: list[Cell], quantity: str) -> dict[tuple[float, str], list[float]]:
    """(compression, method) -> values over seeds, plain cells only; dense cells fill empty 1x slots."""
    value = QUANTITIES[quantity][1]
    out: dict[tuple[float, str], list[float]] = {}
    for cell in cells:
        if cell.control == "plain" and cell.metrics is not None:
            out.setdefault((cell.compression, cell.method), []).append(value(cell.metrics))
    dense = [v for (c, _), values in out.items() if c == 1 for v in values]
    for method in methods(cells):
        if dense and (1.0, method) not in out:
            out[(1.0, method)] = dense
    return out


def methods(cells: list[Cell]) -> list[str]:
    return list(dict.fromkeys(c.method for c in cells if c.control == "plain" and c.compression > 1))


def compressions(cells: list[Cell]) -> list[float]:
    return sorted({c.compression for c in cells})


def quantity_table(cells: list[Cell], quantity: str) -> str:
    values, digits = grid_values(cells, quantity), QUANTITIES[quantity][2]
    rows = [[f"{c:g}x" + (" (dense)" if c == 1 else "")]
            + [_fmt(values.get((c, m), []), digits) for m in methods(cells)] for c in compressions(cells)]
    return table(rows, ["compression"] + methods(cells))


def controls_table(cells: list[Cell]) -> tuple[str, list[tuple[str, float, str, float, float]]]:
    """Accuracy of shuffled / re-initialized masks beside the plain ones; (method, c, control, delta, tolerance)."""
    groups: dict[tuple[str, float], dict[str, list[float]]] = {}
    for cell in cells:
        if cell.metrics is not None:
            groups.setdefault((cell.method, cell.compression), {}).setdefault(cell.control, []).append(
                cell.metrics["accuracy"])
    controls = sorted({c.control for c in cells} - {"plain"})
    rows, deltas = [], []
    for (method, compression), by_control in groups.items():
        if len(by_control) < 2 or "plain" not in by_control:
            continue
        plain, plain_std = mean_std(by_control["plain"])
        row = [method, f"{compression:g}x", _fmt(by_control["plain"], 2)]
        for control in controls:
            stats = mean_std(by_control.get(control, []))
            row.append("-" if stats is None else f"{_fmt(by_control[control], 2)} ({stats[0] - plain:+.2f})")
            if stats is not None:
                tolerance = max(CLOSE_POINTS, 2 * max(plain_std, stats[1]))
                deltas.append((method, compression, control, stats[0] - plain, tolerance))
        rows.append(row)
    return table(rows, ["method", "compression", "plain"] + controls), deltas


def empty_filters(masks: dict) -> str:
    """All-zero output filters (rows) over all masked layers: what is left of the width."""
    empty = sum(int((~mask.flatten(1).any(1)).count_nonzero()) for mask in masks.values())
    return f"{empty}/{sum(mask.shape[0] for mask in masks.values())}"


def density_table(cells: list[Cell]) -> str:
    rows = []
    for cell in cells:
        log = cell.log
        if not log:
            rows.append([cell.cell_id, cell.method, cell.control, f"{cell.compression:g}x"] + ["-"] * 7)
            continue
        target, achieved = float(log["target_density"]), float(log["density"])
        rows.append([cell.cell_id, cell.method, cell.control, f"{cell.compression:g}x", f"{100 * target:.4f}",
                     f"{100 * achieved:.4f}", f"{100 * float(log['min_layer_density']):.3f}", cell.empty,
                     log.get("collapsed_layers") or "none",
                     cell.connectivity["disconnected_layers"].replace(";", ", ") or "none", zero_score_text(cell)])
    return table(rows, ["cell", "method", "control", "target", "target density (%)", "achieved density (%)",
                         "lowest layer density (%)", "empty filters", "collapsed layers",
                         "cut layers (no input-output path)", "kept weights with score 0"])


def ordering_section(cells: list[Cell], deltas: list) -> list[str]:
    """Does the published ordering hold here? Computed from the measured cells."""
    values = grid_values(cells, "accuracy")
    lines = []
    with_random = sorted(c for c, m in values if m == "random" and c > 1)
    for compression in with_random:
        random_mean = statistics.mean(values[(compression, "random")])
        deltas_here = {m: statistics.mean(values[(compression, m)]) - random_mean
                       for m in methods(cells) if m != "random" and (compression, m) in values}
        if compression == with_random[-1]:  # the highest compression: the published claim, in detail
            for method, delta in deltas_here.items():
                verdict = "beats" if delta > 0 else "does not beat"
                lines.append(f"- At {compression:g}x, {method} {verdict} random ({delta:+.2f} top-1 points).")
        else:
            above = ", ".join(m for m, d in deltas_here.items() if d > 0) or "none"
            below = ", ".join(m for m, d in deltas_here.items() if d <= 0) or "none"
            lines.append(f"- At {compression:g}x, above random: {above}; not above: {below}.")
    for method, compression, control, delta, tolerance in deltas:
        verdict = "close to" if abs(delta) <= tolerance else ("better than" if delta > 0 else "worse than")
        lines.append(f"- {method} at {compression:g}x, {control}: {verdict} the plain mask ({delta:+.2f} points; "
                     f"close = within {tolerance:.2f}, the larger of {CLOSE_POINTS:g} and twice the seeds' std).")
    return ["## Does the published ordering hold?",
            "Published: at high compression SynFlow and the data-driven scores (SNIP, GraSP) beat random; "
            "shuffling a layer's mask keeps accuracy (Frankle et al. 2021).",
            "\n".join(lines) or "Not enough measured cells to compare."]
