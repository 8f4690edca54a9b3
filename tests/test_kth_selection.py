"""The O(n) k-th value selection behind exact SynFlow rounds, and its tie handling."""

from __future__ import annotations

import pytest
import torch

from prunelab.families.at_init.synflow import _keep_first_ties
from prunelab.pruning.selection import in_memory_order, kth_largest


def _reference(values: list[torch.Tensor], keep: int) -> float:
    return float(torch.cat([v.flatten() for v in values]).sort(descending=True).values[keep - 1])


@pytest.mark.parametrize("keep", [1, 7, 1_000, 123_456, 214_999, 215_000])
def test_kth_largest_is_exact_across_tensors(keep):
    torch.manual_seed(0)
    values = [torch.rand(100_000) ** 3, torch.rand(50, 3, 10, 10), torch.rand(100_000) * 2]  # 215,000
    value, at_or_above = kth_largest(values, keep, torch.Generator().manual_seed(0))
    assert value == _reference(values, keep)
    assert at_or_above == keep  # continuous draws: no ties


def test_kth_largest_falls_back_when_the_sample_misses_the_band():
    # 1,000 large entries among 1M zeros: the sample sees (almost) only zeros, so the band is empty.
    values = [torch.zeros(1_000_000), torch.arange(1, 1001, dtype=torch.float32)]
    value, at_or_above = kth_largest(values, 500, torch.Generator().manual_seed(0))
    assert (value, at_or_above) == (501.0, 500)


def test_kth_largest_counts_ties_and_refuses_a_bad_count():
    values = [torch.tensor([5.0, 3.0, 3.0, 3.0, 1.0])]
    assert kth_largest(values, 2, torch.Generator()) == (3.0, 4)
    with pytest.raises(ValueError, match="keep must be in 1..5"):
        kth_largest(values, 6, torch.Generator())


def test_ties_keep_the_first_entries_in_index_order_to_the_exact_count():
    scores = [torch.tensor([3.0, 1.0, 3.0]), torch.tensor([[3.0, 7.0], [3.0, 0.5]])]
    # keep 4: 7 and three of the five 3s (the first three: scores[0][0], scores[0][2], scores[1][0, 0]).
    threshold = _keep_first_ties(scores, 3.0, 3)
    kept = [s >= threshold for s in scores]
    assert kept[0].tolist() == [True, False, True]
    assert kept[1].tolist() == [[True, True], [False, False]]


def test_channels_last_tensors_are_read_in_memory_order_without_a_copy():
    t = torch.randn(4, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    flat = in_memory_order(t)
    assert flat.data_ptr() == t.data_ptr() and flat.numel() == t.numel()
    assert sorted(flat.tolist()) == sorted(t.flatten().tolist())
