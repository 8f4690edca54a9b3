"""Sparse kernels: a pruned model run so that its zero weights cost no time ([test] kernels, docs/speed.md).

layers.py    drop-in modules for a pruned layer: CsrLinear, CsrConv2d (im2col + CSR), SemiStructuredLinear
             (2:4 on CUDA, fp16)
catalog.py   the kernels by name, the devices and layers each takes, a model with layers swapped
measure.py   one model with one kernel: per-layer choice by timing, whole-model speedup against dense,
             outputs checked against dense (TOLERANCE)

The config reads only catalog.NAMES; nothing here imports the config.
"""
