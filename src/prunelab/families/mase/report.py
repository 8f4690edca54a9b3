"""The mase section of an experiment's report: per layer, the weights kept and the input channels kept."""

from __future__ import annotations

from ... import family
from ...family import ReportInputs
from ...pruning import pattern_record
from ...pruning.activations import input_channels, input_mask
from ...pruning.masks import PRUNABLE_TYPES
from ...report.markdown import percent, table
from .settings import NAME


def sections(inputs: ReportInputs) -> list[str]:
    exp = inputs.exp
    if exp.prune is None or family.of(exp).name != NAME or inputs.checkpoint is None:
        return []
    rows = []
    for name, module in inputs.pruned.named_modules():
        if not isinstance(module, PRUNABLE_TYPES):
            continue
        weight, mask = module.weight.detach(), input_mask(module)
        channels = input_channels(module)
        kept = channels if mask is None else int(mask.sum())
        rows.append([name, type(module).__name__, percent(int((weight != 0).sum()), weight.numel()),
                     f"{kept} / {channels}", percent(kept, channels)])
    return ["## Weights and input channels kept",
            "Input channels: conv feature maps or linear neurons reaching the layer (the others are zeroed at run "
            "time; the FLOPs table counts a weight on a zeroed channel as no work).",
            table(rows, ["layer", "type", "weights kept (%)", "input channels kept", "input channels kept (%)"]),
            *pattern_record.section(inputs)]
