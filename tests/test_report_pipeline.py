"""The report stage end to end on the tiny synthetic experiment: a regularized run that starts from
another experiment's dense model reports that model as dense, and the terminal gets a short summary."""

from __future__ import annotations

import json

from prunelab import config, paths
from prunelab.cli import run

from conftest import tiny_raw, to_toml


def _summary_rows(report: str) -> dict[str, list[str]]:
    block = report.split("## Summary\n\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]] for line in block}


def test_pretrained_baseline_and_terminal_summary_end_to_end(tmp_path, synthetic_source, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # paths on the terminal are shown relative to here
    first = tmp_path / "tiny.toml"
    first.write_text(to_toml(tiny_raw(tmp_path, synthetic_source, prune={"iterations": 1})))
    assert run("reproduce", [str(first)]) == 0
    capsys.readouterr()
    assert run("report", [str(first)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in out), out
    assert out[-1].endswith("results/tiny/report.md") and len(out) <= 8
    assert any(line.startswith("  top-1: dense ") and "points vs dense" in line for line in out)
    report = paths.report(config.load(first)).read_text()
    assert "1 torch thread, torch " in report and "1 threads" not in report and "1 rounds" not in report
    made_by = report.split("## How this was made\n\n", 1)[1]
    rows = [line.split("|")[1:4] for line in made_by.splitlines()[2:5]]
    assert [[cell.strip() for cell in row] for row in rows] == [
        [stage, f"`python tasks/reproduce.py {first}`", "none"] for stage in ("train", "prune", "test")]
    assert "Han et al. 2015, MNIST" in report and "neural-pruning reproduction (VioletsOleander), MNIST" in report

    raw = tiny_raw(tmp_path, synthetic_source, name="tiny_hs")
    raw["train"] = {"epochs": 1, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
                    "pretrained": str(paths.dense(config.load(first))),
                    "regularizer": {"kind": "hoyer_square", "decay": 1e-4}}
    raw["prune"] = {"method": "threshold", "std_ratio": 0.25, "finetune": {"epochs": 1, "optimizer": "adam",
                                                                            "lr": 1e-4, "weight_decay": 0.0}}
    second = tmp_path / "tiny_hs.toml"
    second.write_text(to_toml(raw))
    assert run("reproduce", [str(second)]) == 0
    exp = config.load(second)
    measured = json.loads(paths.metrics(exp).read_text())
    assert "pretrained" in measured, "the test stage measures the model train.pretrained names"
    rows = _summary_rows(paths.report(exp).read_text())
    assert rows["dense"][0] == f"{measured['pretrained']['accuracy']:.2f}"
    assert rows["regularized (train.regularizer: hoyer_square, decay 0.0001)"][0] == \
        f"{measured['dense']['accuracy']:.2f}"
    change = measured["pruned"]["accuracy"] - measured["pretrained"]["accuracy"]
    assert rows["pruned"][:2] == [f"{measured['pruned']['accuracy']:.2f}", f"{change:+.2f}"]
    assert "Han" not in paths.report(exp).read_text()  # threshold pruning: not Han et al.'s method
    capsys.readouterr()
    assert run("report", [str(second)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in out), out
    assert f"({change:+.2f} points vs dense)" in out[1] and out[-1].endswith("results/tiny_hs/report.md")


def test_a_pretrained_model_used_as_it_is_says_so_rather_than_nan(tmp_path, synthetic_source, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    first = tmp_path / "tiny.toml"
    first.write_text(to_toml(tiny_raw(tmp_path, synthetic_source, prune={"iterations": 1})))
    assert run("get_dataset", [str(first)]) == 0 and run("train", [str(first)]) == 0
    raw = tiny_raw(tmp_path, synthetic_source, name="tiny_as_is")
    raw["train"] = {"epochs": 0, "pretrained": str(paths.dense(config.load(first)))}
    second = tmp_path / "tiny_as_is.toml"
    second.write_text(to_toml(raw))
    capsys.readouterr()
    assert run("train", [str(second)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "train.pretrained as it is (0 epochs; `test` measures it)" in out and "nan" not in out
