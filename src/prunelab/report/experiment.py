"""The tables and the plot every experiment's report has besides the summary (summary.py): rounds,
parameters, size and FLOPs per layer, per-layer density; and the default description of how it
was pruned."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..config import PruneConfig
from . import plots
from .markdown import count, percent, plural, table, words
from .references import Reference, dataset_label

# What a compression counts. The summary always counts ALL_WEIGHTS (metrics.json); the rounds
# table counts what the pruner logs: the weights under its masks, or every parameter of the
# model it left (a pruner that removes structure logs "params").
PRUNABLE = "prunable weights"
ALL_WEIGHTS = "all conv/linear weights"
ALL_PARAMS = "all parameters"


def target_text(cfg: PruneConfig) -> str:
    """The [prune] target in words: 'density 0.0833' or 'per-layer sparsities'."""
    density = cfg.target_density()
    return f"density {density:.4f}" if density is not None else "per-layer sparsities"


def rounds_description(cfg: PruneConfig, target: str) -> str:
    """How rounds of element-wise pruning to `target` ran: method, scope, start, schedule, fine-tuning."""
    last = f" ({cfg.last_round_epochs} after the last)" if cfg.last_round_epochs is not None else ""
    return (
        f"{cfg.method}, scope {cfg.scope}, {target}, start from {cfg.start}, {plural(cfg.iterations, 'round')} "
        f"({cfg.schedule} schedule), {plural(cfg.finetune.epochs, 'fine-tune epoch')} per round{last} at lr "
        f"{cfg.finetune.lr} ({cfg.finetune.optimizer})."
    )


def parameters_table(dense: list[dict], pruned: list[dict], published: list[Reference] = ()) -> str:
    """Per layer: params, nonzero params, weights kept; each published per-layer density beside it
    (references for this architecture and way of pruning, references.per_layer)."""
    rows = []
    for before, after in zip(dense, pruned):
        rows.append([
            before["name"], before["kind"], "x".join(map(str, before["weight_shape"])),
            count(before["params"]), count(after["nonzero"]),
            percent(after["weight_nonzero"], before["weight_params"]),  # of the dense layer: filters may be removed
        ] + [f"{ref.kept[before['name']]:g}" if before["name"] in ref.kept else "-" for ref in published])
    total_w = sum(layer["weight_params"] for layer in dense)
    total_nz = sum(layer["weight_nonzero"] for layer in pruned)
    rows.append([
        "**total**", "", "", count(sum(layer["params"] for layer in dense)),
        count(sum(layer["nonzero"] for layer in pruned)), percent(total_nz, total_w),
    ] + [f"{ref.total_kept:g}" if ref.total_kept is not None else "-" for ref in published])
    headers = ["layer", "type", "weight shape", "params", "nonzero params", "weights kept (%)"]
    return table(rows, headers + [f"{ref.label}: kept (%)" for ref in published])


def size_table(dense: list[dict], pruned: list[dict], published: list[Reference] = ()) -> str:
    """Bytes per layer: dense fp32, and the pruned layer in the cheaper of dense fp32 and CSR storage
    (CSR only pays off below ~50% density; a physically pruned layer is simply a smaller dense one)."""
    rows = []
    dense_total = pruned_total = 0
    for before, after in zip(dense, pruned):
        stored = min(after["dense_bytes"], after["sparse_bytes"])
        kind = "CSR" if after["sparse_bytes"] < after["dense_bytes"] else "dense fp32"
        rows.append([before["name"], count(before["dense_bytes"]), count(after["sparse_bytes"]), count(stored), kind,
                     f"{before['dense_bytes'] / stored:.2f}x"])
        dense_total += before["dense_bytes"]
        pruned_total += stored
    rows.append(["**total**", count(dense_total), "", count(pruned_total), "", f"{dense_total / pruned_total:.2f}x"])
    text = table(rows, ["layer", "dense fp32 (bytes)", "pruned as CSR (bytes)", "pruned, stored (bytes)",
                        "storage", "size ratio"])
    notes = [f"{ref.label}: {ref.size_kb[0]:g} KB -> {ref.size_kb[1]:g} KB ({ref.size_kb[0] / ref.size_kb[1]:.2f}x; "
             "fp32 values of the kept parameters, no indices)." for ref in published if ref.size_kb]
    return "\n\n".join([text, *notes])


def flops_table(dense: list[dict], pruned: list[dict], published: list[Reference] = ()) -> str:
    rows = []
    for before, after in zip(dense, pruned):
        rows.append([before["name"], count(before["flops"]), count(after["effective_flops"]),
                     percent(after["effective_flops"], before["flops"])])
    total = sum(layer["flops"] for layer in dense)
    effective = sum(layer["effective_flops"] for layer in pruned)
    rows.append(["**total (conv + linear)**", count(total), count(effective), percent(effective, total)])
    text = table(rows, ["layer", "dense MACs", "effective MACs (pruned)", "kept (%)"])
    notes = [f"{ref.work} kept {ref.flops_kept:g}% of the FLOPs of this model ({dataset_label(ref.dataset)})."
             for ref in published if ref.flops_kept is not None]
    return "\n\n".join([text, *notes])


def rounds_counts(log: list[dict]) -> str:
    """What the pruner's logged density and compression count (PRUNABLE or ALL_PARAMS)."""
    return ALL_PARAMS if log and "params" in log[0] else PRUNABLE


def rounds_table(log: list[dict]) -> str:
    what = rounds_counts(log)
    rows = [[row["round"], f"{100 * row['density']:.2f}", f"{row['compression']:.2f}x",
             f"{row['accuracy_after_prune']:.2f}", f"{row['accuracy_after_finetune']:.2f}", row["finetune_epochs"]]
            for row in log]
    return table(rows, ["round", f"density of {what} (%)", f"compression of {what}", "top-1 after pruning (%)",
                         "top-1 after fine-tuning (%)", "fine-tune epochs"])


def compression_note(cfg: PruneConfig, log: list[dict], overall: float) -> str:
    """One sentence: which compression the rounds table gives and which the summary gives."""
    if not log:
        return ""
    what = rounds_counts(log)
    if what == ALL_PARAMS:
        counted = "every parameter of the model left (biases and normalization included) against the dense model's"
    else:
        weights = words(["conv/linear weights"] + (["their biases"] if cfg.prune_bias else []))
        counted = f"only the weights the pruner may zero ({weights}" + (
            ", the classifier's included)" if cfg.prune_classifier
            else ", not the classifier's: prune.prune_classifier = false)")
    return (f"Two compressions: the rounds table's *compression of {what}* counts {counted}, "
            f"{log[-1]['compression']:.2f}x after the last round; the summary's *compression of {ALL_WEIGHTS}* "
            f"is the dense model's conv/linear weights (all of them, those kept dense too) / the nonzero ones left, "
            f"{overall:.2f}x.")


def density_figure(dense: list[dict], pruned: list[dict], arch: str, dataset: str,
                   han: Optional[Reference] = None) -> plots.Figure:
    """Bars of weights kept per layer (%, relative to the dense layer, so removed filters count), each
    labelled with its value; Han et al.'s bars beside them when `han` applies, marked with its data set."""
    names = [layer["name"] for layer in pruned]
    ours = [100 * after["weight_nonzero"] / before["weight_params"] for before, after in zip(dense, pruned)]
    fig = plots.figure(figsize=(max(4.5, 1.2 * len(names) + 2), 3.6))
    ax = fig.subplots()
    width = 0.4 if han else 0.6
    positions = range(len(names))
    bars = ax.bar([p - (width / 2 if han else 0) for p in positions], ours, width,
                  label=f"this run, {dataset_label(dataset)}")
    ax.bar_label(bars, labels=[f"{value:.1f}%" for value in ours], fontsize=7, padding=2)
    if han:
        theirs = [han.kept.get(n) for n in names]
        paper = ax.bar([p + width / 2 for p in positions], [v or 0 for v in theirs], width, label=han.label)
        ax.bar_label(paper, labels=[f"{v:g}%" if v is not None else "-" for v in theirs], fontsize=7, padding=2)
    ax.set_xticks(list(positions), names, rotation=30 if len(names) > 6 else 0, fontsize=8)
    ax.set_ylabel("weights kept (%)")
    ax.set_ylim(0, 115)  # room for the labels above a full bar
    ax.set_title(f"{arch} on {dataset_label(dataset)}: weights kept per layer", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15 if len(names) <= 6 else -0.25), ncols=2)
    return fig


def density_plot(dense: list[dict], pruned: list[dict], arch: str, dataset: str, path: Path,
                 han: Optional[Reference] = None) -> None:
    plots.save(density_figure(dense, pruned, arch, dataset, han), path, dpi=120)
