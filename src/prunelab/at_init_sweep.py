"""The pruning-at-initialization sweep report (COS598D): methods x compressions, mean ± std over seeds.

results/<name>/report.md holds the assignment's three tables (top-1 accuracy, test time,
effective FLOPs; rows = compression, columns = method), the same as PNG curves, the
per-layer sparsity / FLOPs tables and weight histograms at one compression, the Frankle
et al. 2021 controls, achieved vs target density and layer collapse of every cell, and
whether the published ordering holds. A cell with target compression 1 is dense
training; where a method has no 1x cell of its own, the dense cells stand in for it.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from . import paths
from .atomic import atomic_path, write_text
from .config import Experiment
from .data import DATASETS
from .errors import UserError
from .log import console
from .metrics import layer_stats

# GraSP paper (Wang et al. 2020), VGG19 on CIFAR-10, top-1 (%) at compression 10x / 20x / 50x
# (90 / 95 / 98% sparsity); dense 94.23%. From shared/REFERENCES.md.
GRASP_2020_VGG19_CIFAR10 = {"dense": 94.23, "snip": (93.63, 93.43, 92.05), "grasp": (93.30, 93.04, 92.19)}
# A control counts as "close" to the plain mask within this many top-1 points, or within twice the
# larger seed standard deviation of the two (the seeds' own spread).
CLOSE_POINTS = 1.0


def _table(rows: list[list], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


@dataclass
class Cell:
    cell_id: str
    exp: Experiment
    method: str  # column label
    compression: float  # target: prunable weights / kept ones
    seed: int
    control: str  # plain | shuffle | reinit | shuffle+reinit
    metrics: dict | None  # metrics.json["pruned"], None until measured
    log: dict  # the last row of prune_log.csv ({} until pruned)


def _method_label(exp: Experiment) -> str:
    pre = exp.prune.at_init.pre_epochs
    return f"{exp.prune.method} (after {pre} ep)" if pre else exp.prune.method


def _last_log_row(exp: Experiment) -> dict:
    path = paths.prune_log(exp)
    if not path.is_file():
        return {}
    rows = list(csv.DictReader(path.open()))
    return rows[-1] if rows else {}


def load_cells(exp: Experiment, summary: dict) -> list[Cell]:
    from .sweep import cell_experiment

    cells = []
    for row in summary["cells"]:
        cell = cell_experiment(exp, row["cell"], row["overrides"])
        at = cell.prune.at_init
        control = "+".join(name for name, on in (("shuffle", at.shuffle), ("reinit", at.reinit)) if on) or "plain"
        measured = (row.get("metrics") or {}).get("pruned")
        if cell.prune.target_density() is None:
            raise UserError(f"{exp.path}: sweep cell {row['cell']}: prune needs compression, density or sparsity")
        # Rounded so that sparsity 0.9 (1 / 0.0999...) and compression 10 are the same row.
        compression = round(1 / cell.prune.target_density(), 6)
        cells.append(Cell(row["cell"], cell, _method_label(cell), compression, cell.seed,
                          control, measured, _last_log_row(cell)))
    return cells


def _stats(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _fmt(stats: tuple[float, float] | None, digits: int) -> str:
    return "-" if stats is None else f"{stats[0]:.{digits}f} ± {stats[1]:.{digits}f}"


def _latency_ms(metrics: dict) -> float:
    cpu = metrics["latency"]["cpu"]
    return cpu[max(cpu, key=int)]["ms_per_batch"]


QUANTITIES = {  # name -> (table title, value of one cell's metrics, digits, PNG file, axis label)
    "accuracy": ("Top-1 accuracy (%)", lambda m: m["accuracy"], 2, "sweep_accuracy.png", "top-1 (%)"),
    "test_time": ("Test time (CPU ms per batch)", _latency_ms, 3, "sweep_test_time.png", "CPU ms / batch"),
    "flops": ("Effective MACs (millions, one image)", lambda m: m["effective_flops"] / 1e6, 3, "sweep_flops.png",
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
            + [_fmt(_stats(values.get((c, m), [])), digits) for m in methods(cells)] for c in compressions(cells)]
    return _table(rows, ["compression"] + methods(cells))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def quantity_plot(cells: list[Cell], quantity: str, path: Path) -> None:
    plt = _pyplot()
    title, _, _, _, label = QUANTITIES[quantity]
    values = grid_values(cells, quantity)
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in methods(cells):
        points = [(c, _stats(values[(c, method)])) for c in compressions(cells) if (c, method) in values]
        ax.errorbar([c for c, _ in points], [s[0] for _, s in points], yerr=[s[1] for _, s in points],
                    marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xlabel("compression (prunable weights / kept)")
    ax.set_ylabel(label)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _cell_model(cell: Cell):
    from .stages import checkpoints

    path = paths.pruned(cell.exp)
    checkpoint = checkpoints.load_current(cell.exp, path, cell.exp.stage_hash("prune"))
    return checkpoints.build_model(cell.exp, checkpoint, path)


def layer_sections(exp: Experiment, cells: list[Cell], compression: float) -> list[str]:
    """Per-layer sparsity and FLOPs tables and a weight-histogram PNG per method at one compression."""
    chosen = {}
    for cell in sorted(cells, key=lambda c: c.seed):
        if cell.control == "plain" and cell.compression == compression and cell.metrics is not None:
            chosen.setdefault(cell.method, cell)
    if not chosen:
        return [f"No measured cell at {compression:g}x yet."]
    shape = DATASETS[exp.data.dataset].image_shape
    models = {method: _cell_model(cell) for method, cell in chosen.items()}
    stats = {method: layer_stats(model, shape) for method, model in models.items()}
    first = next(iter(stats.values()))
    sparsity = [[layer.name, "x".join(map(str, layer.weight_shape))]
                + [f"{100 * (1 - stats[m][i].weight_density):.2f}" for m in stats] for i, layer in enumerate(first)]
    flops = [[layer.name, f"{layer.flops:,}"] + [f"{stats[m][i].effective_flops:,.0f}" for m in stats]
             for i, layer in enumerate(first)]
    positive = [[layer.name] + [_positive_share(models[m], layer.name) for m in stats] for layer in first]
    seeds = ", ".join(f"{m}: seed {c.seed}" for m, c in chosen.items())
    sections = [f"## Per layer at {compression:g}x", f"One run per method ({seeds}); the classifier is not pruned.",
                "### Sparsity per layer (%)", _table(sparsity, ["layer", "weight shape"] + list(stats)),
                "### Effective MACs per layer", _table(flops, ["layer", "dense MACs"] + list(stats)),
                "### Positive share of the kept weights per layer (%, after training)",
                "A random mask keeps about 50% positive weights; a score that prefers one sign shows here.",
                _table(positive, ["layer"] + list(stats)),
                "### Weight histograms (nonzero weights after training)"]
    for method, model in models.items():
        path = paths.run_dir(exp) / f"weights_{_file_label(method)}.png"
        histogram_plot(model, method, compression, path)
        sections.append(f"![{method} weights]({path.name})")
    return sections


def _positive_share(model, layer: str) -> str:
    weight = model.get_submodule(layer).weight.detach()
    kept = weight[weight != 0]
    return f"{100 * (kept > 0).float().mean().item():.1f}" if kept.numel() else "-"


def _file_label(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


def histogram_plot(model, method: str, compression: float, path: Path) -> None:
    import math

    import torch.nn as nn

    plt = _pyplot()
    layers = [(n, m.weight.detach().flatten()) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    cols = min(4, len(layers))
    rows = math.ceil(len(layers) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    for ax, (name, weight) in zip(axes.flat, layers):
        kept = weight[weight != 0].cpu().numpy()
        if kept.size:
            ax.hist(kept, bins=50)
        ax.set_title(f"{name} ({kept.size:,} kept)", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.suptitle(f"{method} at {compression:g}x: nonzero weights per layer")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


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
        plain, plain_std = _stats(by_control["plain"])
        row = [method, f"{compression:g}x", _fmt(_stats(by_control["plain"]), 2)]
        for control in controls:
            stats = _stats(by_control.get(control, []))
            row.append("-" if stats is None else f"{_fmt(stats, 2)} ({stats[0] - plain:+.2f})")
            if stats is not None:
                tolerance = max(CLOSE_POINTS, 2 * max(plain_std, stats[1]))
                deltas.append((method, compression, control, stats[0] - plain, tolerance))
        rows.append(row)
    return _table(rows, ["method", "compression", "plain"] + controls), deltas


def empty_filters(cell: Cell) -> str:
    """All-zero output filters (rows) over all masked layers: what is left of the width."""
    from .atomic import load_torch

    masks = load_torch(paths.pruned(cell.exp))["masks"]
    empty = sum(int((~mask.flatten(1).any(1)).count_nonzero()) for mask in masks.values())
    return f"{empty}/{sum(mask.shape[0] for mask in masks.values())}"


def density_table(cells: list[Cell]) -> str:
    rows = []
    for cell in cells:
        log = cell.log
        if not log:
            rows.append([cell.cell_id, cell.method, cell.control, f"{cell.compression:g}x"] + ["-"] * 5)
            continue
        target, achieved = float(log["target_density"]), float(log["density"])
        rows.append([cell.cell_id, cell.method, cell.control, f"{cell.compression:g}x", f"{100 * target:.4f}",
                     f"{100 * achieved:.4f}", f"{100 * float(log['min_layer_density']):.3f}", empty_filters(cell),
                     log.get("collapsed_layers") or "none"])
    return _table(rows, ["cell", "method", "control", "target", "target density (%)", "achieved density (%)",
                         "lowest layer density (%)", "empty filters", "collapsed layers"])


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


def write_report(exp: Experiment, summary: dict) -> None:
    cells = load_cells(exp, summary)
    measured = sum(c.metrics is not None for c in cells)
    seeds = sorted({c.seed for c in cells})
    first = cells[0].exp
    sections = [
        f"# {exp.name}: pruning at initialization, {first.model.arch} on {first.data.dataset}",
        f"Config `{exp.path}`; {measured}/{len(cells)} cells measured; mean ± std over seeds {seeds}. "
        f"Scope {first.prune.scope}; {first.prune.finetune.epochs} training epochs after pruning. Compression = "
        "prunable (conv/linear, classifier excluded) weights / kept ones. Test time: median CPU forward time of "
        "one batch at the largest configured batch size (masked weights are stored dense, so it does not fall "
        "with compression). MACs: fvcore, each conv/linear layer scaled by its weight density.",
    ]
    for quantity, (title, _, _, png, _) in QUANTITIES.items():
        sections += [f"## {title}", quantity_table(cells, quantity)]
        if exp.report.plots:
            quantity_plot(cells, quantity, paths.run_dir(exp) / png)
            sections.append(f"![{title}]({png})")
    compressions_done = [c for c in compressions(cells) if c > 1]
    chosen = exp.sweep.report_compression or (max(compressions_done) if compressions_done else None)
    chosen = round(chosen, 6) if chosen is not None else None
    if chosen is not None:
        sections += layer_sections(exp, cells, chosen)
    table, deltas = controls_table(cells)
    sections += ["## Controls: shuffled and re-initialized masks (top-1 %, difference to plain)", table]
    sections += ordering_section(cells, deltas)
    paper = GRASP_2020_VGG19_CIFAR10
    sections += ["## Published (GraSP paper, VGG19 on CIFAR-10, dense 94.23%)", _table(
        [[f"{c}x", paper["snip"][i], paper["grasp"][i]] for i, c in enumerate((10, 20, 50))],
        ["compression", "SNIP top-1 (%)", "GraSP top-1 (%)"])]
    sections += ["## Achieved vs target density, layer collapse",
                 f"Collapsed: a masked weight at or under {100 * first.prune.at_init.collapse_density:g}% density. "
                 "Empty filters: output channels with no weight left, over all masked layers.", density_table(cells)]
    if exp.sweep.discussion:
        sections += ["## Discussion", exp.sweep.discussion.strip()]
    write_text(paths.report(exp), "\n\n".join(sections) + "\n")
    console.print(f"[green]{paths.report(exp)}[/] written ({measured}/{len(cells)} cells)")


def experiment_sections(exp: Experiment, pruned, checkpoint: dict | None) -> list[str]:
    """The single-experiment report's at-init section: target vs achieved density, collapsed layers."""
    from .pruning.at_init import layer_densities, uses_at_init

    if exp.prune is None or not uses_at_init(exp.prune) or checkpoint is None or not checkpoint.get("log"):
        return []
    last = checkpoint["log"][-1]
    threshold = exp.prune.at_init.collapse_density
    rows = [[name, f"{mask.numel():,}", f"{int(mask.sum()):,}", f"{100 * density:.3f}",
             "collapsed" if density <= threshold else ""]
            for (name, mask), density in zip(checkpoint["masks"].items(), layer_densities(checkpoint["masks"]).values())]
    collapsed = last.get("collapsed_layers") or "none"
    return ["## Pruning at initialization",
            f"{exp.prune.method} ({exp.prune.scope} scope): achieved density {100 * last['density']:.4f}% vs target "
            f"{100 * last['target_density']:.4f}%; collapsed layers (density <= {100 * threshold:g}%): {collapsed}"
            + (f"; controls: {last['controls']}" if last.get("controls") else "") + ".",
            _table(rows, ["weight", "size", "kept", "density (%)", ""])]
