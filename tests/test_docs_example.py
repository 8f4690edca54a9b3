"""docs/your-model.md runs as written: the network and config it shows are the files in docs/examples/,
its reproduce commands run that config (on synthetic MNIST-format files, a few hundred images, through
documented --set keys only), and its Python block runs unchanged."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import torch

from prunelab import api, config, paths
from prunelab.cli import run

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "your-model.md"
EXAMPLES = REPO / "docs" / "examples"
# Short runs of the example config: data subsets, one latency batch, no figures (docs/config.md's keys).
FAST = ["data.train_subset=300", "data.test_subset=200", "data.batch_size=100", "data.test_batch_size=200",
        "report.plots=false", "test.latency_batch_sizes=[1]", "test.latency_repeats=1", "test.latency_warmup=0",
        "device=cpu"]


def _blocks(language: str) -> list[str]:
    return [body for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)
            if lang == language]


def _commands() -> list[tuple[dict[str, str], list[str]]]:
    """(environment assignments, words) of each command line in the page's untyped blocks."""
    found = []
    for body in _blocks(""):
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            env = {}
            while words and re.match(r"^[A-Z_]+=", words[0]):
                key, value = words.pop(0).split("=", 1)
                env[key] = value
            found.append((env, words))
    return found


@pytest.fixture
def example_on_path(monkeypatch, tmp_path):
    """PYTHONPATH as the page sets it (sys.path, where the import-path arch looks); a scratch working directory."""
    (pythonpath,) = {env["PYTHONPATH"] for env, _ in _commands()}
    monkeypatch.syspath_prepend(str(REPO / pythonpath))
    monkeypatch.chdir(tmp_path)
    yield
    sys.modules.pop("my_cnn", None)


def test_the_page_shows_the_example_files():
    assert _blocks("python")[0] == (EXAMPLES / "my_cnn.py").read_text()
    assert _blocks("toml") == [(EXAMPLES / "my_cnn.toml").read_text()]


def test_the_reproduce_commands_run_the_example(example_on_path, synthetic_source, tmp_path, capsys):
    commands = _commands()
    assert [words for _, words in commands] == [["pixi", "r", "reproduce", "docs/examples/my_cnn.toml"],
                                                ["python", "tasks/reproduce.py", "docs/examples/my_cnn.toml"]]
    assert (REPO / "tasks" / "reproduce.py").is_file() and "reproduce" in (REPO / "pixi.toml").read_text()
    overrides = [f"data.source={synthetic_source}", f"data.root={tmp_path / 'dataset'}",
                 f"results_root={tmp_path / 'runs'}", *FAST]
    arguments = [str(REPO / "docs/examples/my_cnn.toml"), *[part for item in overrides for part in ("--set", item)]]
    assert run("reproduce", arguments) == 0, capsys.readouterr().err
    exp = config.load(arguments[0], overrides)
    report = paths.report(exp).read_text()
    per_layer = report.split("## Parameters per layer\n", 1)[1].split("\n## ", 1)[0]
    assert [row.split("|")[1].strip() for row in per_layer.strip().splitlines()[2:-1]] == ["conv1", "conv2", "fc"]
    # The run's compressed.bin loads through the API into the page's network.
    my_cnn = sys.modules["my_cnn"]
    model = api.load_compressed(paths.compressed(exp), my_cnn.small_cnn(in_channels=1, num_classes=10, image_size=28))
    for weight in (model.conv1.weight, model.conv2.weight, model.fc.weight):  # 10x, layer by layer
        assert int(weight.count_nonzero()) == round(0.1 * weight.numel())


def test_the_python_block_runs_as_written(example_on_path, tmp_path, capsys):
    namespace: dict = {"__name__": "your_model_example"}
    exec(compile(_blocks("python")[-1], str(DOC), "exec"), namespace)
    model, masks = namespace["model"], namespace["masks"]
    weights = dict(model.named_parameters())
    assert sum(int(m.sum()) for m in masks.masks.values()) == round(0.1 * sum(m.numel() for m in masks.masks.values()))
    assert all(not weights[name].detach()[~mask].any() for name, mask in masks.masks.items())  # held through training
    assert "## Parameters per layer" in capsys.readouterr().out
    restored = namespace["restored"]
    assert (tmp_path / "my_cnn.bin").is_file()
    assert all(torch.equal(a, b) for a, b in zip(restored.state_dict().values(), model.state_dict().values()))
    smaller = namespace["smaller"]
    assert (smaller.conv1.out_channels, smaller.conv2.out_channels, smaller.fc.in_features) == (8, 16, 16 * 7 * 7)
