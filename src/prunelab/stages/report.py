"""report: checkpoints + metrics.json -> <results_root>/<name>/report.md (+ PNG); a short summary on the terminal."""

from __future__ import annotations

from dataclasses import asdict

from .. import checkpoints, family, paths, provenance
from ..atomic import load_json, write_text
from ..config import Experiment
from ..data.catalog import DATASETS
from ..errors import UserError
from ..family import FAMILIES, ReportInputs
from ..log import print_plain
from ..metrics import layer_stats
from ..report import baseline, references, terminal
from ..report import experiment as tables
from ..report.made_by import made_by_section
from ..report.markdown import plural
from ..report.summary import change_note, summary_table
from .sweep import report_sweep
from .test import freshness, load_inputs, stage_inputs


def header(exp: Experiment, measured: dict) -> list[str]:
    """The report's title and first paragraph: what ran, where it was measured, what the numbers
    mean. The one place the header is built; made_by_section says how each stage ran."""
    tested = measured.get("made_by", {}).get("test") or {}
    where = (provenance.describe_environment(tested) if tested else
             f"{measured['device']}, {plural(measured['torch_threads'], 'torch thread')}")
    return [
        f"# {exp.name}: {exp.model.arch} on {references.dataset_label(exp.data.dataset)}",
        f"Config `{exp.path}` (seed {exp.seed}), measured with {where}. MACs are fvcore counts for one image; "
        "effective MACs scale each conv/linear layer by its weight density; compression of all conv/linear "
        "weights = those weights / the nonzero ones; CPU times are the median forward time of one batch.",
    ]


def _measured(exp: Experiment) -> tuple[dict, dict]:
    """(metrics.json, the checkpoints it measured), refused when missing, damaged, or made from other
    checkpoints or [test] settings, with the command that remakes it."""
    metrics_path = paths.metrics(exp)
    measured = checkpoints.read_input(exp, metrics_path, load_json)
    loaded = load_inputs(exp)
    if any(measured.get(key) != value for key, value in freshness(exp, loaded).items()):
        raise UserError(f"{metrics_path}: made from other checkpoints or [test] settings; "
                        f"{provenance.run_hint(exp, 'test')}")
    return measured, loaded


def report(exp: Experiment, force: bool = False) -> None:
    """Markdown tables and figures of what pruning did -> report.md; a short summary on the terminal."""
    if exp.sweep is not None:
        return report_sweep(exp)
    measured, loaded = _measured(exp)
    shape = DATASETS[exp.data.dataset].image_shape
    models = {key: checkpoints.build_model(exp, loaded[key], path) for key, (path, _) in stage_inputs(exp).items()}
    dense_model = models.get("dense") or checkpoints.build_for(exp)  # start = "init": the untrained architecture
    pruned_model = models.get("pruned", dense_model)
    dense_layers = [asdict(layer) for layer in layer_stats(dense_model, shape)]
    pruned_layers = [asdict(layer) for layer in layer_stats(pruned_model, shape)]
    compared = baseline.compare(exp, measured)
    published = references.applicable(exp)
    han = references.per_layer(published)
    log = loaded["pruned"]["log"] if "pruned" in loaded else []

    sections = header(exp, measured) + [
        "## Summary",
        summary_table(compared, published),
        " ".join(filter(None, [change_note(compared, published),
                               references.dataset_note(published, exp.data.dataset)])),
    ]
    if exp.prune is not None:
        sections += ["## Pruning rounds", family.of(exp).describe(exp), tables.rounds_table(log)]
        if "pruned" in measured:
            sections.append(tables.compression_note(exp.prune, log, measured["pruned"]["compression"]))
    sections += [
        "## Parameters per layer",
        tables.parameters_table(dense_layers, pruned_layers, han),
        "## Size per layer",
        tables.size_table(dense_layers, pruned_layers),
        "## FLOPs per layer",
        tables.flops_table(dense_layers, pruned_layers, han),
    ]
    made_from = ReportInputs(exp, dense_model, pruned_model, loaded.get("pruned"), measured)
    for pruning in FAMILIES.values():  # each family decides whether its sections apply
        sections += pruning.report_sections(made_from)
    if exp.report.plots:
        plot = paths.density_plot(exp)
        tables.density_plot(dense_layers, pruned_layers, exp.model.arch, exp.data.dataset, plot, han)
        sections.append(f"![per-layer density]({plot.name})")
    sections += made_by_section(measured.get("made_by", {}), provenance.invocation(exp).overrides)
    text = "\n\n".join(section for section in sections if section) + "\n"
    write_text(paths.report(exp), text)
    title = terminal.experiment_title(exp.name, exp.model.arch, exp.data.dataset)
    lines = terminal.experiment_lines(title, compared, log, measured["torch_threads"])
    print_plain(lines + terminal.pointer(paths.report(exp)))
