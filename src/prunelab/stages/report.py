"""report: checkpoints + metrics.json -> results/<name>/report.md (+ PNG), also printed."""

from __future__ import annotations

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
from dataclasses import asdict


def _layers(exp: Experiment, path, config_hash: str) -> list[dict]:
    model = build_for(exp)
    checkpoints.load_into(model, checkpoints.load_current(exp, path, config_hash), path)
    return [asdict(layer) for layer in layer_stats(model, DATASETS[exp.data.dataset].image_shape)]


def report(exp: Experiment, force: bool = False) -> None:
    metrics_path = paths.metrics(exp)
    if not metrics_path.is_file():
        raise UserError(f"{metrics_path}: not found; run `pixi r test {exp.path}` first")
    measured = load_json(metrics_path)
    expected = {"dense": exp.stage_hash("train")}
    if exp.prune is not None:
        expected["pruned"] = exp.stage_hash("prune")
    if measured.get("config_hashes") != expected:
        raise UserError(f"{metrics_path}: made from a different config; run `pixi r test {exp.path}`")
    arch = exp.model.arch
    dense_layers = _layers(exp, paths.dense(exp), expected["dense"])
    pruned_layers = _layers(exp, paths.pruned(exp), expected["pruned"]) if exp.prune else dense_layers
    pruned_checkpoint = checkpoints.load_current(exp, paths.pruned(exp), expected["pruned"]) if exp.prune else None

    sections = [
        f"# {exp.name}: {arch} on {exp.data.dataset}",
        f"Config `{exp.path}` (seed {exp.seed}, prune hash `{expected.get('pruned', '-')}`), "
        f"measured on {measured['device']} with {measured['torch_threads']} threads. "
        "MACs are fvcore counts for one image; effective MACs scale each conv/linear layer by its weight "
        "density; compression = conv/linear weights / nonzero ones.",
        "## Summary",
        tables.summary_table({key: measured[key] for key in expected}, arch),
    ]
    if exp.prune is not None:
        cfg = exp.prune
        target = (f"quality {cfg.quality}" if cfg.quality is not None
                  else f"density {cfg.target_density():.4f}" if cfg.target_density() is not None else "per layer")
        sections += [
            "## Pruning rounds",
            f"{cfg.method}, scope {cfg.scope}, {target}, {cfg.iterations} rounds ({cfg.schedule} schedule), "
            f"{cfg.finetune.epochs} fine-tune epochs per round at lr {cfg.finetune.lr} ({cfg.finetune.optimizer}).",
            tables.rounds_table(pruned_checkpoint["log"]),
        ]
    sections += [
        "## Parameters per layer",
        tables.parameters_table(dense_layers, pruned_layers, arch),
        "## Size per layer",
        tables.size_table(dense_layers, pruned_layers),
        "## FLOPs per layer",
        tables.flops_table(dense_layers, pruned_layers, arch),
    ]
    if exp.report.plots:
        plot = paths.density_plot(exp)
        with atomic_path(plot) as tmp:
            tables.density_plot(pruned_layers, arch, tmp)
        sections.append(f"![per-layer density]({plot.name})")
    text = "\n\n".join(sections) + "\n"
    write_text(paths.report(exp), text)
    console.print(Markdown(text))
    console.print(f"[green]{paths.report(exp)}[/] written")
