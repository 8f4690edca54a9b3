"""The summary table of an experiment's report: every measured model (baseline.py decides which one
is "dense"), the top-1 change against that dense model, compression of all conv/linear weights,
theoretical speedup and measured CPU time; then the published rows that apply (references.py)."""

from __future__ import annotations

from .baseline import Compared
from .experiment import ALL_WEIGHTS
from .markdown import count, points, table
from .references import Reference


def _reference_rows(ref: Reference, blanks: list[str]) -> list[list[str]]:
    speedup = f"{100 / ref.flops_kept:.1f}x" if ref.flops_kept else "-"
    if ref.accuracy_dense is None:  # a work that gives no dense accuracy: its pruned row alone
        dense, change = [], "-"
    else:
        dense = [[f"{ref.label}: dense", f"{ref.accuracy_dense:.2f}", "-", "-", ref.params_dense or "-",
                  ref.params_dense or "-", "1x", "-", "-", "-", *blanks]]
        change = points(ref.accuracy_pruned - ref.accuracy_dense)
    return dense + [
        [f"{ref.label}: pruned", f"{ref.accuracy_pruned:.2f}", change, "-",
         ref.params_dense or "-", ref.params_pruned or "-", f"{ref.compression:g}x", "-", "-", speedup, *blanks],
    ]


def summary_table(compared: Compared, references: list[Reference]) -> str:
    """One row per measured model (then two per reference: its dense and pruned model)."""
    first_latency = compared.rows[0][1]["latency"]["cpu"]
    sizes = sorted(first_latency, key=int)
    rows = []
    for label, m in compared.rows:
        cpu = m["latency"]["cpu"]
        change = None if m is compared.baseline else compared.change(m)
        rows.append([
            label, f"{m['accuracy']:.2f}", points(change), f"{m['loss']:.4f}", count(m["params"]),
            count(m["nonzero_params"]), f"{m['compression']:.2f}x", count(m["flops"]), count(m["effective_flops"]),
            f"{m['theoretical_speedup']:.2f}x",
            *[f"{cpu[size]['ms_per_batch']:.3f}" if size in cpu else "-" for size in sizes],
            count(cpu[sizes[-1]]["images_per_s"]) if sizes[-1] in cpu else "-",
        ])
    blanks = ["-"] * (len(sizes) + 1)
    for ref in references:
        rows += _reference_rows(ref, blanks)
    return table(rows, ["model", "top-1 (%)", "top-1 change vs dense (points)", "loss", "params", "nonzero params",
                        f"compression of {ALL_WEIGHTS}", "MACs", "effective MACs", "theoretical speedup",
                        *[f"CPU ms/batch ({size})" for size in sizes], f"images/s ({sizes[-1]})"])


def change_note(compared: Compared, references: list[Reference]) -> str:
    """What the change column is measured against (published rows: against their own dense model)."""
    if compared.baseline is None:
        return "No dense model was measured (pruning started from initialization): no top-1 change is given."
    against = compared.note or "The top-1 change of each model is against the dense row."
    return against + (" A reference's pruned row is against its own dense row." if references else "")
