"""report: checkpoints + metrics.json -> results/<name>/report.md (+ PNG), also printed."""

from __future__ import annotations

from dataclasses import asdict

import torch.nn as nn
from rich.markdown import Markdown

from .. import paths
from .. import report as tables
from ..atomic import atomic_path, load_json, write_text
from ..config import Experiment
from ..data import DATASETS
from ..errors import UserError
from ..log import console
from ..metrics import layer_stats
from ..models import build_for
from . import checkpoints
from .test import stage_inputs


def family_sections(exp: Experiment, dense: nn.Module, pruned: nn.Module, checkpoint: dict | None) -> list[str]:
    """Markdown sections that only one pruning family has (each family adds its line here)."""
    sections: list[str] = []
    from ..structure_report import sections as structure_sections  # DeepHoyer; [] unless regularizer/threshold
    sections += structure_sections(exp, dense, pruned, checkpoint)
    from ..at_init_sweep import experiment_sections as at_init_sections  # [] unless pruning at init
    sections += at_init_sections(exp, pruned, checkpoint)
    from ..structured.report import sections as filter_sections  # [] unless granularity = "filter"
    sections += filter_sections(exp, dense, pruned, checkpoint)
    return sections


def _prune_description(exp: Experiment) -> str:
    cfg = exp.prune
    if cfg.granularity == "filter":
        from ..structured.report import describe

        return describe(exp)
    if cfg.quality is not None:
        target = f"quality {cfg.quality}"
    elif cfg.method == "threshold":  # no target and no ramp: every round applies the full threshold
        structure = cfg.granularity == "structure"
        kept = "filters / input channels with L2 norm" if structure else "weights with |w|"
        std_of = "the layer's group norms" if structure else "the layer's weights"
        bound = f"{cfg.threshold}" if cfg.threshold is not None else f"{cfg.std_ratio} x std of {std_of}"
        rule = f"{kept} > {bound}"
        reg = exp.train.regularizer
        trained = f" after training with {reg.kind} (decay {reg.decay:g})" if reg is not None else ""
        return (f"threshold{trained}: keep {rule}; {cfg.iterations} round(s), {cfg.finetune.epochs} fine-tune "
                f"epochs per round at lr {cfg.finetune.lr} ({cfg.finetune.optimizer}), zeros held.")
    elif cfg.target_density() is not None:
        target = f"density {cfg.target_density():.4f}"
    else:
        target = "per-layer sparsities"
    return (
        f"{cfg.method}, scope {cfg.scope}, {target}, start from {cfg.start}, {cfg.iterations} rounds "
        f"({cfg.schedule} schedule), {cfg.finetune.epochs} fine-tune epochs per round"
        f"{f' ({cfg.last_round_epochs} after the last)' if cfg.last_round_epochs is not None else ''} at lr {cfg.finetune.lr} "
        f"({cfg.finetune.optimizer})."
    )


def report(exp: Experiment, force: bool = False) -> None:
    if exp.sweep is not None:
        from ..sweep import report_sweep

        return report_sweep(exp)
    metrics_path = paths.metrics(exp)
    if not metrics_path.is_file():
        raise UserError(f"{metrics_path}: not found; run `pixi r test {exp.path}` first")
    measured = load_json(metrics_path)
    inputs = stage_inputs(exp)
    if measured.get("config_hashes") != {key: config_hash for key, (_, config_hash) in inputs.items()}:
        raise UserError(f"{metrics_path}: made from a different config; run `pixi r test {exp.path}`")
    arch = exp.model.arch
    shape = DATASETS[exp.data.dataset].image_shape
    loaded = {key: checkpoints.load_current(exp, path, h) for key, (path, h) in inputs.items()}
    models = {key: checkpoints.build_model(exp, ckpt, inputs[key][0]) for key, ckpt in loaded.items()}
    dense_model = models.get("dense") or build_for(exp)  # pruning at init: the untrained architecture
    pruned_model = models.get("pruned", dense_model)
    dense_layers = [asdict(layer) for layer in layer_stats(dense_model, shape)]
    pruned_layers = [asdict(layer) for layer in layer_stats(pruned_model, shape)]

    sections = [
        f"# {exp.name}: {arch} on {exp.data.dataset}",
        f"Config `{exp.path}` (seed {exp.seed}), measured on {measured['device']} with "
        f"{measured['torch_threads']} threads. MACs are fvcore counts for one image; effective MACs scale "
        "each conv/linear layer by its weight density; compression = conv/linear weights / nonzero ones; "
        "CPU times are the median forward time of one batch.",
        "## Summary",
        tables.summary_table({key: measured[key] for key in inputs}, arch),
    ]
    if exp.prune is not None:
        sections += ["## Pruning rounds", _prune_description(exp), tables.rounds_table(loaded["pruned"]["log"])]
    sections += [
        "## Parameters per layer",
        tables.parameters_table(dense_layers, pruned_layers, arch),
        "## Size per layer",
        tables.size_table(dense_layers, pruned_layers),
        "## FLOPs per layer",
        tables.flops_table(dense_layers, pruned_layers, arch),
    ]
    sections += family_sections(exp, dense_model, pruned_model, loaded.get("pruned"))
    if exp.report.plots:
        plot = paths.density_plot(exp)
        with atomic_path(plot) as tmp:
            tables.density_plot(dense_layers, pruned_layers, arch, tmp)
        sections.append(f"![per-layer density]({plot.name})")
    text = "\n\n".join(sections) + "\n"
    write_text(paths.report(exp), text)
    console.print(Markdown(text))
    console.print(f"[green]{paths.report(exp)}[/] written")
