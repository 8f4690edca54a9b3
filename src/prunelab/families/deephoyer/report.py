"""The structural section of a DeepHoyer report: zero filters / channels and the dense model they leave.

The common tables count single zero weights; this section counts whole all-zero
output filters (rows) and input channels (columns), propagated between layers
wired one to one (structure.py), and gives the params
and MACs of the smaller dense model that removing them leaves: the saving a
plain dense kernel gets, with no sparse format. It also labels a dense.pt trained with a
regularizer from another experiment's model (the summary's dense row is then that model).
"""

from __future__ import annotations

from pathlib import Path

from ...atomic import load_torch
from ...config import Experiment
from ...data.spec import spec_for
from ...family import ReportInputs
from ...report.baseline import TRAINED_LABELS
from ...report.markdown import count, percent, table
from .settings import METHOD, SCHEMA
from .structure import structure_stats


@TRAINED_LABELS.register(SCHEMA.name)
def trained_label(exp: Experiment) -> str | None:
    """What this experiment's dense.pt is when it was trained with a regularizer (the summary's label;
    the dense row is then the model train.pretrained names)."""
    reg = exp.train.regularizer
    return None if reg is None else f"regularized (train.regularizer: {reg.kind}, decay {reg.decay:g})"


def applies(exp: Experiment) -> bool:
    """The section belongs to runs trained with a regularizer or pruned by threshold."""
    return exp.train.regularizer is not None or (exp.prune is not None and exp.prune.method == METHOD)


def structure_table(stats: dict) -> str:
    rows = []
    for layer in stats["layers"]:
        out_ch, in_ch = layer["weight_shape"][:2]
        rows.append([
            layer["name"], layer["kind"], "x".join(map(str, layer["weight_shape"])),
            f"{100 * layer['sparsity']:.2f}",
            f"{layer['zero_rows']} / {out_ch}", f"{layer['zero_cols']} / {in_ch}",
            f"{layer['removed_rows']} / {out_ch}", f"{layer['removed_cols']} / {in_ch}",
            f"{layer['out_kept']}x{layer['in_kept']}",
            count(layer["weights"]), count(layer["structural_weights"]),
            count(layer["macs"]), count(layer["structural_macs"]),
            percent(layer["structural_macs"], layer["macs"]),
        ])
    total = stats["total"]
    rows.append(["**total**", "", "", "", "", "", "", "", "", count(total["weights"]),
                 count(total["structural_weights"]), count(total["macs"]), count(total["structural_macs"]),
                 percent(total["structural_macs"], total["macs"])])
    headers = ["layer", "type", "weight shape", "element sparsity (%)", "zero output filters/rows",
               "zero input channels/cols", "removable outputs", "removable inputs", "kept out x in",
               "dense params", "structural params", "dense MACs", "structural MACs", "MACs kept (%)"]
    return table(rows, headers)


def structure_summary(stats: dict, element_speedup: float) -> str:
    total = stats["total"]
    param_ratio = total["weights"] / total["structural_weights"] if total["structural_weights"] else float("inf")
    return (
        f"Removing the all-zero filters and channels leaves a dense model with "
        f"{count(total['structural_weights'])} of {count(total['weights'])} conv/linear weights "
        f"({param_ratio:.2f}x fewer) and {count(total['structural_macs'])} of {count(total['macs'])} MACs: "
        f"a structural FLOPs reduction of **{total['structural_speedup']:.2f}x** "
        f"({100 * total['macs_reduction']:.1f}% of the MACs removed), against "
        f"{element_speedup:.2f}x theoretical speedup counted element-wise (which needs sparse kernels)."
    )


def start_note(exp: Experiment, checkpoint: dict | None, measured: dict | None = None) -> str | None:
    """The accuracy of the dense model training started from (train.pretrained) beside the pruned one's:
    as the test stage measured both (metrics.json), else from the starting model's training log."""
    if exp.train.pretrained is None:
        return None
    measured = measured or {}
    if "pretrained" in measured and "pruned" in measured:
        dense, pruned = measured["pretrained"]["accuracy"], measured["pruned"]["accuracy"]
        return (f"Training started from the dense model `{measured['pretrained'].get('path', exp.train.pretrained)}` "
                f"(top-1 {dense:.2f}%); pruned and fine-tuned: {pruned:.2f}% ({pruned - dense:+.2f} points).")
    source = Path(exp.train.pretrained)
    if not source.is_file():
        return f"Training started from `{source}`, which is no longer there."
    log = load_torch(source).get("log") or []
    if not log:
        return f"Training started from `{source}` (no training log in it)."
    dense = log[-1]["test_accuracy"]
    text = f"Training started from the dense model `{source}`: top-1 {dense:.2f}% after its last epoch"
    rounds = (checkpoint or {}).get("log") or []
    if rounds:
        pruned = rounds[-1]["accuracy_after_finetune"]
        text += f"; pruned and fine-tuned: {pruned:.2f}% ({pruned - dense:+.2f} points)"
    return text + "."


def best_epoch_note(checkpoint: dict | None) -> str | None:
    """The last round's best fine-tuning epoch beside its last one. DeepHoyer's scripts print the best
    test accuracy over their fine-tuning epochs (a selection on the test set); prunelab reports the
    last epoch's model, which is what pruned.pt holds."""
    rows = [row for row in (checkpoint or {}).get("epoch_log") or []
            if row.get("phase") == "fine-tune" and row.get("test_accuracy") is not None]
    if not rows:
        return None
    last_round = max(row["round"] for row in rows)
    rows = [row for row in rows if row["round"] == last_round]
    best, last = max(rows, key=lambda row: row["test_accuracy"]), rows[-1]
    return (f"Last fine-tuning epoch ({last['epoch']} of {len(rows)}): top-1 {last['test_accuracy']:.2f}%, the "
            f"model pruned.pt holds and every table reports. Best epoch, as DeepHoyer's scripts print it "
            f"(chosen on the test set, so optimistic): {best['test_accuracy']:.2f}% (epoch {best['epoch']}).")


def sections(inputs: ReportInputs) -> list[str]:
    """Markdown sections for report.md; [] when the experiment is not a regularizer / threshold run.

    The counts are read from the weights themselves, so a zero the masks did not make
    (e.g. one the regularizer drove exactly to 0) counts too.
    """
    exp, dense_model, pruned_model, checkpoint = inputs.exp, inputs.dense, inputs.pruned, inputs.checkpoint
    if not applies(exp):
        return []
    shape = spec_for(exp).image_shape
    stats = structure_stats(pruned_model, shape, propagate=True)
    dense_macs = structure_stats(dense_model, shape)["total"]["macs"]
    effective = sum(
        layer["macs"] * (1 - layer["sparsity"]) for layer in stats["layers"]
    )  # element-wise effective MACs of the same layers, for the comparison
    element_speedup = dense_macs / effective if effective else float("inf")
    which = "pruned" if checkpoint is not None else "trained (unpruned)"
    intro = (
        f"Structure of the {which} model. Zero output filters/rows and zero input channels/cols are each "
        "layer's own all-zero groups; removable outputs/inputs add the ones a neighbouring layer makes "
        "removable (a zero filter of one layer removes the matching input channel of the next, and for a "
        "conv feeding a linear layer through a flatten, the matching block of H x W input columns; a zero "
        "input channel makes the filter feeding it removable). Structural params and MACs are those of the "
        "dense model with the removable rows and channels taken out (fvcore MACs, one image)."
    )
    note = start_note(exp, checkpoint, inputs.measured)
    best = best_epoch_note(checkpoint) if exp.prune is not None and exp.prune.method == METHOD else None
    return ["## Structure: zero filters and channels", intro, structure_table(stats),
            structure_summary(stats, element_speedup) + (f" {note}" if note else "")] + \
        (["## Fine-tuning accuracy: last epoch and best epoch", best] if best else [])
