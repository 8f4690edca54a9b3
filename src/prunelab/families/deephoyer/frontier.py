"""The DeepHoyer frontier: accuracy vs nonzero weights for each regularizer x decay of a sweep.

Each cell of a `[sweep] kind = "regularizer"` config is one regularizer and one
decay, trained, threshold-pruned and fine-tuned under the masks; its point is
(nonzero conv/linear weights %, top-1 % after fine-tuning). Han et al.'s
magnitude pipeline on the same model and data (the checked-in config named in
MAGNITUDE_REFERENCE) is the reference point. `write_report` writes
results/<name>/report.md and the curve results/<name>/frontier.png, and states
whether Hoyer-Square reaches at least the sparsity of L1, and beats the
magnitude pipeline, at equal accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.ticker import FuncFormatter

from ... import paths, provenance
from ...atomic import load_json, load_torch, write_text
from ...config import Experiment
from ...log import print_plain
from ...report import plots
from ...report.made_by import made_by_section
from ...report.markdown import plural, table
from ...report.references import dataset_label
from ...report.terminal import INDENT, fit, pointer
from .settings import METHOD

KIND_KEY = "train.regularizer.kind"
DECAY_KEY = "train.regularizer.decay"
HOYER_SQUARE = "hoyer_square"
HAN_MAGNITUDE = "Han magnitude pruning"
# "Equal accuracy" allows this much noise (points of top-1): one binomial standard deviation
# of a 10,000-image test accuracy near 90% is 0.3 points.
ACCURACY_TOLERANCE = 0.2
# (arch, dataset) -> the experiment (configs/<name>.toml) running Han et al.'s magnitude pipeline.
MAGNITUDE_REFERENCE = {
    ("lenet300_100", "fashion-mnist"): "lenet300_100_fashion",
    ("lenet300_100", "mnist"): "lenet300_100/seeds/seed-{seed}",  # a replicated config: the same seed's run
    ("lenet5_caffe", "fashion-mnist"): "lenet5_caffe_fashion",
    ("lenet5_caffe", "mnist"): "lenet5_caffe/seeds/seed-{seed}",
}
FRONTIER_PNG = "frontier.png"
PRETTY = {"l1": "L1", "hoyer": "Hoyer", "hoyer_square": "Hoyer-Square", "transformed_l1": "transformed L1",
          "group_lasso": "group lasso", "group_hoyer_square": "Group-HS", "magnitude": "Han magnitude"}


@dataclass(frozen=True)
class Point:
    """One pruned-and-fine-tuned model on the frontier."""

    method: str  # a regularizer name, or "magnitude" for the reference
    decay: float | None
    nonzero: float  # nonzero conv/linear weights, % of all conv/linear weights
    accuracy: float  # top-1 %, after pruning and fine-tuning
    trained_accuracy: float | None  # top-1 % before pruning (after regularized training)
    compression: float
    speedup: float  # theoretical, element-wise
    cell: str

    @property
    def label(self) -> str:
        name = PRETTY.get(self.method, self.method)
        return name if self.decay is None else f"{name} (decay {self.decay:g})"


def _point(method: str, decay: float | None, metrics: dict, cell: str) -> Point:
    pruned = metrics["pruned"]
    trained = metrics.get("dense", {}).get("accuracy")
    return Point(method, decay, 100 * pruned["nonzero_weights"] / pruned["weights"], pruned["accuracy"], trained,
                 pruned["compression"], pruned["theoretical_speedup"], cell)


def cell_points(exp: Experiment, summary: dict) -> tuple[list[Point], list[str]]:
    """(a point per measured cell, ids of cells without metrics); kind/decay from the overrides or the base."""
    base = exp.train.regularizer
    points, missing = [], []
    for row in summary["cells"]:
        if row["metrics"] is None or "pruned" not in row["metrics"]:
            missing.append(row["cell"])
            continue
        kind = row["overrides"].get(KIND_KEY, base.kind if base else "none")
        decay = row["overrides"].get(DECAY_KEY, base.decay if base else 0.0)
        points.append(_point(kind, float(decay), row["metrics"], row["cell"]))
    return points, missing


def magnitude_reference(exp: Experiment) -> tuple[Point | None, float | None, Path | None]:
    """(Han's pruned point, its dense top-1, the metrics.json read) or Nones where there is none."""
    name = MAGNITUDE_REFERENCE.get((exp.model.arch, exp.data.dataset))
    if name is None:
        return None, None, None
    name = name.format(seed=exp.seed)
    path = Path(exp.results_root) / name / "metrics.json"
    if not path.is_file():
        return None, None, path
    metrics = load_json(path)
    if "pruned" not in metrics:
        return None, metrics.get("dense", {}).get("accuracy"), path
    return _point("magnitude", None, metrics, name), metrics.get("dense", {}).get("accuracy"), path


def sparsest_at(points: list[Point], accuracy: float, tolerance: float = ACCURACY_TOLERANCE) -> Point | None:
    """The point with the fewest nonzero weights among those at least as accurate (minus the tolerance)."""
    eligible = [p for p in points if p.accuracy >= accuracy - tolerance]
    return min(eligible, key=lambda p: p.nonzero) if eligible else None


def compare(candidate: list[Point], references: list[Point], strict: bool = False,
            tolerance: float = ACCURACY_TOLERANCE) -> list[dict]:
    """For each reference point: the candidate's sparsest point at its accuracy, and whether it wins.

    It wins with nonzero <= the reference's (< with `strict`); it loses when the
    candidate never reaches the reference's accuracy.
    """
    rows = []
    for ref in references:
        best = sparsest_at(candidate, ref.accuracy, tolerance)
        wins = best is not None and (best.nonzero < ref.nonzero if strict else best.nonzero <= ref.nonzero)
        rows.append({"reference": ref, "best": best, "wins": wins})
    return rows


def verdict(rows: list[dict]) -> bool | None:
    """True when the candidate wins at every reference point, None when there was nothing to compare."""
    return all(row["wins"] for row in rows) if rows else None


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def cells_table(points: list[Point], reference: Point | None) -> str:
    rows = [["Han magnitude (reference)" if p is reference else PRETTY.get(p.method, p.method), _fmt(p.decay, "g"),
             _fmt(p.trained_accuracy), _fmt(p.accuracy), _fmt(p.nonzero, ".3f"), f"{p.compression:.1f}x",
             f"{p.speedup:.1f}x", f"`{p.cell}`"] for p in [*points, *([reference] if reference else [])]]
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
    where = "; ".join(f"{ref.label}: {ref.accuracy:.2f}% at {ref.nonzero:.3f}% nonzero"
                      for ref in (row["reference"] for row in rows if not row["wins"]))
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
    for set_formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        set_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 2, 5, 10 rather than 2x10^0
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


def write_report(exp: Experiment, summary: dict, cells: dict) -> None:
    """results/<name>/report.md and frontier.png from the sweep's collected summary (the cells'
    overrides name their regularizer and decay, so the cell experiments are not needed)."""
    points, missing = cell_points(exp, summary)
    reference, dense_accuracy, reference_path = magnitude_reference(exp)
    hs = [p for p in points if p.method == HOYER_SQUARE]
    others = list(dict.fromkeys(p.method for p in points if p.method != HOYER_SQUARE))
    prune = exp.prune
    varied = sorted({key[6:] for row in summary["cells"] for key in row["overrides"]
                     if key in ("prune.threshold", "prune.std_ratio")})  # then each cell id names its rule
    rule = (f"the {' or '.join(varied)} its cell id names" if varied else f"threshold {prune.threshold}"
            if prune.threshold is not None else f"std_ratio {prune.std_ratio}") \
        if prune is not None and prune.method == METHOD else "see config"
    training = (f"each the regularized model `{exp.train.pretrained}` used as it is (no training epochs here)"
                if not exp.train.epochs else f"each trained {plural(exp.train.epochs, 'epoch')} with its regularizer "
                f"({exp.train.optimizer}, lr {exp.train.lr}"
                + (f", from `{exp.train.pretrained}`" if exp.train.pretrained else "") + ")")
    sections = [
        f"# {title(exp)}",
        f"Config `{exp.path}`: {plural(len(summary['cells']), 'cell')} (regularizer x decay), {training}"
        + f", pruned at {rule} and fine-tuned {plural(prune.finetune.epochs if prune else 0, 'epoch')} under the "
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
