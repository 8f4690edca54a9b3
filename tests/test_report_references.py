"""Published references only beside runs of the same architecture and way of pruning, always with their
data set; the sweep reports' references and terminal lines."""

from __future__ import annotations

import pytest

from prunelab import config, paths
from prunelab.errors import UserError
from prunelab.families.at_init.sweep_cells import Cell
from prunelab.families.at_init.sweep_report import published_section, terminal_lines
from prunelab.families.deephoyer import frontier_report
from prunelab.families.deephoyer.frontier import DECAY_KEY, KIND_KEY
from prunelab.families.filters.report import counts_table
from prunelab.report import records, references
from prunelab.report.baseline import compare
from prunelab.report.experiment import density_figure, flops_table, parameters_table, size_table
from prunelab.report.replicates import summary_table as over_seeds_table
from prunelab.report.summary import summary_table

from test_report_summary import entry

MAGNITUDE = {"sparsity": 0.9}
GROUP_HS = {"method": "threshold", "std_ratio": 0.25, "granularity": "structure"}
FILTERS = {"granularity": "filter", "filters": {"ratio": 0.3}}
AT_INIT = {"method": "magnitude", "start": "init", "sparsity": 0.9}


def experiment(arch: str, prune: dict, dataset: str = "fashion-mnist") -> config.Experiment:
    return config.parse({"name": "x", "data": {"dataset": dataset}, "model": {"arch": arch}, "prune": prune}, "x.toml")


@pytest.mark.parametrize("arch, prune, works", [
    ("lenet300_100", MAGNITUDE, [references.HAN, references.NEURAL_PRUNING]),
    ("lenet5_caffe", MAGNITUDE, [references.HAN]),
    ("lenet5", MAGNITUDE, [references.NEURAL_PRUNING]),  # 6-16-120-84: not Han's LeNet-5
    ("lenet5_caffe", GROUP_HS, []),  # DeepHoyer's Group-HS: another way of pruning
    ("lenet300_100", {"method": "threshold", "std_ratio": 0.25}, []),
    ("vgg11_bn", FILTERS, []),
    ("vgg16_bn", MAGNITUDE, []),  # Han's VGG-16 is on ImageNet, not in the table
    ("lenet300_100", AT_INIT, []),  # magnitude at initialization is not Han's method
])
def test_references_apply_only_to_their_architecture_and_method(arch, prune, works):
    assert [ref.work for ref in references.applicable(experiment(arch, prune))] == works


def test_named_records_stand_beside_any_way_of_pruning_of_their_architecture():
    def with_records(arch: str, prune: dict, names: list[str]) -> config.Experiment:
        return config.parse({"name": "x", "data": {"dataset": "mnist"}, "model": {"arch": arch}, "prune": prune,
                             "report": {"references": names}}, "x.toml")

    threshold = with_records("lenet300_100", {"method": "threshold", "threshold": 0.03}, ["sparse_vd"])
    assert [ref.label for ref in references.applicable(threshold)] == ["Sparse VD (Molchanov et al. 2017), MNIST"]
    magnitude = with_records("lenet5_caffe", MAGNITUDE, ["sparse_vd", "bayesian_compression"])
    assert [ref.work for ref in references.applicable(magnitude)] == [
        references.HAN, records.SPARSE_VD, records.BAYESIAN_COMPRESSION]
    with pytest.raises(UserError, match="x.toml.*report.references.*'bayesian_compression' has no published result "
                                        "for arch 'lenet300_100' \\(it has: lenet5_caffe\\)"):
        with_records("lenet300_100", MAGNITUDE, ["bayesian_compression"])
    with pytest.raises(UserError, match="report.references"):
        with_records("lenet5_caffe", MAGNITUDE, ["deep_vd"])
    with pytest.raises(UserError, match="report.references: a \\[sweep\\] report does not show them"):
        config.parse({"name": "x", "model": {"arch": "lenet5_caffe"}, "report": {"references": ["sparse_vd"]},
                      "sweep": {"kind": "regularizer", "grid": {"seed": [0]}}}, "x.toml")


def test_a_record_without_a_dense_accuracy_has_one_row_and_its_storage():
    exp = experiment("lenet5_caffe", MAGNITUDE, dataset="mnist")
    bayesian = records.RECORDS[records.BAYESIAN_COMPRESSION_KEY]["lenet5_caffe"]
    compared = compare(exp, {"dense": entry(99.6), "pruned": entry(99.3, nonzero=1_437)})
    rows = [line for line in summary_table(compared, [bayesian]).splitlines() if "Bayesian" in line]
    assert len(rows) == 1 and "BC-GHS), MNIST: pruned" in rows[0] and "| 156x " in rows[0]
    found = {"pruned_top1": {"label": "pruned", "values": {"0": 99.3}, "mean": 99.3, "std": None},
             "change": {"label": "", "values": {"0": -0.3}, "mean": -0.3, "std": None},
             "storage": {"label": "", "values": {"0": 500.0}, "mean": 500.0, "std": None}}
    row = [line for line in over_seeds_table(found, [bayesian]).splitlines() if "Bayesian" in line][0]
    assert [cell.strip() for cell in row.strip("|").split("|")][1:] == ["99.00", "-", "419.0x"]


def _layers(names: list[str]) -> tuple[list[dict], list[dict]]:
    layer = {"kind": "Linear", "weight_shape": (10, 10), "params": 110, "weight_params": 100, "dense_bytes": 440,
             "sparse_bytes": 100, "flops": 100}
    dense = [{**layer, "name": n, "nonzero": 110, "weight_nonzero": 100, "effective_flops": 100} for n in names]
    pruned = [{**layer, "name": n, "nonzero": 20, "weight_nonzero": 10, "effective_flops": 10} for n in names]
    return dense, pruned


def test_han_rows_and_columns_say_mnist_and_the_data_set_difference():
    exp = experiment("lenet300_100", MAGNITUDE)
    published = references.applicable(exp)
    by_layer = references.per_layer(published)
    assert [ref.label for ref in by_layer] == ["Han et al. 2015, MNIST",
                                               "neural-pruning reproduction (VioletsOleander), MNIST"]
    han = by_layer[0]
    compared = compare(exp, {"dense": entry(90.37), "pruned": entry(90.24, nonzero=22_183)})
    summary = summary_table(compared, published)
    assert "| Han et al. 2015, MNIST: pruned" in summary
    assert "| neural-pruning reproduction (VioletsOleander), MNIST: pruned" in summary and "seed" not in summary
    note = references.dataset_note(published, exp.data.dataset)
    assert "on MNIST, not on this run's Fashion-MNIST" in note and "VioletsOleander/neural-pruning" in note
    assert "this run's data set" in references.dataset_note(published, "mnist")
    dense, pruned = _layers(["fc1", "fc2", "fc3"])
    header = parameters_table(dense, pruned, by_layer).splitlines()[0]
    assert "Han et al. 2015, MNIST: kept (%)" in header and "(VioletsOleander), MNIST: kept (%)" in header
    total = parameters_table(dense, pruned, by_layer).splitlines()[-1]
    assert total.replace(" ", "").endswith("|8|12.2|")  # Han's 8% and the reproduction's 12.2% of all weights
    flops = flops_table(dense, pruned, by_layer)
    assert "Han et al. 2015 kept 8% of the FLOPs" in flops and "(VioletsOleander) kept 12.1% of the FLOPs" in flops
    # The reproduction's size table: 1066.44 KB -> 129.84 KB = 8.21x.
    assert "1066.44 KB -> 129.84 KB (8.21x;" in size_table(dense, pruned, by_layer)
    legend = density_figure(dense, pruned, "lenet300_100", "fashion-mnist", han).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["this run, Fashion-MNIST", "Han et al. 2015, MNIST"]


def test_no_han_column_or_sentence_where_it_does_not_apply():
    dense, pruned = _layers(["conv1", "conv2", "fc1", "fc2", "fc3"])
    assert "Han" not in parameters_table(dense, pruned) and "Han" not in flops_table(dense, pruned)
    compared = compare(experiment("lenet5", MAGNITUDE), {"dense": entry(91.36), "pruned": entry(91.0, 41_652)})
    assert "Han" not in summary_table(compared, references.applicable(experiment("lenet5", MAGNITUDE)))


def test_li_2017_row_names_cifar10_and_the_other_data_set():
    measured = {"dense": entry(89.88), "pruned": entry(89.80, nonzero=130_000)}
    text = counts_table(measured, "vgg16_bn", "fashion-mnist")
    assert "Li et al. 2017, VGG-16 -> VGG-16-A, CIFAR-10" in text and "not on this run's Fashion-MNIST" in text
    assert "not on this run" not in counts_table(measured, "vgg16_bn", "cifar10")
    assert "Li et al." not in counts_table(measured, "vgg11_bn", "fashion-mnist")


def test_grasp_table_only_beside_a_vgg19_sweep():
    assert published_section("resnet20", "fashion-mnist") == []
    assert published_section("vgg16_bn", "cifar10") == []
    heading, body = published_section("vgg19_bn", "fashion-mnist")
    assert "VGG19 on CIFAR-10" in heading and "SNIP top-1 (%), CIFAR-10" in body
    assert "not on this sweep's Fashion-MNIST" in body
    assert "not on this sweep" not in published_section("vgg19", "cifar10")[1]


# ------------------------------------------------------------------ sweep reports on the terminal


def test_at_init_sweep_terminal_lines_fit_80_columns():
    exp = experiment("resnet20", {"method": "random", "start": "init", "sparsity": 0.9})
    cells = [Cell(f"{m}-{c}-{s}", exp, m, c, s, "plain", {"accuracy": 70.0 + s}, {})
             for m in ("random", "magnitude (after 1 ep)", "snip", "grasp", "synflow") for c in (10.0, 100.0)
             for s in (0, 1)]
    lines = terminal_lines(exp, cells)
    assert all(len(line) <= 80 for line in lines)
    assert lines[1] == "  20/20 cells measured" and "top-1 (%) at 100x" in lines[2] and "synflow 70.50" in "".join(lines)


def test_frontier_prints_a_few_short_lines_and_the_report_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    raw = {"name": "frontier", "results_root": "results", "data": {"dataset": "fashion-mnist"},
           "model": {"arch": "lenet300_100"}, "train": {"regularizer": {"kind": "l1", "decay": 1e-4}},
           "prune": {"method": "threshold", "std_ratio": 0.25},
           "sweep": {"kind": "regularizer", "grid": {"seed": [0]}, "variants": [{}]}}
    exp = config.parse(raw, "frontier.toml")
    rows = []
    for kind, decay, accuracy, nonzero in (("l1", 1e-4, 89.0, 100), ("hoyer_square", 1e-4, 89.0, 50)):
        metrics = {"dense": {"accuracy": 90.0}, "pruned": entry(accuracy, nonzero=nonzero) | {"weights": 1000}}
        rows.append({"cell": f"{kind}-{decay:g}", "overrides": {KIND_KEY: kind, DECAY_KEY: decay}, "metrics": metrics})
    frontier_report.write_report(exp, {"cells": rows}, {})
    out = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in out) and len(out) <= 8
    assert out[-1].endswith("results/frontier/report.md") and "L1 at equal top-1: yes" in "\n".join(out)
    report = paths.report(exp).read_text()
    assert "2 cells (regularizer x decay)" in report and "1 L1 point" in report and "point(s)" not in report
