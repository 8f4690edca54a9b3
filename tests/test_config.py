"""Bad configs and overrides: one line naming the file and key, exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from prunelab import config
from prunelab.cli import run
from prunelab.config.load import tomllib
from prunelab.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def run_task(capsys, task: str, *argv: str) -> tuple[int, str]:
    code = run(task, list(argv))
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").glob("*.toml")))
def test_checked_in_configs_are_valid(path, monkeypatch):
    monkeypatch.chdir(REPO)
    exp = config.load(path)
    assert exp.name == Path(path).stem


@pytest.mark.parametrize(
    "patch, key, words",
    [
        ({"train": {"epochz": 3}}, "train.epochz", "unknown key; did you mean `train.epochs`?"),
        ({"train": {"epochs": -1}}, "train.epochs", "greater than or equal to 0"),
        ({"train": {"epochs": "ten"}}, "train.epochs", "integer"),
        ({"prune": {"sparsity": 1.3}}, "prune.sparsity", "less than 1"),
        ({"prune": {"sparsity": 0.9, "density": 0.1}}, "prune", "only one of"),
        ({"prune": {"sparsity": None, "compression": 0.5}}, "prune.compression", "greater than or equal to 1"),
        ({"model": {"arch": "lenet7"}}, "model", "unknown arch 'lenet7'"),
        ({"data": {"dataset": "imagenet"}}, "data.dataset", "mnist"),
        ({"data": {"augment": ["rotate"]}}, "data.augment.0", "crop"),
        ({"train": {"optimizer": "sgd", "nesterov": True, "momentum": 0.0}}, "train", "nesterov"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, tiny_config, capsys, patch, key, words):
    path = tiny_config(**patch)
    if patch.get("prune", {}).get("sparsity", 0) is None:  # drop the default target to test compression alone
        text = path.read_text().replace("sparsity = null\n", "")
        path.write_text(text)
    code, err = run_task(capsys, "train", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and f": {key}:" in lines[0] and words in lines[0]


def test_missing_config_file(capsys, tmp_path):
    code, err = run_task(capsys, "train", str(tmp_path / "nope.toml"))
    assert code == 2 and err.strip() == f"error: {tmp_path / 'nope.toml'}: config file not found"


def test_invalid_toml(capsys, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    code, err = run_task(capsys, "train", str(path))
    assert code == 2 and "not valid TOML" in err and len(err.strip().splitlines()) == 1


def test_overrides_are_typed_and_checked(tiny_config, capsys):
    path = tiny_config()
    exp = config.load(path, ["train.epochs=7", "train.lr=0.2", "model.arch=lenet5", "data.augment=['flip']"])
    assert (exp.train.epochs, exp.train.lr, exp.model.arch, exp.data.augment) == (7, 0.2, "lenet5", ["flip"])
    code, err = run_task(capsys, "train", str(path), "--set", "train.epochs=-2")  # blamed on the --set, not the file
    assert code == 2 and err.strip() == "error: --set train.epochs=-2: Input should be greater than or equal to 0 (got -2)"
    code, err = run_task(capsys, "train", str(path), "--set", "train.epocs=2")
    assert code == 2 and err.strip() == "error: --set train.epocs=2: unknown key; did you mean `train.epochs`?"
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        config.load(path, ["train.epochs"])


def test_stage_hashes_separate_train_and_prune(tiny_config):
    path = tiny_config()
    base = config.load(path)
    changed_prune = config.load(path, ["prune.sparsity=0.8"])
    changed_train = config.load(path, ["train.lr=0.1"])
    assert base.stage_hash("train") == changed_prune.stage_hash("train")
    assert base.stage_hash("prune") != changed_prune.stage_hash("prune")
    assert base.stage_hash("train") != changed_train.stage_hash("train")


def test_task_file_prints_one_line_without_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[prune]\nsparsity = 1.3\n')
    result = subprocess.run([sys.executable, "tasks/prune.py", str(path)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: prune.sparsity: Input should be less than 1 (got 1.3)"
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_config_reference_is_a_valid_config():
    """docs/config.md's annotated config block must stay loadable, sweep section included."""
    text = (REPO / "docs" / "config.md").read_text()
    block = text.split("```toml", 1)[1].split("```", 1)[0]
    exp = config.parse(tomllib.loads(block), "docs/config.md")
    assert exp.sweep is not None and exp.sweep.kind == "at_init"
    assert exp.prune.target_density() == pytest.approx(1 / 11)
