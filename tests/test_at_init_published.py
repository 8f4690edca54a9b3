"""Synaptic-Flow's published accuracy vs compression (families/at_init/published.py): the data's shape,
values pinned to the repository's files, and the sweep-report section with its data set."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunelab.families.at_init.published import (SYNFLOW_2020, SYNFLOW_COMMIT, SYNFLOW_COMPRESSIONS,
                                                 SYNFLOW_METHODS, published_table, synflow_section)
from prunelab.pruning.scores import SCORES

REFERENCES_MD = Path(__file__).resolve().parents[1] / "docs" / "references.md"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def _series():
    for dataset, archs in SYNFLOW_2020.items():
        for arch, methods in archs.items():
            for method, points in methods.items():
                yield dataset, arch, method, points


def test_every_method_has_the_same_ascending_compressions_and_percentages():
    assert SYNFLOW_2020["cifar10"].keys() == {"vgg16_bn"}
    for dataset, arch, method, points in _series():
        compressions = [c for c, _, _ in points]
        assert compressions == list(SYNFLOW_COMPRESSIONS), (dataset, arch, method)
        assert compressions == sorted(compressions) and compressions[0] == 1 and compressions[-1] == 1000
        assert all(0 <= mean <= 100 and std >= 0 for _, mean, std in points), (dataset, arch, method)


def test_method_names_are_prunelabs():
    assert list(SYNFLOW_METHODS.values()) == ["random", "magnitude", "snip", "grasp", "synflow"]
    assert set(SYNFLOW_METHODS.values()) <= set(SCORES.names())
    for _, _, method, _ in _series():
        assert method in SYNFLOW_METHODS.values()


@pytest.mark.parametrize("method, compression, mean, std", [
    # Means / sample stds of the 3 seeds in cifar10_lottery_vgg16_bn-<rand|mag|cs|grasp|sf>.npy.
    ("synflow", 1000, 80.39, 0.09),  # 80.37, 80.32, 80.49
    ("grasp", 1000, 70.93, 1.84),  # 69.25, 70.65, 72.89
    ("grasp", 10, 91.84, 0.19),  # 91.77, 92.05, 91.70
    ("snip", 1000, 76.25, 2.85),  # 78.53, 77.17, 73.06
    ("magnitude", 100, 89.80, 0.12),  # 89.89, 89.84, 89.67
    ("magnitude", 1000, 10.00, 0.00),  # chance: collapsed on every seed
    ("random", 1, 93.53, 0.14),  # 93.58, 93.37, 93.63: dense
])
def test_values_pinned_to_the_files(method, compression, mean, std):
    points = {round(c, 6): (m, s) for c, m, s in SYNFLOW_2020["cifar10"]["vgg16_bn"][method]}
    assert points[compression] == (mean, std)


def test_grasp_matches_the_orientation_table_at_every_listed_compression():
    grasp = [m for _, m, _ in SYNFLOW_2020["cifar10"]["vgg16_bn"]["grasp"]]
    # 1.8x, 3.2x, 5.6x, 10x, 31.6x, 100x, 1000x = columns 1, 2, 3, 4, 6, 8, 12 (10^(k/4)).
    assert [grasp[k] for k in (1, 2, 3, 4, 6, 8, 12)] == [93.12, 93.09, 92.81, 91.84, 90.17, 87.49, 70.93]


def test_section_on_the_published_data_set():
    heading, note, table = synflow_section("vgg16_bn", "cifar10")
    assert heading.startswith("## Published: Synaptic-Flow (Tanaka et al. 2020), VGG16-BN on CIFAR-10")
    assert "mean ± std over 3 seeds" in heading
    assert "on CIFAR-10, this sweep's data set" in note and "not on" not in note
    assert SYNFLOW_COMMIT in note and "cifar10_lottery_vgg16_bn-{rand,mag,cs,grasp,sf}.npy" in note
    lines = table.splitlines()
    assert _cells(lines[0]) == ["compression", "random", "magnitude", "snip", "grasp", "synflow"]
    assert len(lines) == 2 + len(SYNFLOW_COMPRESSIONS)
    assert [_cells(line)[0] for line in lines[2:5]] == ["1x (dense)", "1.78x", "3.16x"]
    assert _cells(lines[-1]) == ["1000x", "10.00 ± 0.00", "10.00 ± 0.00", "76.25 ± 2.85", "70.93 ± 1.84",
                                 "80.39 ± 0.09"]


def test_section_beside_another_data_set_says_the_numbers_are_cifar10():
    heading, note, table = synflow_section("vgg16_bn", "fashion-mnist")
    assert "VGG16-BN on CIFAR-10" in heading
    assert "on CIFAR-10, not on this sweep's Fashion-MNIST" in note
    assert table == published_table("cifar10", "vgg16_bn")


@pytest.mark.parametrize("arch", ["resnet20", "vgg16", "vgg19_bn", "lenet300_100"])
def test_no_section_for_an_architecture_without_published_data(arch):
    assert synflow_section(arch, "cifar10") == []


def test_docs_references_has_the_same_table():
    text = REFERENCES_MD.read_text()
    assert SYNFLOW_COMMIT in text
    for line in published_table("cifar10", "vgg16_bn").splitlines()[2:]:
        assert f"| {' | '.join(_cells(line))} |" in text, line
