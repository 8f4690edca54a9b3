"""Sparse kernels (prunelab/kernels/): the CSR modules give the dense layers' outputs, the per-layer choice
is recorded, a wrong kernel is an error, `test` writes the records into metrics.json and `report` shows
them, and [test] kernels refuses a bad name in one line. No test asserts a time."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn as nn

from prunelab import paths
from prunelab.atomic import load_json
from prunelab.cli import run
from prunelab.kernels.catalog import CSR, KERNELS, MAX_DENSITY, SEMI_STRUCTURED, applicable, layers, swapped
from prunelab.kernels.layers import CsrConv2d, CsrLinear, SemiStructuredLinear
from prunelab.kernels.measure import TOLERANCE, KernelMismatch, check, measure
from prunelab.models import build
from prunelab.pruning.activations import attach_input_masks
from prunelab.stages.test import freshness, sparse_kernels

from conftest import experiment

FP32 = TOLERANCE[torch.float32]


def pruned(module: nn.Module, density: float, seed: int = 0) -> nn.Module:
    """Every conv/linear weight of `module` kept at random with probability `density`, the rest exactly 0."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.weight.mul_(torch.rand(layer.weight.shape, generator=generator) < density)
    return module.eval()


def close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Within the kernels' fp32 tolerance (relative to the largest value, as measure.check compares)."""
    return float((got - expected).abs().max()) <= FP32 * max(1.0, float(expected.abs().max()))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 50), (7, 50), (3, 4, 50)])
def test_csr_linear_gives_the_dense_outputs(bias, shape):
    torch.manual_seed(0)
    layer = pruned(nn.Linear(50, 20, bias=bias), 0.2)
    x = torch.randn(*shape)
    with torch.no_grad():
        assert close(CsrLinear(layer)(x), layer(x))


@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 1), (3, 2, 0), (5, 1, 2), ((3, 1), (2, 1), (1, 0))])
def test_csr_conv_gives_the_dense_outputs(kernel, stride, padding):
    torch.manual_seed(0)
    layer = pruned(nn.Conv2d(6, 8, kernel, stride=stride, padding=padding), 0.15)
    x = torch.randn(3, 6, 11, 9)
    with torch.no_grad():
        got, expected = CsrConv2d(layer)(x), layer(x)
    assert got.shape == expected.shape and close(got, expected)


@pytest.mark.parametrize("arch, shape", [("lenet300_100", (1, 28, 28)), ("lenet5", (1, 28, 28)),
                                         ("vgg11", (3, 32, 32))])
def test_every_layer_on_csr_gives_the_dense_model_outputs(arch, shape):
    torch.manual_seed(0)
    model = pruned(build(arch, in_channels=shape[0], image_size=shape[1]), 0.1)
    taken, left = layers(model, KERNELS[CSR])
    assert left == {} and len(taken) == sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    x = torch.randn(4, *shape)
    with torch.no_grad():
        assert close(swapped(model, KERNELS[CSR], list(taken))(x), model(x))


def test_input_masks_are_folded_into_the_csr_weights():
    torch.manual_seed(0)
    model = pruned(build("lenet5"), 0.3)
    attach_input_masks(model, {"conv2": torch.tensor([True, False, True, True, False, True]),
                               "fc2": torch.rand(120) < 0.5})
    fast = swapped(model, KERNELS[CSR], ["conv2", "fc2"])
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        assert close(fast(x), model(x))
    assert fast.conv2.weight.to_dense().reshape(16, 6, 25)[:, [1, 4]].count_nonzero() == 0  # masked channels gone


def test_layers_the_kernel_cannot_take_are_named_with_the_reason():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.Conv2d(8, 8, 3, dilation=2), nn.Conv2d(8, 8, 1),
                          nn.Flatten(), nn.Linear(8, 4))
    pruned(model, 0.1)
    with torch.no_grad():
        model[4].weight.fill_(1.0)  # a dense layer
    taken, left = layers(model, KERNELS[CSR])
    assert list(taken) == ["2"]
    assert left["0"] == "grouped convolution" and left["1"] == "dilated convolution"
    assert left["4"] == f"density 100% > {MAX_DENSITY:.0%}: not timed"
    semi_taken, semi_left = layers(model, KERNELS[SEMI_STRUCTURED])
    assert semi_taken == {} and semi_left["2"] == "linear layers only"


def _loader(shape, batches=2, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, *shape, generator=generator), torch.randint(0, 10, (size,), generator=generator))
            for _ in range(batches)]


def test_measure_records_the_choice_per_layer_and_batch_size_and_checks_the_outputs():
    torch.manual_seed(0)
    model = pruned(build("lenet300_100"), 1 / 12)
    batches = {1: torch.randn(1, 1, 28, 28), 8: torch.randn(8, 1, 28, 28)}
    record = measure(model, KERNELS[CSR], batches, [torch.device("cpu")], _loader((1, 28, 28)), repeats=2, warmup=0)
    assert record["ineligible"] == {}
    timings = record["latency"]["devices"]["cpu"]
    assert set(timings) == {"1", "8"}
    for size, timing in timings.items():
        assert timing["batch_size"] == int(size)
        assert timing["speedup"] == pytest.approx(timing["dense_ms_per_batch"] / timing["ms_per_batch"])
        assert list(timing["layers"]) == ["fc1", "fc2", "fc3"]
        for row in timing["layers"].values():
            assert row["kernel"] in ("csr", "dense") and row["dense_ms"] > 0 and row["csr_ms"] > 0
            assert (row["kernel"] == "csr") == (row["csr_ms"] < row["dense_ms"])
            assert row["density"] == pytest.approx(1 / 12, abs=0.03)
    check_record = record["latency"]["check"]
    chosen = sorted({layer for t in timings.values() for layer, row in t["layers"].items() if row["kernel"] == "csr"})
    assert sorted(check_record["layers"]) == chosen
    if chosen:
        assert check_record["images"] == 32 and check_record["tolerance"] == FP32
        assert check_record["accuracy"] == check_record["dense_accuracy"]
        assert check_record["max_relative_difference"] <= FP32


class _WrongBias(CsrLinear):
    def forward(self, x):
        return super().forward(x) + 0.1


def test_outputs_off_by_more_than_the_tolerance_are_an_error(monkeypatch):
    torch.manual_seed(0)
    model = pruned(build("lenet300_100"), 0.1)
    wrong = KERNELS[CSR].__class__(**{**KERNELS[CSR].__dict__, "build": lambda m: _WrongBias(m)})
    with pytest.raises(KernelMismatch, match="on csr kernels: logits differ from dense by .* over the tolerance"):
        check(model, wrong, ["fc3"], _loader((1, 28, 28)), torch.device("cpu"))


def test_a_mismatch_stops_test_with_one_line_naming_the_key(tiny_config, capsys, monkeypatch):
    path = tiny_config(train={"epochs": 1}, prune={"iterations": 1})
    for task in ("get_dataset", "train", "prune"):
        assert run(task, [str(path)]) == 0

    def mismatch(*args, **kwargs):
        raise KernelMismatch("on csr kernels: logits differ from dense by 0.1, over the tolerance 0.0001")

    monkeypatch.setattr(importlib.import_module("prunelab.stages.test"), "measure", mismatch)  # the module
    capsys.readouterr()
    assert run("test", [str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{path}: test.kernels: the pruned model on csr kernels: logits differ" in lines[0]
    assert not paths.metrics(experiment(path)).exists()  # no number written


def test_semi_structured_is_left_out_without_cuda(tiny_config):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert applicable(torch.device("cpu")) == [CSR]
    assert sparse_kernels(experiment(tiny_config())) == [CSR]
    assert sparse_kernels(experiment(tiny_config(test={"kernels": ["dense", "semi_structured"]}))) == [SEMI_STRUCTURED]
    record = measure(pruned(build("lenet300_100"), 0.5), KERNELS[SEMI_STRUCTURED], {1: torch.randn(1, 1, 28, 28)},
                     [torch.device("cpu")], [], repeats=1, warmup=0)
    assert record == {"skipped": "needs CUDA (2:4 sparse tensor cores)"}


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 0),
                    reason="semi-structured sparsity needs a CUDA GPU of compute capability 8.0+")
def test_semi_structured_linear_gives_the_dense_outputs_on_cuda():
    torch.manual_seed(0)
    layer = nn.Linear(128, 64).cuda().half()
    with torch.no_grad():  # 2:4: the two largest of every 4 consecutive inputs
        groups = layer.weight.view(64, -1, 4)
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.abs().topk(2, dim=2).indices, True)
        layer.weight.mul_(keep.view(64, 128))
    x = torch.randn(32, 128, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        got, expected = SemiStructuredLinear(layer, torch.float16)(x).float(), layer(x).float()
    assert float((got - expected).abs().max()) <= TOLERANCE[torch.float16] * max(1.0, float(expected.abs().max()))


def test_test_writes_the_kernel_records_and_report_shows_them(tiny_config, capsys):
    path = tiny_config(train={"epochs": 1}, test={"latency_batch_sizes": [1, 32], "latency_repeats": 2})
    exp = experiment(path)
    assert "kernels" not in freshness(exp, {}, {})["test"]  # not given: metrics.json from before stays current
    for task in ("get_dataset", "train", "prune", "test", "report"):
        assert run(task, [str(path)]) == 0
    metrics = load_json(paths.metrics(exp))
    for key in ("accuracy", "loss", "latency", "compression", "theoretical_speedup"):  # today's fields stay
        assert key in metrics["pruned"] and key in metrics["dense"]
    assert "sparse_kernels" not in metrics["dense"]
    kernels = metrics["pruned"]["sparse_kernels"]
    assert list(kernels) == sparse_kernels(exp)
    timings = kernels["csr"]["latency"]["devices"]["cpu"]
    assert set(timings) == {"1", "32"}
    assert all(set(t["layers"]) == {"fc1", "fc2"} for t in timings.values())  # the classifier is not pruned:
    assert kernels["csr"]["ineligible"] == {"fc3": "density 100% > 50%: not timed"}  # it stays dense
    assert {"speedup", "ms_per_batch", "dense_ms_per_batch"} <= set(timings["32"])
    output = capsys.readouterr().out
    assert "pruned, csr kernels: measured speedup" in output
    report = paths.report(exp).read_text()
    assert "## Measured speed with sparse kernels" in report
    assert "Per-layer kernel choice, pruned model, csr:" in report and "| fc1 " in report
    assert "measured speedup with csr kernels (CPU):" in output


def test_kernels_dense_only_measures_no_sparse_kernel(tiny_config):
    exp = experiment(tiny_config(test={"kernels": ["dense"]}))
    assert sparse_kernels(exp) == [] and freshness(exp, {}, {})["test"]["kernels"] == ["dense"]


@pytest.mark.parametrize("kernels, key, words", [
    (["dense", "cssr"], "test.kernels.1", "'dense', 'csr' or 'semi_structured'"),
    (["csr", "csr"], "test.kernels", "each kernel once"),
    ("csr", "test.kernels", "valid list"),
])
def test_a_bad_kernels_value_is_one_line_naming_the_key(tiny_config, capsys, kernels, key, words):
    path = tiny_config(test={"kernels": kernels})
    assert run("test", [str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and f": {key}:" in lines[0] and words in lines[0], lines


def test_the_bench_section_runs_alone_at_toy_size(monkeypatch):
    from prunelab import bench, bench_kernels

    assert bench.ONLY["sparse_kernels"] is bench_kernels.kernels_benchmark  # `bench --only sparse_kernels`
    monkeypatch.setattr(bench_kernels, "_models", lambda: [("LeNet-300-100 at 60x", "1/60", "lenet300_100", 1 / 60,
                                                            True, (1, 28, 28))])
    monkeypatch.setattr(bench_kernels, "REPEATS", {"lenet300_100": 2})
    monkeypatch.setattr(bench_kernels, "SIZES", (1, 8))
    sections = bench_kernels.kernels_benchmark()
    assert len(sections) == (2 if torch.cuda.is_available() else 1)
    title, rows = sections[0]
    assert title.startswith("Sparse kernels: pruned models on the CPU")
    assert [(row["batch"], row["kernel"]) for row in rows] == [
        (1, "csr"), (8, "csr"), (1, "exported (model.pt2)"), (8, "exported (model.pt2)")]
    assert len({tuple(row) for row in rows}) == 1  # the same keys in every row: one table


def test_the_report_section_names_skipped_kernels_and_layers_left_dense():
    from prunelab.report.kernels import TITLE, section

    assert section({"pruned": {"accuracy": 98.0}}) == []  # made before kernels were measured: no section
    measured = {"torch_threads": 1, "pruned": {"theoretical_speedup": 12.0, "sparse_kernels": {
        "csr": {"ineligible": {"fc3": "density 74% > 50%: not timed"}},
        "semi_structured": {"skipped": "needs CUDA (2:4 sparse tensor cores)"}}}}
    text = "\n\n".join(section(measured))
    assert text.startswith(TITLE) and "1 torch thread" in text
    assert "pruned, csr: every layer stays dense (fc3: density 74% > 50%: not timed)." in text
    assert "pruned, semi_structured: not measured (needs CUDA (2:4 sparse tensor cores))." in text
