"""The at-init section of an experiment's report: target vs achieved density, collapsed layers."""

from __future__ import annotations

from ... import family
from ...family import ReportInputs
from ...report.markdown import table
from .controls import layer_densities
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
    return ["## Pruning at initialization",
            f"{exp.prune.method} ({exp.prune.scope} scope): achieved density {100 * last['density']:.4f}% vs target "
            f"{100 * last['target_density']:.4f}%; collapsed layers (density <= {100 * threshold:g}%): {collapsed}"
            + (f"; controls: {last['controls']}" if last.get("controls") else "") + ".",
            table(rows, ["weight", "size", "kept", "density (%)", ""])]
