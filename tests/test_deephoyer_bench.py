"""The subnormal-float benchmark's arithmetic rows (the pipeline rows need real MNIST: bench only)."""

from __future__ import annotations

import torch

from prunelab.families.deephoyer.bench import arithmetic_rows, _subnormals


def test_arithmetic_rows_time_both_ways_for_subnormal_and_normal_values():
    rows = arithmetic_rows(elements=1024, repeats=2, trials=1)
    assert [row["values"] for row in rows] == ["subnormal (1e-39)", "normal (1e-3)"]
    for row in rows:
        assert float(row["ms, flushing off"]) > 0 and float(row["ms, flushing on"]) > 0
        assert row["off / on"].endswith("x")
    assert float(torch.tensor([1e-39]) * 1.0) != 0  # flushing is off again afterwards


def test_subnormals_are_counted_exactly():
    values = torch.tensor([0.0, 1e-39, -2e-40, 1e-3, torch.finfo(torch.float32).tiny])
    assert _subnormals([values, values[:2]]) == 3  # 1e-39 and -2e-40; 0 and the smallest normal are not
