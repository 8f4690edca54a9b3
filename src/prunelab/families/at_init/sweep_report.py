"""The pruning-at-initialization sweep report (COS598D): methods x compressions, mean ± std over seeds.

results/<name>/report.md holds the assignment's three tables (top-1 accuracy, test time,
effective FLOPs; rows = compression, columns = method), the same as PNG curves, the
per-layer sparsity / FLOPs tables and weight histograms at one compression, the Frankle
et al. 2021 controls, achieved vs target density and layer collapse of every cell, and
whether the published ordering holds (the tables are in sweep_cells.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch.nn as nn

from ... import checkpoints, paths, provenance
from ...atomic import write_text
from ...config import Experiment
from ...data.spec import spec_for
from ...log import print_plain
from ...metrics import layer_stats
from ...report import plots
from ...report.made_by import made_by_section
from ...report.markdown import plural, table, words
from ...report.references import dataset_label
from ...report.terminal import INDENT, fit, pointer
from .published import synflow_section
from .sweep_collapse import collapse_section
from .sweep_cells import (QUANTITIES, Cell, compressions, controls_table, density_table, grid_values, load_cells,
                          methods, ordering_section, quantity_table, mean_std)

# GraSP paper (Wang et al. 2020), VGG19 on CIFAR-10, top-1 (%) at compression 10x / 20x / 50x
# (90 / 95 / 98% sparsity); dense 94.23% (docs/references.md). Shown only beside a sweep of the
# same architecture (GRASP_2020_ARCHS).
GRASP_2020_VGG19_CIFAR10 = {"dense": 94.23, "snip": (93.63, 93.43, 92.05), "grasp": (93.30, 93.04, 92.19)}
GRASP_2020_ARCHS = ("vgg19", "vgg19_bn")
GRASP_2020_DATASET = "cifar10"


def quantity_plot(cells: list[Cell], quantity: str, path: Path) -> None:
    title, _, _, _, label = QUANTITIES[quantity]
    values = grid_values(cells, quantity)
    fig = plots.figure(figsize=(6, 4))
    ax = fig.subplots()
    for method in methods(cells):
        points = [(c, mean_std(values[(c, method)])) for c in compressions(cells) if (c, method) in values]
        ax.errorbar([c for c, _ in points], [s[0] for _, s in points], yerr=[s[1] for _, s in points],
                    marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xlabel("compression (prunable weights / kept)")
    ax.set_ylabel(label)
    ax.set_title(title)
    ax.legend(fontsize=8)
    plots.save(fig, path, dpi=110)


def _cell_model(cell: Cell):
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
    shape = spec_for(exp).image_shape
    models = {method: _cell_model(cell) for method, cell in chosen.items()}
    stats = {method: layer_stats(model, shape) for method, model in models.items()}
    first = next(iter(stats.values()))
    sparsity = [[layer.name, "x".join(map(str, layer.weight_shape))]
                + [f"{100 * (1 - stats[m][i].weight_density):.2f}" for m in stats] for i, layer in enumerate(first)]
    flops = [[layer.name, f"{layer.flops:,}"] + [f"{stats[m][i].effective_flops:,.0f}" for m in stats]
             for i, layer in enumerate(first)]
    positive = [[layer.name] + [_positive_share(models[m], layer.name) for m in stats] for layer in first]
    seeds = ", ".join(f"{m}: seed {c.seed}" for m, c in chosen.items())
    classifier = "the classifier is pruned too" if exp.prune.prune_classifier else "the classifier is not pruned"
    sections = [f"## Per layer at {compression:g}x", f"One run per method ({seeds}); {classifier}.",
                "### Sparsity per layer (%)", table(sparsity, ["layer", "weight shape"] + list(stats)),
                "### Effective MACs per layer", table(flops, ["layer", "dense MACs"] + list(stats)),
                "### Positive share of the kept weights per layer (%, after training)",
                "A random mask keeps about 50% positive weights; a score that prefers one sign shows here.",
                table(positive, ["layer"] + list(stats)),
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
    layers = [(n, m.weight.detach().flatten()) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    cols = min(4, len(layers))
    rows = math.ceil(len(layers) / cols)
    fig = plots.figure(figsize=(3 * cols, 2.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (name, weight) in zip(axes.flat, layers):
        kept = weight[weight != 0].cpu().numpy()
        if kept.size:
            ax.hist(kept, bins=50)
        ax.set_title(f"{name} ({kept.size:,} kept)", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.suptitle(f"{method} at {compression:g}x: nonzero weights per layer")
    plots.save(fig, path, dpi=90)


def published_section(arch: str, dataset: str) -> list[str]:
    """The GraSP paper's VGG19 numbers, only beside a VGG19 sweep, with their data set."""
    if arch not in GRASP_2020_ARCHS:
        return []
    paper = GRASP_2020_VGG19_CIFAR10
    on = dataset_label(GRASP_2020_DATASET)
    note = "" if dataset == GRASP_2020_DATASET else \
        f" The published numbers are on {on}, not on this sweep's {dataset_label(dataset)}."
    return [f"## Published (GraSP paper, VGG19 on {on}, dense {paper['dense']}%)", table(
        [[f"{c}x", paper["snip"][i], paper["grasp"][i]] for i, c in enumerate((10, 20, 50))],
        ["compression", f"SNIP top-1 (%), {on}", f"GraSP top-1 (%), {on}"]) + note]


def terminal_lines(exp: Experiment, cells: list[Cell]) -> list[str]:
    """A few lines of at most 80 columns: cells measured, and top-1 per method at the highest compression."""
    first = cells[0].exp
    measured = sum(c.metrics is not None for c in cells)
    lines = [f"{exp.name}: pruning at initialization, {first.model.arch} on {dataset_label(first.data.dataset)}",
             f"{INDENT}{measured}/{plural(len(cells), 'cell')} measured"]
    values = grid_values(cells, "accuracy")
    done = sorted(c for c, _ in values if c > 1)
    if done:
        top = done[-1]
        means = [f"{m} {mean_std(values[(top, m)])[0]:.2f}" for m in methods(cells) if (top, m) in values]
        lines.append(f"{INDENT}top-1 (%) at {top:g}x, mean over seeds: " + ", ".join(means))
    return fit(lines)


def write_report(exp: Experiment, summary: dict, experiments: dict[str, Experiment]) -> None:
    """report.md and the PNGs of the sweep, from sweep.json and the cells' checkpoints."""
    cells = load_cells(exp, summary, experiments)
    measured = sum(c.metrics is not None for c in cells)
    seeds = sorted({c.seed for c in cells})
    first = cells[0].exp
    over_seeds = f"one seed ({seeds[0]})." if len(seeds) == 1 else f"mean ± std over seeds {words(map(str, seeds))}."
    sections = [
        f"# {exp.name}: pruning at initialization, {first.model.arch} on {dataset_label(first.data.dataset)}",
        f"Config `{exp.path}`; {measured}/{plural(len(cells), 'cell')} measured; {over_seeds} "
        f"Scope {first.prune.scope}; {plural(first.prune.finetune.epochs, 'training epoch')} after pruning. "
        f"Compression = prunable (conv/linear, classifier {'included' if first.prune.prune_classifier else 'excluded'}) "
        "weights / kept ones. Test time: median CPU forward time of "
        "one batch at the largest configured batch size (masked weights are stored dense, so it does not fall "
        "with compression). MACs: fvcore, each conv/linear layer scaled by its weight density.",
    ]
    for quantity, (title, _, _, png, _) in QUANTITIES.items():
        sections += [f"## {title}", quantity_table(cells, quantity)]
        if exp.report.plots:
            quantity_plot(cells, quantity, paths.run_dir(exp) / png)
            sections.append(f"![{title}]({png})")
        if quantity == "accuracy":
            sections += collapse_section(cells, methods(cells))
    compressions_done = [c for c in compressions(cells) if c > 1]
    chosen = exp.sweep.report_compression or (max(compressions_done) if compressions_done else None)
    chosen = round(chosen, 6) if chosen is not None else None
    if chosen is not None:
        sections += layer_sections(exp, cells, chosen)
    controls, deltas = controls_table(cells)
    if deltas:  # a grid without shuffle / reinit cells gets no empty table
        sections += ["## Controls: shuffled and re-initialized masks (top-1 %, difference to plain)", controls]
    sections += ordering_section(cells, deltas)
    sections += published_section(first.model.arch, first.data.dataset)
    sections += synflow_section(first.model.arch, first.data.dataset)
    sections += ["## Achieved vs target density, layer collapse",
                 f"Collapsed: a masked weight at or under {100 * first.prune.at_init.collapse_density:g}% density. "
                 "Cut: no kept weight on an input-output path (the layer-collapse section). "
                 "Empty filters: output channels with no weight left, over all masked layers. Kept weights with "
                 "score 0: the budget needed weights whose score was exactly 0 (filled in torch.topk's order; "
                 "'not logged' for cells pruned before prunelab counted them).", density_table(cells)]
    if exp.sweep.discussion:
        sections += ["## Discussion", exp.sweep.discussion.strip()]
    sections += made_by_section(summary.get("made_by", {}), provenance.invocation(exp).overrides)
    write_text(paths.report(exp), "\n\n".join(sections) + "\n")
    print_plain(terminal_lines(exp, cells) + pointer(paths.report(exp), "full report, with the tables"))
