"""Strict config values: no string or boolean is read as a number or a boolean, no inf or nan,
folders that are files are refused, and a bad config lists every problem, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunelab import config
from prunelab.cli import run
from prunelab.errors import UserError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "strict.toml"
    path.write_text('name = "strict"\n' + text)
    return path


def problems(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(UserError) as raised:
        config.load(path, list(overrides))
    return str(raised.value).splitlines()


@pytest.mark.parametrize(
    "text, key, words",
    [
        ('[train]\nepochs = "30"\n', "train.epochs", "valid integer, not a string (got '30')"),
        ('[train]\nnesterov = "yes"\n', "train.nesterov", "valid boolean, not a string (got 'yes')"),
        ("seed = true\n", "seed", "valid integer, not a boolean (got true)"),
        ('[train]\nlr = "0.1"\n', "train.lr", "valid number, not a string (got '0.1')"),
        ("[train]\nlr = true\n", "train.lr", "valid number, not a boolean (got true)"),
        ("[train]\nlr = inf\n", "train.lr", "finite number (got inf)"),
        ("[train]\nlr = nan\n", "train.lr", "finite number (got nan)"),
        ("[prune.finetune]\nlr = -inf\n", "prune.finetune.lr", "finite number (got -inf)"),
        ("[prune]\nlayer_sparsity = { fc3 = nan }\n", "prune.layer_sparsity.fc3", "finite number"),
        ("threads = true\n", "threads", "valid integer, not a boolean (got true)"),
        ("[data]\nbatch_size = 1.0\n", "data.batch_size", "valid integer"),
        ('[test]\nlatency_batch_sizes = [1, "128"]\n', "test.latency_batch_sizes.1", "valid integer"),
        ('[report]\nplots = 1\n', "report.plots", "valid boolean"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_file_and_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    (line,) = problems(path)  # one problem, one line
    assert line.startswith(f"{path}: {key}: Input should be a ") and words in line


def test_ints_are_taken_where_a_float_is_expected(tmp_path):
    path = write(tmp_path, "[train]\nlr = 1\ngamma = 1\nmilestones = [10, 20]\n"
                           "[prune]\nsparsity = 0\nlayer_sparsity = { fc3 = 0 }\n[prune.finetune]\nlr = 2\n")
    exp = config.load(path)
    assert exp.train.lr == 1.0 and isinstance(exp.train.lr, float)
    assert exp.prune.finetune.lr == 2.0 and exp.prune.layer_sparsity == {"fc3": 0.0}
    assert exp.train.milestones == [10, 20]


def test_every_problem_is_listed_one_per_line(tmp_path):
    path = write(tmp_path, 'seed = "1"\n[train]\nepochs = "30"\nlr = inf\n')
    assert problems(path) == [
        f"{path}: seed: Input should be a valid integer, not a string (got '1')",
        f"{path}: train.epochs: Input should be a valid integer, not a string (got '30')",
        f"{path}: train.lr: Input should be a finite number (got inf)",
    ]


def test_overrides_are_strict_too(tmp_path):
    path = write(tmp_path, "")
    assert config.load(path, ["train.epochs=2", "train.lr=1"]).train.epochs == 2
    (line,) = problems(path, ('train.epochs="30"',))  # named as typed: the file is not where it is fixed
    assert line == """--set 'train.epochs="30"': Input should be a valid integer, not a string (got '30')"""


@pytest.mark.parametrize("key, table", [("results_root", ""), ("data.root", "[data]\n")])
def test_a_folder_that_is_a_file_is_refused(tmp_path, key, table):
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder\n")
    path = write(tmp_path, f'{table}{key.split(".")[-1]} = "{afile}"\n')
    assert problems(path) == [f"{path}: {key}: must be a directory, not a file (got '{afile}')"]
    path = write(tmp_path, f'{table}{key.split(".")[-1]} = "{afile / "sub"}"\n')
    (line,) = problems(path)
    assert line.startswith(f"{path}: {key}: must be a directory, and '{afile}' above it is a file")


def test_a_folder_that_does_not_exist_yet_is_fine(tmp_path):
    path = write(tmp_path, f'results_root = "{tmp_path / "new" / "runs"}"\n')
    assert config.load(path).results_root == str(tmp_path / "new" / "runs")


def test_cli_lists_every_problem_with_exit_status_2_and_no_traceback(tmp_path, capsys):
    path = write(tmp_path, 'seed = true\n[train]\nnesterov = "yes"\n')
    code = run("train", [str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines() == [
        f"error: {path}: seed: Input should be a valid integer, not a boolean (got true)",
        f"{path}: train.nesterov: Input should be a valid boolean, not a string (got 'yes')",
    ]
    assert "Traceback" not in captured.err + captured.out


def test_cli_refuses_a_string_override_and_a_file_as_results_root(tmp_path, capsys):
    path = write(tmp_path, "")
    assert run("train", [str(path), "--set", 'train.epochs="30"']) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        """error: --set 'train.epochs="30"': Input should be a valid integer, not a string (got '30')"""
    ]
    afile = tmp_path / "runs"
    afile.write_text("")
    assert run("train", [str(path), "--set", f'results_root="{afile}"']) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: --set 'results_root=\"{afile}\"': must be a directory, not a file "
                                        f"(got '{afile}')"]
    assert "Traceback" not in err
