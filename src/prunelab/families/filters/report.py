"""Report sections for structured filter pruning: channels per layer, and speedup measured
beside the theoretical one (dense MACs / pruned MACs), from results/<name>/metrics.json."""

from __future__ import annotations

import torch.nn as nn

from ...config import Experiment
from ...data.spec import spec_for
from ...family import ReportInputs
from ...metrics import layer_stats
from ...report.markdown import count, plural, table, words
from ...report.references import dataset_label
from .rebuild import architecture_of
from .settings import GRANULARITY

# Li et al. 2017, "Pruning Filters for Efficient ConvNets", CIFAR-10 (docs/references.md).
LI_2017_DATASET = "cifar10"
# Top-1 error in %; FLOPs and parameters as printed in the paper; reductions in %.
# VGG-16-A removes 50% of the filters of conv1 and conv8-13; the B ResNets skip sensitive layers.
LI_2017 = {
    "vgg16_bn": {"model": "VGG-16 -> VGG-16-A", "error_dense": 6.75, "error_pruned": 6.60,
                 "flops_dense": 3.13e8, "flops_pruned": 2.06e8, "flops_reduction": 34.2,
                 "params_dense": 1.5e7, "params_pruned": 5.4e6, "params_reduction": 64.0},
    "resnet56": {"model": "ResNet-56 -> ResNet-56-B", "error_dense": 6.96, "error_pruned": 6.94,
                 "flops_dense": 1.25e8, "flops_pruned": None, "flops_reduction": 27.6,
                 "params_dense": 8.5e5, "params_pruned": None, "params_reduction": 13.7},
    "resnet110": {"model": "ResNet-110 -> ResNet-110-B", "error_dense": 6.47, "error_pruned": 6.70,
                  "flops_dense": 2.53e8, "flops_pruned": None, "flops_reduction": 38.6,
                  "params_dense": 1.72e6, "params_pruned": None, "params_reduction": 32.4},
}


def describe(exp: Experiment) -> str:
    filters, finetune = exp.prune.filters, exp.prune.finetune
    if filters.global_ranking:
        target = f"{100 * filters.ratio:g}% of the conv channels, ranked globally"
    elif filters.ratio is not None:
        target = f"{100 * filters.ratio:g}% of every conv layer's filters"
    else:
        target = "per-layer fractions"
    if filters.layer_ratios:
        named = ", ".join(f"{name} {100 * value:g}%" for name, value in filters.layer_ratios.items())
        target += f" ({named})" if filters.ratio is None else f", except {named}"
    extras = [f"warm-up {plural(finetune.warmup_epochs, 'epoch')}"] if finetune.warmup_epochs else []
    extras += [f"mixup alpha {finetune.mixup_alpha:g}"] if finetune.mixup_alpha else []
    if finetune.distill_alpha:
        extras.append(f"distillation from the dense model (alpha {finetune.distill_alpha:g}, "
                      f"T {finetune.distill_temperature:g})")
    return (
        f"Filters ranked by {filters.criterion} and physically removed with Torch-Pruning's DepGraph: "
        f"{target}, in {plural(filters.steps, 'step')}; each step is followed by "
        f"{plural(finetune.epochs, 'epoch')} of retraining at lr {finetune.lr} ({finetune.optimizer}, "
        f"{finetune.schedule} schedule{', ' + ', '.join(extras) if extras else ''}). "
        f"Never removed: {words([*filters.ignored_layers, 'the classifier'])}."
    )


def channels_table(dense: nn.Module, pruned: nn.Module, input_shape: tuple[int, ...]) -> str:
    """Per conv/linear layer, matched by module name (DepGraph keeps the names)."""
    before_arch, after_arch = architecture_of(dense)["layers"], architecture_of(pruned)["layers"]
    before = {layer.name: layer for layer in layer_stats(dense, input_shape)}
    after = {layer.name: layer for layer in layer_stats(pruned, input_shape)}
    rows = []
    for name, b in before.items():
        a = after[name]
        out_before, out_after = before_arch[name]["out"], after_arch[name]["out"]
        rows.append([
            name, b.kind, f"{before_arch[name]['in']} -> {after_arch[name]['in']}", f"{out_before} -> {out_after}",
            f"{100 * out_after / out_before:.1f}", count(b.params), count(a.params), count(b.flops), count(a.flops),
        ])
    def total(stats: dict, key: str) -> str:
        return count(sum(getattr(layer, key) for layer in stats.values()))

    rows.append(["**total (conv + linear)**", "", "", "", "", total(before, "params"), total(after, "params"),
                 total(before, "flops"), total(after, "flops")])
    return table(rows, ["layer", "type", "in channels", "out channels", "outputs kept (%)", "params dense",
                         "params pruned", "MACs dense", "MACs pruned"])


def speedup_table(measured: dict) -> str:
    """Measured speedup (dense / pruned median batch time) beside the theoretical one (MAC ratio)."""
    dense, pruned = measured["dense"], measured["pruned"]
    theoretical = dense["flops"] / pruned["flops"]
    rows = []
    for device, timings in dense["latency"].items():
        for size in sorted(timings, key=int):
            dense_ms = timings[size]["ms_per_batch"]
            pruned_ms = pruned["latency"][device][size]["ms_per_batch"]
            speedup = dense_ms / pruned_ms
            rows.append([device, size, f"{dense_ms:.3f}", f"{pruned_ms:.3f}", f"{theoretical:.2f}x",
                         f"{speedup:.2f}x", f"{speedup / theoretical:.2f}"])
    return table(rows, ["device", "batch", "dense ms/batch", "pruned ms/batch", "theoretical speedup (MACs)",
                         "measured speedup", "measured / theoretical"])


def counts_table(measured: dict, arch: str, dataset: str) -> str:
    """Params and MACs removed and top-1, ours and (same architecture only) Li et al.'s, with data sets."""
    dense, pruned = measured["dense"], measured["pruned"]
    rows = [[
        f"this run, {dataset_label(dataset)}", count(dense["params"]), count(pruned["params"]),
        f"{100 * (1 - pruned['params'] / dense['params']):.1f}",
        count(dense["flops"]), count(pruned["flops"]), f"{100 * (1 - pruned['flops'] / dense['flops']):.1f}",
        f"{dense['accuracy']:.2f}", f"{pruned['accuracy']:.2f}",
    ]]
    paper = LI_2017.get(arch)
    if paper is not None:
        def number(key: str) -> str:
            return "-" if paper[key] is None else f"{paper[key]:.3g}"

        rows.append([
            f"Li et al. 2017, {paper['model']}, {dataset_label(LI_2017_DATASET)}", number("params_dense"),
            number("params_pruned"),
            f"{paper['params_reduction']:.1f}", number("flops_dense"), number("flops_pruned"),
            f"{paper['flops_reduction']:.1f}", f"{100 - paper['error_dense']:.2f}",
            f"{100 - paper['error_pruned']:.2f}",
        ])
    text = table(rows, ["model", "params dense", "params pruned", "params removed (%)", "MACs dense", "MACs pruned",
                        "MACs removed (%)", "top-1 dense (%)", "top-1 pruned (%)"])
    if paper is not None and dataset != LI_2017_DATASET:
        text += (f"\n\nLi et al.'s numbers are on {dataset_label(LI_2017_DATASET)}, not on this run's "
                 f"{dataset_label(dataset)}: compare the reductions, not the accuracy.")
    return text


def sections(inputs: ReportInputs) -> list[str]:
    """The family's markdown sections ([] unless granularity = "filter")."""
    exp, dense_model, pruned_model, measured = inputs.exp, inputs.dense, inputs.pruned, inputs.measured
    if exp.prune is None or exp.prune.granularity != GRANULARITY or inputs.checkpoint is None:
        return []
    shape = spec_for(exp).image_shape
    out = [
        "## Filter pruning",
        describe(exp),
        counts_table(measured, exp.model.arch, exp.data.dataset),
        "## Channels per layer",
        channels_table(dense_model, pruned_model, shape),
    ]
    if "dense" in measured and "pruned" in measured:
        out += [
            "## Speedup: theoretical vs measured",
            "Theoretical speedup = dense MACs / pruned MACs (fvcore, whole model); measured speedup = dense / "
            f"pruned median forward time of one batch "
            f"({plural(exp.test.latency_repeats, 'timed batch', 'timed batches')} after "
            f"{plural(exp.test.latency_warmup, 'warm-up batch', 'warm-up batches')}, "
            f"{plural(measured['torch_threads'], 'torch thread')}).",
            speedup_table(measured),
        ]
    return out
