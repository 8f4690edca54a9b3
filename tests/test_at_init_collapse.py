"""Layer collapse as SynFlow defines it: kept weights on an input-output path, cut layers, the
effective density, and each method's critical compression over a sweep's cells."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn

from prunelab.families.at_init.connectivity import connectivity
from prunelab.families.at_init.sweep_collapse import collapse_section, critical_compression


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU6(), nn.Linear(2, 2))


def _masks(model: nn.Module, kept: dict[str, list[tuple[int, int]]]) -> dict[str, torch.Tensor]:
    masks = {}
    for name, param in model.named_parameters():
        if name.endswith("weight"):
            mask = torch.zeros_like(param, dtype=torch.bool)
            for row, col in kept[name]:
                mask[row, col] = True
            masks[name] = mask
    return masks


def test_paths_by_hand():
    model = _mlp()
    # input 0 -> unit 0 -> unit 1 -> output 1 is a path; 0.weight's (2, 3) feeds unit 2, which reaches
    # nothing (2.weight keeps nothing from unit 2); 4.weight's (0, 0) starts at a unit no input reaches.
    masks = _masks(model, {"0.weight": [(0, 0), (2, 3)], "2.weight": [(1, 0)], "4.weight": [(1, 1), (0, 0)]})
    paths = connectivity(model, masks, (4,))
    assert paths.kept == {"0.weight": 2, "2.weight": 1, "4.weight": 2}
    assert paths.on_path == {"0.weight": 1, "2.weight": 1, "4.weight": 1}
    assert paths.empty == [] and paths.disconnected == []
    assert paths.effective_density == 3 / (12 + 6 + 4)


def test_a_cut_layer_and_an_empty_one():
    model = _mlp()
    # 2.weight keeps a weight from unit 1, but 0.weight feeds only unit 0: no path through layer 2.
    cut = connectivity(model, _masks(model, {"0.weight": [(0, 0)], "2.weight": [(0, 1)], "4.weight": [(0, 0)]}), (4,))
    assert cut.disconnected == ["0.weight", "2.weight", "4.weight"] and cut.effective_density == 0
    assert cut.empty == []
    empty = connectivity(model, _masks(model, {"0.weight": [(0, 0)], "2.weight": [], "4.weight": [(0, 0)]}), (4,))
    assert empty.empty == ["2.weight"] and len(empty.disconnected) == 3


def _cell(method: str, compression: float, seed: int, cut: str) -> SimpleNamespace:
    return SimpleNamespace(method=method, compression=compression, seed=seed, control="plain", log={"density": 1},
                           connectivity={"disconnected_layers": cut, "effective_density": 0.0 if cut else 1 / compression,
                                         "empty_layers": ""})


def test_critical_compression_is_the_last_before_any_seed_cuts():
    cells = [_cell("random", c, s, "fc3.weight" if (c >= 1000 or (c == 316 and s == 1)) else "")
             for c in (10, 100, 316, 1000) for s in (0, 1)]
    cells += [_cell("synflow", c, s, "") for c in (10, 100, 316, 1000) for s in (0, 1)]
    assert critical_compression(cells, "random") == (100, 316)  # seed 1 cut at 316x
    assert critical_compression(cells, "synflow") == (1000, None)
    sections = collapse_section(cells, ["random", "synflow"])
    cut, effective = sections[2], sections[5]
    assert [c.strip() for c in cut.splitlines()[2].split("|")[2:-1]] == \
        ["0", "0", "1 (1 of 2 seeds)", "1", "100x", "316x"]
    assert [c.strip() for c in cut.splitlines()[3].split("|")[2:-1]] == ["0", "0", "0", "0", "1000x", "none in the grid"]
    assert [c.strip() for c in effective.splitlines()[2].split("|")[2:-1]] == ["10x", "100x", "316x (1 of 2 cut)", "cut"]
