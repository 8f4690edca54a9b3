"""The export stage: one tiny config of each family trained, pruned (compressed) and exported; model.pt2
loaded by a fresh Python process that never imports prunelab, its logits compared with the pruned
checkpoint's model (the decoded model for Deep Compression); skip, redo and a missing input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from prunelab import checkpoints, config, exporting, family, paths
from prunelab.atomic import load_json, load_torch, save_torch
from prunelab.cli import run
from prunelab.data.loader import load_splits, make_loaders
from prunelab.errors import UserError

from conftest import tiny_raw, to_toml

# Small and quick: 300 training and 200 test images, one short round, little or no fine-tuning.
DATA = {"train_subset": 300, "test_subset": 200, "test_batch_size": 100}
TRAIN = {"epochs": 1}
FINETUNE = {"epochs": 0}
TEST = {"latency_batch_sizes": [1, 128], "latency_repeats": 1, "latency_warmup": 0}

FAMILIES = {
    "magnitude": dict(prune={"sparsity": 0.9, "iterations": 1, "finetune": FINETUNE}),
    "deephoyer": dict(prune={"method": "threshold", "std_ratio": 1.0, "finetune": FINETUNE}),
    "at_init": dict(prune={"method": "random", "start": "init", "sparsity": 0.9, "iterations": 1,
                           "finetune": FINETUNE}),
    "filters": dict(model={"arch": "lenet5"}, prune={"granularity": "filter", "finetune": FINETUNE,
                                                     "filters": {"criterion": "l1", "ratio": 0.5, "steps": 1}}),
    "compression": dict(prune={"sparsity": 0.9, "iterations": 1, "finetune": FINETUNE},
                        compress={"quantizer": "kmeans", "fc_bits": 4, "fc_index_bits": 3, "finetune": FINETUNE}),
    "mase": dict(model={"arch": "lenet5"}, prune={
        "method": "l1-norm", "granularity": "kernel", "sparsity": 0.5, "iterations": 1, "activation_sparsity": 0.2,
        "activation_method": "l1-norm", "calibration_batches": 1, "finetune": FINETUNE}),
}

# Runs in a new interpreter: torch alone loads and runs the program.
LOADER = """
import sys, torch
torch.set_grad_enabled(False)
program = torch.export.load(sys.argv[1]).module()
images = torch.load(sys.argv[2])
outputs = {"batch": program(images), "one": program(images[:1]),
           "big": program(images.repeat(2, 1, 1, 1)[:128])}
assert not [name for name in sys.modules if name.split(".")[0] == "prunelab"], "prunelab was imported"
torch.save(outputs, sys.argv[3])
"""


def _config(tmp_path, source, name: str):
    """A tiny config whose [prune] table is the family's alone (tiny_raw's sparsity would clash)."""
    sections = dict(FAMILIES[name])
    raw = tiny_raw(tmp_path, source, data=DATA, train=TRAIN, test=TEST, **sections)
    raw["prune"] = sections["prune"]
    path = tmp_path / f"{name}.toml"
    path.write_text(to_toml(raw))
    return path


def _reproduce_and_export(path) -> config.Experiment:
    exp = config.load(path)
    for task in ("get_dataset", *(("train",) if exp.prune.start == "dense" else ()), "prune",
                 *(("compress",) if getattr(exp, "compress", None) is not None else ()), "export"):
        assert run(task, [str(path)]) == 0, task
    return exp


def _images(exp) -> torch.Tensor:
    _, test_loader = make_loaders(exp, load_splits(exp), torch.device("cpu"))
    return next(iter(test_loader))[0]


def _outside_prunelab(exp, images, tmp_path) -> dict:
    """model.pt2's outputs computed by a fresh interpreter that never imports prunelab."""
    torch.save(images, tmp_path / "images.pt")
    subprocess.run([sys.executable, "-c", LOADER, str(paths.exported_model(exp)), str(tmp_path / "images.pt"),
                    str(tmp_path / "outputs.pt")], check=True, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    return torch.load(tmp_path / "outputs.pt")


@torch.no_grad()
def _reference(exp) -> torch.nn.Module:
    """The pruned checkpoint's model, or the model decoded from compressed.bin."""
    extra = family.extra_models(exp)
    if extra:
        return next(iter(extra.values())).build().eval()
    return checkpoints.build_model(exp, load_torch(paths.pruned(exp)), paths.pruned(exp)).eval()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_export_runs_without_prunelab_and_matches_the_pruned_model(name, tmp_path, synthetic_source):
    path = _config(tmp_path, synthetic_source, name)
    exp = _reproduce_and_export(path)
    assert family.of(exp).name == name or name == "compression"
    images = _images(exp)
    outputs = _outside_prunelab(exp, images, tmp_path)
    model = _reference(exp)
    with torch.no_grad():
        expected = model(images)
        big = images.repeat(2, 1, 1, 1)[:128]
        assert (outputs["big"] - model(big)).abs().max() <= exporting.LOGIT_TOLERANCE  # dynamic batch: 128 ...
    assert (outputs["one"] - expected[:1]).abs().max() <= exporting.LOGIT_TOLERANCE  # ... and 1
    assert (outputs["batch"] - expected).abs().max() <= exporting.LOGIT_TOLERANCE
    assert torch.equal(outputs["batch"].argmax(1), expected.argmax(1))

    record = load_json(paths.export_record(exp))
    assert record["inputs"]["pruned"] == load_torch(paths.pruned(exp))["digest"]
    assert record["check"]["passed"] and record["check"]["same_argmax"] and record["batch"]["dimension"] == "dynamic"
    assert record["input"]["shape"] == ["batch", 1, 28, 28]
    assert set(record["latency_cpu"]["exported"]) == {"1", "128"}
    assert record["made_by"]["export"]["command"].startswith("python tasks/export.py")
    assert record["kernels"]["used"] == "dense" and record["kernels"]["why"]
    kind = {"filters": "rebuilt", "compression": "decoded"}.get(name, "pruned")
    assert record["exported"]["model"] == kind, record["exported"]
    if name == "filters":  # physically smaller: fewer parameters than the configured lenet5
        program = torch.export.load(str(paths.exported_model(exp)))
        size = sum(tensor.numel() for tensor in program.state_dict.values())
        assert size < sum(p.numel() for p in checkpoints.build_for(exp).parameters())
    if name == "compression":
        assert "compressed" in record["inputs"] and "against_pruned" in record["check"]
    if name == "mase":  # the activation masks are buffers of the program, applied in its graph
        program = torch.export.load(str(paths.exported_model(exp)))
        assert any(key.endswith("input_mask") for key in program.state_dict)
        assert "input masks on" in record["exported"]["why"]


def test_export_skips_when_current_and_redoes_when_the_pruned_model_changes(tmp_path, synthetic_source, capsys):
    path = _config(tmp_path, synthetic_source, "magnitude")
    exp = _reproduce_and_export(path)
    first = load_json(paths.export_record(exp))
    capsys.readouterr()
    assert run("export", [str(path)]) == 0
    assert "is up to date; skipping export" in capsys.readouterr().out
    pruned = load_torch(paths.pruned(exp))
    pruned.pop("digest")
    pruned["model"]["fc3.weight"] = pruned["model"]["fc3.weight"] * 0.5  # another pruned model, resealed
    save_torch(paths.pruned(exp), pruned)
    assert run("export", [str(path)]) == 0
    assert "up to date" not in capsys.readouterr().out
    second = load_json(paths.export_record(exp))
    assert second["inputs"]["pruned"] != first["inputs"]["pruned"]
    assert second["inputs"]["pruned"] == load_torch(paths.pruned(exp))["digest"]
    paths.exported_model(exp).write_bytes(b"damaged")  # a program that is not the one recorded is made again
    assert run("export", [str(path)]) == 0
    assert "up to date" not in capsys.readouterr().out


def test_export_without_a_pruned_model_is_one_line_naming_the_command(tmp_path, synthetic_source, capsys):
    path = _config(tmp_path, synthetic_source, "magnitude")
    assert run("export", [str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"error: {paths.pruned(config.load(path))}: not found; " \
                                       f"run `python tasks/prune.py {path}` first"


class _FixedBatch(torch.nn.Module):
    """A network written for one batch size (reshape to 4 rows): it cannot take a dynamic batch."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.reshape(4, -1))


class _DataDependent(torch.nn.Module):
    """Control flow on the input's values: nothing to trace."""

    def forward(self, x):
        return x.flatten(1) if x.sum() > 0 else -x.flatten(1)


def test_a_model_without_a_dynamic_batch_is_exported_static_and_says_why():
    traced = exporting.trace(_FixedBatch(), torch.randn(4, 1, 28, 28), "fixed")
    assert traced.batch == "static 4" and traced.why.startswith("a dynamic batch dimension failed (")
    assert exporting.load(exporting.to_bytes(traced.program))(torch.ones(4, 1, 28, 28)).shape == (4, 10)


def test_a_model_torch_export_cannot_trace_is_one_line():
    with pytest.raises(UserError) as refused:
        exporting.trace(_DataDependent(), torch.randn(4, 1, 28, 28), "configs/x.toml: model.arch mine")
    assert str(refused.value).startswith("configs/x.toml: model.arch mine: torch.export cannot trace it (")
    assert "\n" not in str(refused.value)


def test_the_kernel_choice_tries_csr_and_says_why_the_weights_are_stored_dense():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    images = torch.randn(4, 1, 28, 28)
    made = exporting.export_model(model, images, "dense")
    assert (made.kernels, made.why) == ("dense", "no conv/linear weight is zero: nothing for a sparse kernel to skip")
    with torch.no_grad():
        model[1].weight[:, :600] = 0
    made = exporting.export_model(model, images, "sparse", ["dense"])
    assert made.why == "stored dense with 6,000 exact zeros: [test] kernels leaves out csr"
    made = exporting.export_model(model, images, "sparse")
    assert made.why.startswith("stored dense with 6,000 exact zeros: the csr form (csr on 1) does not export with ")
    assert made.kernels == "dense" and made.module is model  # torch 2.13: no CSR matrix products in torch.export
    program = exporting.load(made.data)
    assert exporting.compare(program, model, images)["passed"]


def test_test_times_the_exported_program_after_export_and_not_before(tmp_path, synthetic_source, capsys):
    """`test` times model.pt2 beside the checkpoints once `export` made it from them; metrics.json made
    before the export is stale afterwards; the report's kernel section names the program's time."""
    path = _config(tmp_path, synthetic_source, "magnitude")
    exp = config.load(path)
    for task in ("get_dataset", "train", "prune", "test"):
        assert run(task, [str(path)]) == 0, task
    assert "exported" not in load_json(paths.metrics(exp))
    assert run("export", [str(path)]) == 0 and run("test", [str(path)]) == 0
    metrics = load_json(paths.metrics(exp))
    timed = metrics["exported"]["latency"]["cpu"]
    assert sorted(timed, key=int) == ["1", "128"] and all(t["ms_per_batch"] > 0 for t in timed.values())
    assert metrics["exported"]["model_sha256"] == load_json(paths.export_record(exp))["model_sha256"]
    assert "exported program (model.pt2), CPU:" in capsys.readouterr().out
    assert run("report", [str(path)]) == 0
    assert "The exported program (`model.pt2`, pruned model" in paths.report(exp).read_text()
