"""Sharded sweeps (`sweep --shard K/N`): the shards partition the grid, a shard runs only its cells and
resumes, and the shard that finishes last (or `report`) merges the same sweep.json a serial sweep writes."""

from __future__ import annotations

import json

import pytest

from conftest import SWEEP, SWEEP_VOLATILE as VOLATILE
from prunelab import config, paths
from prunelab.atomic import load_json
from prunelab.cli import run
from prunelab.stages.sweep import CELL_STAGES
from prunelab.sweep import Shard, all_cells, shard_of

# Five cells: shards of 3 hold 2, 2 and 1 of them. prune.method x prune.sparsity, seed 0.
VARIANTS = [("random", 0.5), ("random", 0.9), ("synflow", 0.5), ("synflow", 0.9), ("magnitude", 0.9)]


@pytest.fixture
def sweep_config(tiny_config):
    path = tiny_config(
        data={"train_subset": 200, "test_subset": 100},
        prune={"method": "random", "start": "init", "scope": "global", "iterations": 1,
               "finetune": {"epochs": 1, "lr": 0.05}, "at_init": {"synflow_rounds": 2}},
        test={"latency_batch_sizes": [1], "latency_repeats": 1, "latency_warmup": 0},
    )
    lines = ",\n".join(f'{{ "prune.method" = "{method}", "prune.sparsity" = {sparsity} }}'
                       for method, sparsity in VARIANTS)
    path.write_text(path.read_text() + SWEEP.format(variants=lines))
    return path


def _stable(value):
    """A sweep.json row without what differs between two runs of the same cell."""
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items() if key not in VOLATILE}
    return value


def _measured(exp) -> list[str]:
    return [cell_id for cell_id, cell, _ in all_cells(exp) if paths.metrics(cell).is_file()]


def test_the_shards_partition_the_grid(sweep_config):
    cells = [cell_id for cell_id, _, _ in all_cells(config.load(sweep_config))]
    for count in (1, 2, 3, 5, 7):  # 7 > 5 cells: two shards hold none
        held = [[cell for position, cell in enumerate(cells) if Shard(k, count).holds(position)]
                for k in range(1, count + 1)]
        assert sorted(cell for shard in held for cell in shard) == sorted(cells), count  # each cell once
        assert all(abs(len(a) - len(b)) <= 1 for a in held for b in held)  # dealt round-robin: even
        assert all(Shard(k, count).holds(p) == (shard_of(p, count) == Shard(k, count))
                   for k in range(1, count + 1) for p in range(len(cells)))
    assert Shard.parse("2/3") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"


@pytest.mark.parametrize("value", ["0/3", "4/3", "1/0", "3", "a/b", "-1/3", "1/3/3", "", " 1/3"])
def test_a_bad_shard_is_one_line_and_exit_2(sweep_config, value, capsys):
    with pytest.raises(SystemExit) as stopped:
        run("sweep", [str(sweep_config), f"--shard={value}"])  # = keeps "-1/3" a value
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "--shard" in errors[0] and repr(value) in errors[0], errors


def test_shards_run_their_cells_resume_and_merge_to_the_serial_sweep(sweep_config, tmp_path, capsys):
    exp = config.load(sweep_config)
    cells = [cell_id for cell_id, _, _ in all_cells(exp)]
    assert run("sweep", [str(sweep_config), "--shard", "1/3"]) == 0
    assert _measured(exp) == [cells[0], cells[3]]  # positions 0 and 3: only this shard's cells ran
    assert not paths.sweep_summary(exp).exists()  # written only when every cell is finished
    out = capsys.readouterr().out
    assert "3 of 5 cells are not finished, in shards 2/3, 3/3" in out and cells[1] in out

    stamps = {cell_id: paths.pruned(cell).stat().st_mtime_ns for cell_id, cell, _ in all_cells(exp)
              if cell_id in (cells[0], cells[3])}
    assert run("sweep", [str(sweep_config), "--shard", "1/3"]) == 0  # a re-run shard skips its finished cells
    out = capsys.readouterr().out
    assert out.count("skipping prune") == 2 and out.count("skipping test") == 2
    assert {cell_id: paths.pruned(cell).stat().st_mtime_ns for cell_id, cell, _ in all_cells(exp)
            if cell_id in stamps} == stamps

    assert run("report", [str(sweep_config)]) == 2  # an unfinished grid is refused, naming what it lacks
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "3 of 5 cells are not finished" in err and cells[4] in err
    assert f"`python tasks/sweep.py {sweep_config}`" in err

    assert run("sweep", [str(sweep_config), "--shard", "3/3"]) == 0
    assert not paths.sweep_summary(exp).exists()
    assert "shard 3/3 done (1 cell); 2 of 5 cells are not finished, in shard 2/3" in capsys.readouterr().out
    assert run("sweep", [str(sweep_config), "--shard", "2/3"]) == 0  # the last shard to finish merges
    sharded = load_json(paths.sweep_summary(exp))
    assert [row["cell"] for row in sharded["cells"]] == cells
    assert sharded["made_by"]["sweep"]["command"] == f"python tasks/sweep.py {sweep_config}"

    serial_root = tmp_path / "serial"
    assert run("sweep", [str(sweep_config), "--set", f'results_root="{serial_root}"']) == 0
    serial = load_json(serial_root / exp.name / "sweep.json")
    assert [_stable(row) for row in sharded["cells"]] == [_stable(row) for row in serial["cells"]]
    assert all(row["metrics"]["pruned"]["accuracy"] is not None for row in sharded["cells"])

    paths.sweep_summary(exp).unlink()  # e.g. two shards finished together and each saw the other unfinished
    assert run("report", [str(sweep_config)]) == 0  # report merges a finished grid
    assert [_stable(row) for row in load_json(paths.sweep_summary(exp))["cells"]] == \
        [_stable(row) for row in sharded["cells"]]
    capsys.readouterr()
    assert run("sweep", [str(sweep_config), "--shard", "7/7"]) == 0  # more shards than cells: this one is empty
    assert "shard 7/7 holds no cells: the grid has 5" in capsys.readouterr().out


def test_a_stale_cell_of_another_shard_is_not_merged(sweep_config, capsys):
    """A cell counts as finished only when its metrics.json is current: after a [test] change the
    other shards' cells must be measured again before sweep.json is rewritten."""
    exp = config.load(sweep_config)
    assert run("sweep", [str(sweep_config)]) == 0
    before = paths.sweep_summary(exp).read_text()
    capsys.readouterr()
    assert run("sweep", [str(sweep_config), "--shard", "1/2", "--set", "test.latency_repeats=2"]) == 0
    assert "2 of 5 cells are not finished, in shard 2/2" in capsys.readouterr().out
    assert paths.sweep_summary(exp).read_text() == before
    assert run("sweep", [str(sweep_config), "--shard", "2/2", "--set", "test.latency_repeats=2"]) == 0
    rows = json.loads(paths.sweep_summary(exp).read_text())["cells"]
    assert all(row["metrics"]["test"]["latency_repeats"] == 2 for row in rows)


def test_an_interrupted_shard_names_the_command_that_resumes_it(sweep_config, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(CELL_STAGES, "prune", interrupted)
    assert run("sweep", [str(sweep_config), "--shard", "2/3"]) == 130
    assert f"`python tasks/sweep.py {sweep_config} --shard 2/3` resumes" in capsys.readouterr().err
