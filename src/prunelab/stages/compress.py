"""compress: pruned.pt -> quantized, fine-tuned shared weights -> compressed.bin (a real file that
test decodes) and compress.json. The family that adds the [compress] table does the work
(family.stage); this module is the task's entry in the spine."""

from __future__ import annotations

from .. import family
from ..config import Experiment
from ..replicates import over_seeds


@over_seeds
def compress(exp: Experiment, force: bool = False) -> None:
    """Quantize the pruned model, fine-tune the shared weights and write compressed.bin (resumable)."""
    family.stage("compress")(exp, force)
