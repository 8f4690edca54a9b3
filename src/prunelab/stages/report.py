"""report: checkpoints + metrics.json -> results/<name>/report.md (+ PNG), also printed."""

from __future__ import annotations

from dataclasses import asdict

from rich.markdown import Markdown

from .. import checkpoints, family, paths
from ..atomic import load_json, write_text
from ..config import Experiment
from ..data.catalog import DATASETS
from ..errors import UserError
from ..family import FAMILIES, ReportInputs
from ..log import console
from ..metrics import layer_stats
from ..report import experiment as tables
from .sweep import report_sweep
from .test import stage_inputs


def report(exp: Experiment, force: bool = False) -> None:
    if exp.sweep is not None:
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
    dense_model = models.get("dense") or checkpoints.build_for(exp)  # start = "init": the untrained architecture
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
        sections += ["## Pruning rounds", family.of(exp).describe(exp), tables.rounds_table(loaded["pruned"]["log"])]
    sections += [
        "## Parameters per layer",
        tables.parameters_table(dense_layers, pruned_layers, arch),
        "## Size per layer",
        tables.size_table(dense_layers, pruned_layers),
        "## FLOPs per layer",
        tables.flops_table(dense_layers, pruned_layers, arch),
    ]
    made_from = ReportInputs(exp, dense_model, pruned_model, loaded.get("pruned"), measured)
    for pruning in FAMILIES.values():  # each family decides whether its sections apply
        sections += pruning.report_sections(made_from)
    if exp.report.plots:
        plot = paths.density_plot(exp)
        tables.density_plot(dense_layers, pruned_layers, arch, plot)
        sections.append(f"![per-layer density]({plot.name})")
    text = "\n\n".join(sections) + "\n"
    write_text(paths.report(exp), text)
    console.print(Markdown(text))
    console.print(f"[green]{paths.report(exp)}[/] written")
