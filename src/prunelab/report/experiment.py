"""The tables and the plot every experiment's report has: summary, rounds, parameters, size and
FLOPs per layer, per-layer density; and the default description of how it was pruned."""

from __future__ import annotations

from pathlib import Path

from ..config import PruneConfig
from . import plots
from .markdown import count, percent, table
from .references import HAN_2015, NEURAL_PRUNING_SEED


def target_text(cfg: PruneConfig) -> str:
    """The [prune] target in words: 'density 0.0833' or 'per-layer sparsities'."""
    density = cfg.target_density()
    return f"density {density:.4f}" if density is not None else "per-layer sparsities"


def rounds_description(cfg: PruneConfig, target: str) -> str:
    """How rounds of element-wise pruning to `target` ran: method, scope, start, schedule, fine-tuning."""
    last = f" ({cfg.last_round_epochs} after the last)" if cfg.last_round_epochs is not None else ""
    return (
        f"{cfg.method}, scope {cfg.scope}, {target}, start from {cfg.start}, {cfg.iterations} rounds "
        f"({cfg.schedule} schedule), {cfg.finetune.epochs} fine-tune epochs per round{last} at lr "
        f"{cfg.finetune.lr} ({cfg.finetune.optimizer})."
    )


def parameters_table(dense: list[dict], pruned: list[dict], arch: str) -> str:
    paper = HAN_2015.get(arch, {}).get("kept", {})
    rows = []
    for before, after in zip(dense, pruned):
        rows.append([
            before["name"], before["kind"], "x".join(map(str, before["weight_shape"])),
            count(before["params"]), count(after["nonzero"]),
            percent(after["weight_nonzero"], before["weight_params"]),  # of the dense layer: filters may be removed
            str(paper[before["name"]]) if before["name"] in paper else "-",
        ])
    total_w = sum(layer["weight_params"] for layer in dense)
    total_nz = sum(layer["weight_nonzero"] for layer in pruned)
    rows.append([
        "**total**", "", "", count(sum(layer["params"] for layer in dense)),
        count(sum(layer["nonzero"] for layer in pruned)), percent(total_nz, total_w),
        str(HAN_2015[arch]["total_kept"]) if arch in HAN_2015 else "-",
    ])
    return table(rows, ["layer", "type", "weight shape", "params", "nonzero params", "weights kept (%)",
                         "Han 2015 kept (%)"])


def size_table(dense: list[dict], pruned: list[dict]) -> str:
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
    return table(rows, ["layer", "dense fp32 (bytes)", "pruned as CSR (bytes)", "pruned, stored (bytes)",
                         "storage", "size ratio"])


def flops_table(dense: list[dict], pruned: list[dict], arch: str) -> str:
    rows = []
    for before, after in zip(dense, pruned):
        rows.append([before["name"], count(before["flops"]), count(after["effective_flops"]),
                     percent(after["effective_flops"], before["flops"])])
    total = sum(layer["flops"] for layer in dense)
    effective = sum(layer["effective_flops"] for layer in pruned)
    paper = str(HAN_2015[arch]["flops_kept"]) if arch in HAN_2015 else "-"
    rows.append(["**total (conv + linear)**", count(total), count(effective), percent(effective, total)])
    text = table(rows, ["layer", "dense MACs", "effective MACs (pruned)", "kept (%)"])
    return text + f"\n\nHan et al. 2015 kept {paper}% of the FLOPs of this model." if paper != "-" else text


def summary_table(measured: dict[str, dict], arch: str) -> str:
    first_latency = next(iter(measured.values()))["latency"]["cpu"]
    sizes = sorted(first_latency, key=int)
    rows = []
    for label, m in measured.items():
        cpu = m["latency"]["cpu"]
        rows.append([
            label, f"{m['accuracy']:.2f}", f"{m['loss']:.4f}", count(m["params"]), count(m["nonzero_params"]),
            f"{m['compression']:.2f}x", count(m["flops"]), count(m["effective_flops"]),
            f"{m['theoretical_speedup']:.2f}x",
            *[f"{cpu[size]['ms_per_batch']:.3f}" for size in sizes], count(cpu[sizes[-1]]["images_per_s"]),
        ])
    blanks = ["-"] * (len(sizes) + 1)
    if arch in HAN_2015:
        paper = HAN_2015[arch]
        rows.append(["Han 2015, dense (MNIST)", f"{100 - paper['error_dense']:.2f}", "-", paper["params_dense"],
                     paper["params_dense"], "1x", "-", "-", "-", *blanks])
        rows.append(["Han 2015, pruned (MNIST)", f"{100 - paper['error_pruned']:.2f}", "-", paper["params_dense"],
                     paper["params_pruned"], f"{paper['compression']}x", "-", "-",
                     f"{100 / paper['flops_kept']:.1f}x", *blanks])
    if arch in NEURAL_PRUNING_SEED:
        seed = NEURAL_PRUNING_SEED[arch]
        rows.append(["neural-pruning seed, pruned (MNIST)", f"{seed['accuracy_pruned']:.2f}", "-", "-", "-",
                     f"{seed['compression']:.2f}x", "-", "-", "-", *blanks])
    return table(rows, ["model", "top-1 (%)", "loss", "params", "nonzero params", "compression",
                         "MACs", "effective MACs", "theoretical speedup",
                         *[f"CPU ms/batch ({size})" for size in sizes], f"images/s ({sizes[-1]})"])


def rounds_table(log: list[dict]) -> str:
    rows = [[row["round"], f"{100 * row['density']:.2f}", f"{row['compression']:.2f}x",
             f"{row['accuracy_after_prune']:.2f}", f"{row['accuracy_after_finetune']:.2f}", row["finetune_epochs"]]
            for row in log]
    return table(rows, ["round", "density (%)", "compression", "top-1 after pruning (%)",
                         "top-1 after fine-tuning (%)", "fine-tune epochs"])


def density_plot(dense: list[dict], pruned: list[dict], arch: str, path: Path) -> None:
    """Bars of weights kept per layer, relative to the dense layer (so removed filters count)."""
    names = [layer["name"] for layer in pruned]
    ours = [100 * after["weight_nonzero"] / before["weight_params"] for before, after in zip(dense, pruned)]
    paper = HAN_2015.get(arch, {}).get("kept", {})
    fig = plots.figure(figsize=(max(4, 1.1 * len(names) + 2), 3.2))
    ax = fig.subplots()
    width = 0.4 if paper else 0.6
    positions = range(len(names))
    ax.bar([p - (width / 2 if paper else 0) for p in positions], ours, width, label="ours")
    if paper:
        ax.bar([p + width / 2 for p in positions], [paper.get(n, 0) for n in names], width, label="Han et al. 2015")
    ax.set_xticks(list(positions), names)
    ax.set_ylabel("weights kept (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{arch}: per-layer density")
    ax.legend()
    plots.save(fig, path, dpi=120)
