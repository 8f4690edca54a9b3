"""report: checkpoints + metrics.json -> <results_root>/<name>/report.md (+ PNG); a short summary on the terminal."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from dataclasses import asdict, dataclass

from .. import checkpoints, family, paths, provenance
from ..atomic import atomic_path, load_json, write_json, write_text
from ..config import Experiment
from ..data.spec import spec_for
from ..errors import UserError
from ..family import FAMILIES, ReportInputs
from ..log import print_plain
from ..metrics import layer_stats
from ..replicates import measured as measured_seeds
from ..report import baseline, references, terminal
from ..report import kernels as kernel_speed
from ..report import experiment as tables
from ..report import replicates as over_seeds
from ..report.made_by import made_by_section
from ..report.markdown import plural
from ..report.summary import change_note, summary_table
from .sweep import report_sweep
from .test import freshness, load_inputs, stage_inputs


def seeds_text(exp: Experiment) -> str:
    return over_seeds.seed_list(exp.seeds or [exp.seed])


def header(exp: Experiment, measured: dict) -> list[str]:
    """The report's title and first paragraph: what ran, where it was measured, what the numbers
    mean. The one place the header is built; made_by_section says how each stage ran."""
    tested = measured.get("made_by", {}).get("test") or {}
    where = (provenance.describe_environment(tested) if tested else
             f"{measured['device']}, {plural(measured['torch_threads'], 'torch thread')}")
    return [
        f"# {exp.name}: {exp.model.arch} on {references.dataset_label(exp.data.dataset)}",
        f"Config `{exp.path}` ({seeds_text(exp)}), measured with {where}. MACs are fvcore counts for one image; "
        "effective MACs scale each conv/linear layer by the fraction of its weights that are nonzero and act on "
        "an input channel activation pruning left on; compression of all conv/linear "
        "weights = those weights / the nonzero ones; CPU times are the median forward time of one batch.",
    ]


def _measured(exp: Experiment) -> tuple[dict, dict]:
    """(metrics.json, the checkpoints it measured), refused when missing, damaged, or made from other
    checkpoints or [test] settings, with the command that remakes it."""
    metrics_path = paths.metrics(exp)
    measured = checkpoints.read_input(exp, metrics_path, load_json)
    loaded = load_inputs(exp)
    extra = family.extra_models(exp)
    loaded.update({key: model.artifact for key, model in extra.items()})
    if any(measured.get(key) != value for key, value in freshness(exp, loaded, extra).items()):
        raise UserError(f"{metrics_path}: made from other checkpoints or [test] settings; "
                        f"{provenance.run_hint(exp, 'test')}")
    return measured, loaded


def training_warnings(exp: Experiment, loaded: dict) -> list[str]:
    """A line for each training whose first epoch was no better than chance (the `warning` fit puts in
    that epoch's row): the dense training's log in dense.pt, the prune stage's pre-training and
    fine-tuning in prune_train_log.csv (written with pruned.pt)."""
    rows = list(loaded.get("dense", {}).get("log", []))
    if "pruned" in loaded and paths.prune_train_log(exp).is_file():
        with paths.prune_train_log(exp).open(newline="") as handle:
            rows += list(csv.DictReader(handle))
    return [f"warning: {row['warning']}" for row in rows if row.get("warning")]


@dataclass(frozen=True)
class Built:
    """One experiment's report: its header, the sections after it, and the terminal lines."""

    header: list[str]
    body: list[str]
    lines: list[str]
    compared: baseline.Compared  # the measured models (figures over seeds are taken from here)
    log: list[dict]  # the pruner's rounds
    measured: dict  # metrics.json


def build(exp: Experiment) -> Built:
    """The report of one (unreplicated) experiment from its checked artifacts; writes its plot."""
    measured, loaded = _measured(exp)
    shape = spec_for(exp).image_shape
    models = {key: checkpoints.build_model(exp, loaded[key], path) for key, (path, _) in stage_inputs(exp).items()}
    dense_model = models.get("dense") or checkpoints.build_for(exp)  # start = "init": the untrained architecture
    pruned_model = models.get("pruned", dense_model)
    dense_layers = [asdict(layer) for layer in layer_stats(dense_model, shape)]
    pruned_layers = [asdict(layer) for layer in layer_stats(pruned_model, shape)]
    compared = baseline.compare(exp, measured)
    published = references.applicable(exp)
    by_layer = references.per_layer(published)
    log = loaded["pruned"]["log"] if "pruned" in loaded else []

    sections = [
        "## Summary",
        summary_table(compared, published),
        " ".join(filter(None, [change_note(compared, published),
                               references.dataset_note(published, exp.data.dataset)])),
        *training_warnings(exp, loaded),
        *kernel_speed.section(measured),  # measured speedups with sparse kernels, when test measured them
    ]
    if exp.prune is not None:
        sections += ["## Pruning rounds", family.of(exp).describe(exp), tables.rounds_table(log)]
        if "pruned" in measured:
            sections.append(tables.compression_note(exp.prune, log, measured["pruned"]["compression"]))
    sections += [
        "## Parameters per layer",
        tables.parameters_table(dense_layers, pruned_layers, by_layer),
        "## Size per layer",
        tables.size_table(dense_layers, pruned_layers, by_layer),
        "## FLOPs per layer",
        tables.flops_table(dense_layers, pruned_layers, by_layer),
    ]
    made_from = ReportInputs(exp, dense_model, pruned_model, loaded.get("pruned"), measured)
    for pruning in FAMILIES.values():  # each family decides whether its sections apply
        sections += pruning.report_sections(made_from)
    if exp.report.plots:
        plot = paths.density_plot(exp)
        tables.density_plot(dense_layers, pruned_layers, exp.model.arch, exp.data.dataset, plot,
                            by_layer[0] if by_layer else None)
        sections.append(f"![per-layer density]({plot.name})")
    sections += made_by_section(measured.get("made_by", {}), provenance.invocation(exp).overrides)
    title = terminal.experiment_title(exp.name, exp.model.arch, exp.data.dataset)
    lines = terminal.experiment_lines(title, compared, log, measured["torch_threads"])
    return Built(header(exp, measured), sections, lines, compared, log, measured)


def write(path: Path, parts: list[str]) -> None:
    write_text(path, "\n\n".join(part for part in parts if part) + "\n")


def report(exp: Experiment, force: bool = False) -> None:
    """Markdown tables and figures of what pruning did -> report.md; a short summary on the terminal."""
    if exp.sweep is not None:
        return report_sweep(exp)
    if exp.seeds:
        return report_replicates(exp)
    built = build(exp)
    write(paths.report(exp), built.header + built.body)
    print_plain(built.lines + terminal.pointer(paths.report(exp)))


def report_replicates(exp: Experiment) -> None:
    """The figures of every seed that ran, their mean ± std beside the published ones, then the first
    seed's whole report -> report.md, replicates.json (the figures and each seed's metrics.json). Seeds
    whose test has not run are named, on the terminal and where the report counts the seeds."""
    runs, missing = measured_seeds(exp)
    if missing:
        print_plain([over_seeds.not_run_line(str(paths.replicates_dir(exp)), [run.seed for run in runs], missing,
                                             "reporting", provenance.command(exp, "reproduce"))])
    built = {run.seed: build(run) for run in runs}
    for run in runs:  # each seed's own report, beside its artifacts
        write(paths.report(run), built[run.seed].header + built[run.seed].body)
    first = runs[0]
    figures = over_seeds.figures({seed: (b.compared, b.log) for seed, b in built.items()})
    published = references.applicable(exp)
    write_json(paths.replicates_summary(exp), {
        "name": exp.name, "seeds": [run.seed for run in runs], "figures": figures,
        "metrics": {str(seed): b.measured for seed, b in built.items()}, **({"not_run": missing} if missing else {}),
    })
    if exp.report.plots and paths.density_plot(first).is_file():
        with atomic_path(paths.density_plot(exp)) as tmp:
            shutil.copyfile(paths.density_plot(first), tmp)
    each = over_seeds.seeds_table(figures)  # none for one seed: its row is the summary's
    parts = header(exp, built[first.seed].measured) + [
        f"## Over {over_seeds.over(figures, missing)}",
        over_seeds.summary_table(figures, published),
        over_seeds.note(published, exp.data.dataset, figures),
        *(["## Each seed", each] if each else []),
        f"## Seed {first.seed} in detail",
        f"Everything below is seed {first.seed}'s run (`{paths.run_dir(first)}`); "
        f"each seed's own report is `{paths.replicates_dir(exp)}/seed-<k>/report.md`.",
    ] + built[first.seed].body
    write(paths.report(exp), parts)
    title = terminal.experiment_title(exp.name, exp.model.arch, exp.data.dataset)
    print_plain(terminal.fit(over_seeds.terminal_lines(title, figures, missing)) + terminal.pointer(paths.report(exp)))
