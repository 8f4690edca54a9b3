"""Pruning at initialization: random, magnitude, SNIP (Lee et al. 2019), GraSP (Wang et al. 2020) and
SynFlow (Tanaka et al. 2020), with the Frankle et al. 2021 controls and layer-collapse reporting.

Selected by start = "init" or a score method; keys: [prune.at_init]. `[sweep] kind = "at_init"`
writes the COS598D assignment's report (methods x compressions, mean ± std over seeds).
"""

from ...family import Family, register
from .bench import benchmark
from .pruner import AtInitPruner, describe
from .report import sections
from .settings import SCHEMA
from .sweep_report import write_report

FAMILY = register(Family(
    schema=SCHEMA,
    title="pruning at initialization: random, magnitude, SNIP, GraSP, SynFlow",
    pruner=AtInitPruner,
    describe=describe,
    report_sections=sections,
    sweep_report=write_report,
    benchmark=benchmark,
))
