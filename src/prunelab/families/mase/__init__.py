"""MASE group 3's prune pass (a student pipeline on DeepWok's MASE: prune -> quantize -> fine-tune ->
Huffman): weights masked element-, kernel- or channel-wise by L1 / L2 norm or at random, per layer or
globally, and whole input channels (feature maps, neurons) masked at run time by their activations.

Selected by method = "l1-norm" | "l2-norm" or granularity = "kernel" | "channel" (family = "mase" for
element-wise "random"); keys: activation_sparsity, activation_method, calibration_batches in [prune].
"""

from ...family import Family, register
from .pruner import MasePruner, describe, rebuild
from .report import sections
from .settings import SCHEMA

FAMILY = register(Family(
    schema=SCHEMA,
    title="MASE group 3: weight pruning by norm (element, kernel, channel) and activation pruning",
    pruner=MasePruner,
    describe=describe,
    report_sections=sections,
    rebuild=rebuild,
))
