"""Deep Compression (Han, Mao, Dally 2016) and a MASE student pipeline's quantization, after any
family's pruning: per-layer k-means weight sharing with fine-tuned centroids (or uniform fixed point),
relative indices and canonical Huffman codes, written to a real file (compressed.bin) that test decodes.

Selected by a [compress] table; adds the compress stage (between prune and test) and the model
decoded from the file to what test measures. Prunes nothing itself (no [prune] table selects it).
"""

from ...family import Family, register
from .bench import benchmark
from .report import describe, sections
from .settings import SCHEMA
from .stage import compress, extra_models

FAMILY = register(Family(
    schema=SCHEMA,
    title="Deep Compression (Han et al. 2016): trained quantization and Huffman coding, in a real file",
    pruner=None,
    describe=describe,
    report_sections=sections,
    benchmark=benchmark,
    stages={"compress": compress},
    extra_models=extra_models,
))
