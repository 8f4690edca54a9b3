"""The at-init section of an experiment's report: target vs achieved density, collapsed and cut layers,
the effective density, and the kept weights whose score was exactly 0."""

from __future__ import annotations

from ... import family
from ...family import ReportInputs
from ...pruning import pattern_record
from ...report.markdown import table
from .controls import layer_densities
from .sweep_collapse import connectivity_of
from .settings import NAME


def sections(inputs: ReportInputs) -> list[str]:
    exp, checkpoint = inputs.exp, inputs.checkpoint
    if exp.prune is None or family.of(exp).name != NAME or checkpoint is None or not checkpoint.get("log"):
        return []
    last = checkpoint["log"][-1]
    threshold = exp.prune.at_init.collapse_density
    masks = checkpoint["masks"]
    rows = [[name, f"{mask.numel():,}", f"{int(mask.sum()):,}", f"{100 * density:.3f}",
             "collapsed" if density <= threshold else ""]
            for (name, mask), density in zip(masks.items(), layer_densities(masks).values())]
    collapsed = last.get("collapsed_layers") or "none"
    paths = connectivity_of(exp, checkpoint)
    cut = paths["disconnected_layers"].replace(";", ", ") or "none"
    effective = paths["effective_density"]
    zero = (f"{int(last['zero_score_kept']):,} kept weights had a score of exactly 0"
            + (f" ({last['zero_score_layers'].replace(';', ', ')})" if last.get("zero_score_layers") else "")
            if "zero_score_kept" in last else "kept weights with a score of 0: not logged (pruned before prunelab counted them)")
    return ["## Pruning at initialization",
            f"{exp.prune.method} ({exp.prune.scope} scope): achieved density {100 * last['density']:.4f}% vs target "
            f"{100 * last['target_density']:.4f}%; collapsed layers (density <= {100 * threshold:g}%): {collapsed}; "
            f"cut layers (no kept weight on an input-output path): {cut}"
            + ("" if effective in ("", None) else f"; effective density {100 * float(effective):.4f}%")
            + f"; {zero}" + (f"; controls: {last['controls']}" if last.get("controls") else "") + ".",
            table(rows, ["weight", "size", "kept", "density (%)", ""])] + pattern_record.section(inputs)
