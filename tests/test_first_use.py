"""First use: thread policy and determinism, integrity digests, provenance, hints, publish, file modes."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
import torch

from prunelab import config, paths
from prunelab.atomic import load_json, load_torch, write_json
from prunelab.cli import run
from prunelab.integrity import digest, seal
from prunelab.stages import STAGES

from conftest import experiment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def _weights(path) -> dict:
    return load_torch(path)["model"]


def _train(path, *args: str) -> int:
    assert run("get_dataset", [str(path), *args]) == 0
    return run("train", [str(path), *args])


@pytest.mark.parametrize("threads", [1, 2])
def test_two_runs_at_the_same_thread_count_are_bit_identical(tiny_config, threads):
    path = tiny_config(train={"epochs": 1})
    first, second = (experiment(path, f'results_root="{path.parent / name}"') for name in ("a", "b"))
    for exp in (first, second):
        assert _train(path, "--set", f'results_root="{paths.run_dir(exp).parent}"', "--threads", str(threads)) == 0
    a, b = _weights(paths.dense(first)), _weights(paths.dense(second))
    assert all(torch.equal(a[key], b[key]) for key in a)
    made_by = load_torch(paths.dense(first))["made_by"]
    assert made_by["threads"] == threads and f"--threads {threads}" in made_by["command"]
    assert made_by["torch"] == str(torch.__version__) and made_by["cpu_capability"]


def test_threads_default_is_the_configs(tiny_config):
    path = tiny_config(train={"epochs": 1})
    torch.set_num_threads(2)
    assert _train(path) == 0
    assert load_torch(paths.dense(experiment(path)))["made_by"]["threads"] == 1
    assert torch.get_num_threads() == 1


def test_training_state_is_removed_once_dense_is_written(tiny_config):
    exp = experiment(tiny_config(train={"epochs": 1}))
    assert _train(exp.path) == 0
    assert paths.dense(exp).is_file() and not paths.train_state(exp).exists()


def _damage(path, offset_fraction: float = 0.5, count: int = 640) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * offset_fraction)
    data[start:start + count] = bytes(count)  # zeros over the middle of the file
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_is_refused_with_the_command_that_remakes_it(tiny_config, capsys):
    path = tiny_config(train={"epochs": 1})
    exp = experiment(path)
    assert _train(path) == 0
    _damage(paths.dense(exp))
    capsys.readouterr()
    assert run("prune", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dense.pt" in err
    assert err.endswith(f"run `python tasks/train.py {path} --force`")
    assert not paths.pruned(exp).exists()


def test_a_changed_weight_that_still_loads_is_refused(tiny_config, capsys):
    """torch.load does not check tensor CRCs: the digest is what catches a changed value."""
    path = tiny_config(train={"epochs": 1})
    exp = experiment(path)
    assert _train(path) == 0
    checkpoint = torch.load(paths.dense(exp), weights_only=True)
    checkpoint["model"]["fc1.weight"][0, 0] += 1e-3
    torch.save(checkpoint, paths.dense(exp))  # loads fine, digest no longer matches
    capsys.readouterr()
    assert run("prune", [str(path)]) == 2
    assert "dense.pt: damaged" in capsys.readouterr().err


def test_a_retrained_dense_model_makes_the_pruned_one_stale(tiny_config, capsys):
    """Freshness follows the inputs' digests, not only the config: new dense weights -> prune again."""
    path = tiny_config(train={"epochs": 1})
    assert run("reproduce", [str(path)]) == 0
    assert run("train", [str(path), "--force", "--threads", "2"]) == 0
    capsys.readouterr()
    assert run("prune", [str(path)]) == 0
    assert "skipping prune" not in capsys.readouterr().out


def test_a_damaged_json_artifact_is_refused(tiny_config, capsys):
    path = tiny_config(train={"epochs": 1})
    exp = experiment(path)
    assert run("reproduce", [str(path)]) == 0
    metrics = json.loads(paths.metrics(exp).read_text())
    metrics["pruned"]["accuracy"] = 99.99  # an edited number: still valid JSON
    paths.metrics(exp).write_text(json.dumps(metrics))
    capsys.readouterr()
    assert run("report", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "metrics.json: damaged" in err and err.endswith(f"`python tasks/test.py {path} --force`")


def test_a_damaged_data_file_is_refused(tiny_config, capsys):
    path = tiny_config(train={"epochs": 1})
    exp = experiment(path)
    assert run("get_dataset", [str(path)]) == 0
    images = next(paths.dataset_dir(exp).glob("train-images*"))
    _damage(images, 0.9, 16)
    capsys.readouterr()
    assert run("train", [str(path)]) == 2
    err = capsys.readouterr().err
    assert images.name in err and "damaged" in err and "get_dataset.py" in err


def test_digest_covers_values_types_and_keys():
    content = {"model": {"w": torch.arange(4.0)}, "log": [{"round": 1, "ok": True}], "name": "x"}
    assert digest(content) == digest(dict(reversed(list(content.items()))))  # key order does not matter
    changed = {**content, "model": {"w": torch.tensor([0.0, 1.0, 2.0, 3.5])}}
    retyped = {**content, "model": {"w": torch.arange(4)}}  # same values as int64
    renamed = {**content, "name": "y"}
    flag = {**content, "log": [{"round": 1, "ok": 1}]}  # True and 1 are different stored values
    assert len({digest(c) for c in (content, changed, retyped, renamed, flag)}) == 5
    assert digest(seal(content)) == digest(content)  # the digest entry itself is not covered


def test_test_stage_freshness_covers_the_test_section(tiny_config, capsys):
    path = tiny_config(train={"epochs": 1})
    exp = experiment(path)
    assert run("reproduce", [str(path)]) == 0
    capsys.readouterr()
    assert run("test", [str(path), "--set", "test.latency_batch_sizes=[1, 32]"]) == 0
    assert "skipping test" not in capsys.readouterr().out
    assert set(load_json(paths.metrics(exp))["pruned"]["latency"]["cpu"]) == {"1", "32"}


def test_hints_keep_the_users_overrides_and_pixi_form(tiny_config, capsys, monkeypatch):
    path = tiny_config(train={"epochs": 1})
    monkeypatch.setenv("PIXI_ENVIRONMENT_NAME", "default")
    assert run("prune", [str(path), "--set", "train.lr=0.2", "--threads", "2"]) == 2
    assert f"run `pixi r train {path} --set train.lr=0.2 --threads 2` first" in capsys.readouterr().err
    monkeypatch.setenv("PIXI_ENVIRONMENT_NAME", "cuda")
    assert run("report", [str(path)]) == 2
    assert f"run `pixi r -e cuda test {path}` first" in capsys.readouterr().err


def test_artifact_modes_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
    write_json(tmp_path / "b.json", {"x": 1})
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o666 & ~previous


def test_each_task_has_its_own_help(capsys):
    with pytest.raises(SystemExit):
        run("prune", ["--help"])
    out = capsys.readouterr().out
    assert "Prune in rounds with fine-tuning" in out and "--threads" in out
    for task, stage in STAGES.items():
        assert stage.__doc__, f"{task}: its --help would have no description"


def _publish_setup(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # publish writes to ./results/<name>
    return tiny_config(train={"epochs": 1}, results_root=str(tmp_path / "runs"))


def test_publish_copies_a_run_made_without_overrides(tiny_config, tmp_path, monkeypatch):
    path = _publish_setup(tiny_config, tmp_path, monkeypatch)
    assert run("reproduce", [str(path)]) == 0
    published = tmp_path / "results" / "tiny"
    assert not published.exists()  # running never touches the published reports
    assert run("publish", [str(path)]) == 0
    names = {p.name for p in published.iterdir()}
    assert {"report.md", "metrics.json", "train_log.csv", "prune_log.csv", "layer_density.png"} <= names
    assert not any(name.endswith(".pt") for name in names)
    assert load_json(published / "metrics.json")["made_by"]["train"]["overrides"] == []


def test_publish_refuses_a_run_made_with_overrides(tiny_config, tmp_path, monkeypatch, capsys):
    path = _publish_setup(tiny_config, tmp_path, monkeypatch)
    assert run("reproduce", [str(path), "--set", "prune.finetune.epochs=2"]) == 0
    exp = experiment(path, "prune.finetune.epochs=2")
    assert load_json(paths.metrics(exp))["made_by"]["prune"]["overrides"] == ["prune.finetune.epochs=2"]
    capsys.readouterr()
    assert run("publish", [str(path), "--set", "prune.finetune.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "prune.finetune.epochs=2" in err and "--allow-overrides" in err
    assert not (tmp_path / "results").exists()
    assert run("publish", [str(path), "--set", "prune.finetune.epochs=2", "--allow-overrides"]) == 0
    assert (tmp_path / "results" / "tiny" / "report.md").is_file()


def test_config_paths_in_errors_are_the_users(tiny_config, capsys):
    """A relative pretrained path that is missing says where it was looked for."""
    path = tiny_config(train={"epochs": 1, "pretrained": "runs/elsewhere/dense.pt"})
    assert _train(path) == 2
    err = capsys.readouterr().err
    assert "train.pretrained: runs/elsewhere/dense.pt not found (relative to the current directory" in err
    assert config.load(path).train.pretrained == "runs/elsewhere/dense.pt"


def test_every_pixi_task_runs_an_existing_task_file_and_passes_arguments_through():
    """No declared `args`: pixi appends `CONFIG --set ... --threads N` to the command as typed."""
    root = Path(__file__).resolve().parent.parent
    tasks = tomllib.loads((root / "pixi.toml").read_text())["tasks"]
    for name, task in tasks.items():
        assert "args" not in task, name
        words = task["cmd"].split()
        if words[:1] == ["python"] and words[1].startswith("tasks/"):
            assert (root / words[1]).is_file(), name
    assert {name.replace("_", "-") for name in STAGES} <= set(tasks)


def test_get_dataset_is_redone_when_data_source_changes(tiny_config, synthetic_source, tmp_path, capsys):
    path = tiny_config()
    assert run("get_dataset", [str(path)]) == 0
    other = tmp_path / "other_source"
    shutil.copytree(synthetic_source, other)
    capsys.readouterr()
    assert run("get_dataset", [str(path), "--set", f'data.source="{other}"']) == 0
    assert "up to date" not in capsys.readouterr().out
    assert load_json(paths.dataset_manifest(experiment(path)))["source"] == str(other)


def test_an_interrupted_task_names_the_command_that_resumes_it(tiny_config, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    path = tiny_config()
    assert run("get_dataset", [str(path)]) == 0
    monkeypatch.setattr(sys.modules["prunelab.stages.train"], "fit", interrupted)  # the module, not the function
    assert run("train", [str(path), "--set", "train.epochs=1"]) == 130
    assert f"`python tasks/train.py {path} --set train.epochs=1` resumes" in capsys.readouterr().err
