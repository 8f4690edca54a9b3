"""The DeepHoyer frontier's report: the cells table, Hoyer-Square against each other regularizer and
Han's magnitude pruning at equal accuracy (frontier.compare), the verdict, the accuracy-vs-nonzero
curve (frontier.png) and the terminal lines."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import FuncFormatter

from ... import paths, provenance
from ...atomic import load_torch, write_text
from ...config import Experiment
from ...log import print_plain
from ...report import plots
from ...report.made_by import made_by_section
from ...report.markdown import plural, table
from ...report.references import dataset_label
from ...report.terminal import INDENT, fit, pointer
from .frontier import (ACCURACY_TOLERANCE, HAN_MAGNITUDE, HOYER_SQUARE, PRETTY, Point, cell_points, compare,
                       magnitude_reference, verdict)
from .settings import METHOD

FRONTIER_PNG = "frontier.png"


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)




def cells_table(points: list[Point], reference: Point | None) -> str:
    def row(p: Point, label: str) -> list[str]:
        return [label, _fmt(p.decay, "g"), _fmt(p.trained_accuracy), _fmt(p.accuracy), _fmt(p.nonzero, ".3f"),
                f"{p.compression:.1f}x", f"{p.speedup:.1f}x", f"`{p.cell}`"]

    rows = [row(p, PRETTY.get(p.method, p.method)) for p in points]
    if reference is not None:
        rows.append(row(reference, "Han magnitude (reference)"))
    return table(rows, ["method", "decay", "top-1 after regularized training (%)", "top-1 pruned + fine-tuned (%)",
                        "nonzero weights (%)", "compression of all conv/linear weights", "theoretical speedup",
                        "cell"])


def comparison_table(rows: list[dict]) -> str:
    body = []
    for row in rows:
        ref, best = row["reference"], row["best"]
        body.append([ref.label, f"{ref.accuracy:.2f}", f"{ref.nonzero:.3f}",
                     best.label if best else "never reaches this accuracy", _fmt(best.accuracy if best else None),
                     _fmt(best.nonzero if best else None, ".3f"),
                     f"{ref.nonzero / best.nonzero:.2f}x" if best and best.nonzero else "-",
                     "yes" if row["wins"] else "no"])
    return table(body, ["reference point", "its top-1 (%)", "its nonzero (%)",
                        f"sparsest Hoyer-Square at >= its top-1 - {ACCURACY_TOLERANCE}",
                        "HS top-1 (%)", "HS nonzero (%)", "fewer nonzeros", "HS wins"])


def verdict_line(name: str, rows: list[dict], strict: bool) -> str:
    outcome = verdict(rows)
    need = "sparser than" if strict else "at least as sparse as"
    if outcome is None:
        return f"- Hoyer-Square vs {name}: not tested (no points to compare)."
    won = sum(row["wins"] for row in rows)
    if outcome:
        return (f"- Hoyer-Square vs {name}: **yes**. At the accuracy of "
                f"{'the' if len(rows) == 1 else 'each of the'} {plural(len(rows), f'{name} point')}, "
                f"a Hoyer-Square cell is {need} it (within {ACCURACY_TOLERANCE} points of top-1).")
    lost = [row["reference"] for row in rows if not row["wins"]]
    where = "; ".join(f"{ref.label}: {ref.accuracy:.2f}% at {ref.nonzero:.3f}% nonzero" for ref in lost)
    return (f"- Hoyer-Square vs {name}: **no**. {won} of {plural(len(rows), f'{name} point')} matched; "
            f"not at {where}.")


def frontier_plot(points: list[Point], reference: Point | None, dense_accuracy: float | None, path: Path) -> None:
    fig = plots.figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for method in dict.fromkeys(p.method for p in points):
        line = sorted((p for p in points if p.method == method), key=lambda p: p.nonzero)
        ax.plot([p.nonzero for p in line], [p.accuracy for p in line], marker="o", label=PRETTY.get(method, method))
        for p in line:
            ax.annotate(f"{p.decay:g}", (p.nonzero, p.accuracy), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if reference is not None:
        ax.plot([reference.nonzero], [reference.accuracy], marker="*", markersize=14, linestyle="none",
                color="black", label="Han magnitude pruning")
    if dense_accuracy is not None:
        ax.axhline(dense_accuracy, color="gray", linestyle="--", linewidth=1, label="dense (the reference's)")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 2, 5, 10 rather than 2x10^0
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("nonzero conv/linear weights (%, log scale)")
    ax.set_ylabel("top-1 after pruning + fine-tuning (%)")
    ax.set_title("accuracy vs nonzero weights (labels: decay)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    plots.save(fig, path, dpi=120)


def budget_note(exp: Experiment, reference_path: Path) -> str:
    """Training budgets side by side: the magnitude pipeline's (the rounds log in its digest-checked
    pruned.pt) and each cell's."""
    cells = (f"each cell here: {plural(exp.train.epochs, 'regularized epoch')} + "
             f"{plural(exp.prune.finetune.epochs, 'fine-tune epoch')}")
    pruned = reference_path.parent / "pruned.pt"
    if not pruned.is_file():
        return f"Budgets: {cells}; the magnitude pipeline's pruned.pt is missing."
    rounds = load_torch(pruned).get("log") or []
    epochs = sum(int(row["finetune_epochs"]) for row in rounds)
    shared = exp.train.pretrained is not None and Path(exp.train.pretrained).parent == reference_path.parent
    return (f"Budgets: the magnitude pipeline fine-tuned {plural(epochs, 'epoch')} over "
            f"{plural(len(rounds), 'prune round')}; {cells}" + (", both from the same dense model." if shared else "."))


def _reference_note(exp: Experiment, reference: Point | None, path: Path | None) -> str:
    if reference is not None:
        return f"Han et al.'s magnitude pipeline on the same model and data is read from `{path}`."
    if path is None:
        return f"No magnitude-pruning reference is configured for {exp.model.arch} on {exp.data.dataset}."
    return (f"The magnitude-pruning reference `{path}` is missing (or has no pruned model): "
            f"{provenance.other_config_hint(path, 'reproduce')}, then this report again.")


def title(exp: Experiment) -> str:
    return f"{exp.name}: DeepHoyer frontier, {exp.model.arch} on {dataset_label(exp.data.dataset)}"


def terminal_lines(exp: Experiment, measured: int, total: int, outcomes: list[tuple[str, bool | None]]) -> list[str]:
    """The frontier in a few lines of at most 80 columns: cells measured and each verdict."""
    words = {True: "yes", False: "no", None: "not tested"}
    lines = [title(exp), f"{INDENT}{measured}/{plural(total, 'cell')} measured"]
    for name, outcome in outcomes:
        need = "sparser than" if name == HAN_MAGNITUDE else "at least as sparse as"
        lines.append(f"{INDENT}Hoyer-Square {need} {name} at equal top-1: {words[outcome]}")
    return fit(lines)


def _training(exp: Experiment) -> str:
    """How the cells' models were made: trained with their regularizer, or a regularized model used as it is."""
    train = exp.train
    if not train.epochs:
        return f"each the regularized model `{train.pretrained}` used as it is (no training epochs here)"
    start = f", from `{train.pretrained}`" if train.pretrained else ""
    return f"each trained {plural(train.epochs, 'epoch')} with its regularizer ({train.optimizer}, lr {train.lr}{start})"


def _prune_rule(exp: Experiment, summary: dict) -> str:
    """The threshold rule the cells share, or the keys whose value each cell's id names."""
    prune = exp.prune
    if prune is None or prune.method != METHOD:
        return "see config"
    varied = sorted({key.removeprefix("prune.") for row in summary["cells"] for key in row["overrides"]
                     if key in ("prune.threshold", "prune.std_ratio")})
    if varied:
        return f"the {' or '.join(varied)} its cell id names"
    return f"threshold {prune.threshold}" if prune.threshold is not None else f"std_ratio {prune.std_ratio}"


def write_report(exp: Experiment, summary: dict, cells: dict) -> None:
    """results/<name>/report.md and frontier.png from the sweep's collected summary (the cells'
    overrides name their regularizer and decay, so the cell experiments are not needed)."""
    points, missing = cell_points(exp, summary)
    reference, dense_accuracy, reference_path = magnitude_reference(exp)
    hs = [p for p in points if p.method == HOYER_SQUARE]
    others = list(dict.fromkeys(p.method for p in points if p.method != HOYER_SQUARE))
    prune = exp.prune
    sections = [
        f"# {title(exp)}",
        f"Config `{exp.path}`: {plural(len(summary['cells']), 'cell')} (regularizer x decay), {_training(exp)}"
        + f", pruned at {_prune_rule(exp, summary)} and fine-tuned {plural(prune.finetune.epochs if prune else 0, 'epoch')} under the "
        "masks. Nonzero weights and compression count every conv/linear weight (classifier included); top-1 is "
        "on the test set. "
        + _reference_note(exp, reference, reference_path)
        + f" Hoyer-Square wins at a reference point when one of its cells with top-1 at least the reference's "
        f"minus {ACCURACY_TOLERANCE} points has at most as many nonzero weights (strictly fewer against Han's "
        "magnitude pruning).",
        "## Cells",
        cells_table(points, reference),
    ]
    if missing:
        sections.append(f"Not measured yet ({len(missing)}): " + ", ".join(f"`{c}`" for c in missing)
                        + f"; {provenance.run_hint(exp, 'sweep')}.")
    lines, outcomes = [], []
    if not hs:
        lines.append("- No Hoyer-Square cells were measured: nothing to compare.")
    else:
        for method in others:
            rows = compare(hs, [p for p in points if p.method == method])
            sections += [f"## Hoyer-Square vs {PRETTY.get(method, method)} at equal accuracy", comparison_table(rows)]
            lines.append(verdict_line(PRETTY.get(method, method), rows, strict=False))
            outcomes.append((PRETTY.get(method, method), verdict(rows)))
        if reference is not None:
            rows = compare(hs, [reference], strict=True)
            sections += ["## Hoyer-Square vs Han magnitude pruning at equal accuracy", comparison_table(rows)]
            lines.append(verdict_line(HAN_MAGNITUDE, rows, strict=True) + " " + budget_note(exp, reference_path))
            outcomes.append((HAN_MAGNITUDE, verdict(rows)))
        else:
            lines.append(f"- Hoyer-Square vs {HAN_MAGNITUDE}: not tested; " + _reference_note(
                exp, reference, reference_path))
            outcomes.append((HAN_MAGNITUDE, None))
    sections += ["## Verdict", "DeepHoyer's claim: Hoyer-Square reaches higher sparsity than L1 and Hoyer at the "
                 "same accuracy.", "\n".join(lines)]
    if exp.report.plots and points:
        plot = paths.run_dir(exp) / FRONTIER_PNG
        frontier_plot(points, reference, dense_accuracy, plot)
        sections.append(f"![accuracy vs nonzero weights]({FRONTIER_PNG})")
    if exp.sweep.discussion:
        sections += ["## Discussion", exp.sweep.discussion.strip()]
    sections += made_by_section(summary.get("made_by", {}), provenance.invocation(exp).overrides)
    text = "\n\n".join(sections) + "\n"
    write_text(paths.report(exp), text)
    print_plain(terminal_lines(exp, len(points), len(summary["cells"]), outcomes)
                + pointer(paths.report(exp), "full report, with the tables"))
