"""`sweep --jobs N`: the unfinished cells run in N spawned worker processes, with the serial run's
results, the same resumability (finished cells untouched), one error line naming a failing cell,
and no worker left running after Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import SWEEP, SWEEP_VOLATILE as VOLATILE
from prunelab import config, paths
from prunelab.atomic import load_json
from prunelab.cli import run
from prunelab.sweep import all_cells

REPO = Path(__file__).resolve().parents[1]
# Four cells: prune.method x prune.sparsity, seed 0.
VARIANTS = [("random", 0.5), ("random", 0.9), ("magnitude", 0.5), ("magnitude", 0.9)]


def _write_sweep(path: Path, variants: list[str]) -> Path:
    path.write_text(path.read_text() + SWEEP.format(variants=",\n".join(variants)))
    return path


def _variant(method: str, sparsity: float, extra: str = "") -> str:
    return f'{{ "prune.method" = "{method}", "prune.sparsity" = {sparsity}{extra} }}'


@pytest.fixture
def base_config(tiny_config):
    def make(finetune_epochs: int = 1, train_subset: int = 200):
        return tiny_config(
            data={"train_subset": train_subset, "test_subset": 100},
            prune={"method": "random", "start": "init", "scope": "global", "iterations": 1,
                   "finetune": {"epochs": finetune_epochs, "lr": 0.05}},
            test={"latency_batch_sizes": [1], "latency_repeats": 1, "latency_warmup": 0},
        )

    return make


@pytest.fixture
def sweep_config(base_config):
    return _write_sweep(base_config(), [_variant(method, sparsity) for method, sparsity in VARIANTS])


def _stable(value):
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items() if key not in VOLATILE}
    return value


def _stamps(cell) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (paths.pruned(cell), paths.metrics(cell))}


def test_jobs_give_the_serial_results(sweep_config, tmp_path, capfd):
    exp = config.load(sweep_config)
    assert run("sweep", [str(sweep_config), "--jobs", "2"]) == 0
    out, err = capfd.readouterr()  # fd-level: a worker writing to the terminal would show here
    assert "0 of 4 cells finished already; running 4 cells in 2 jobs" in out
    assert "top-1" not in out + err and "skipping" not in out + err  # the stages' lines are in job.log
    parallel = load_json(paths.sweep_summary(exp))
    for cell_id, cell, _ in all_cells(exp):
        log = paths.job_log(cell).read_text()
        assert f"cell {cell_id}" in log and "top-1" in log and "\x1b[" not in log  # plain text, no colours
    measured = parallel["cells"][0]["metrics"]["made_by"]["test"]
    assert measured["command"] == f"python tasks/sweep.py {sweep_config}" and measured["threads"] == 1

    serial_root = tmp_path / "serial"
    assert run("sweep", [str(sweep_config), "--set", f'results_root="{serial_root}"']) == 0
    serial = load_json(serial_root / exp.name / "sweep.json")
    assert [row["cell"] for row in parallel["cells"]] == [row["cell"] for row in serial["cells"]]
    assert [_stable(row) for row in parallel["cells"]] == [_stable(row) for row in serial["cells"]]
    assert all(row["metrics"]["pruned"]["accuracy"] is not None for row in parallel["cells"])


def test_jobs_resume_only_the_unfinished_cells_and_compose_with_shards(sweep_config, capfd):
    exp = config.load(sweep_config)
    cells = all_cells(exp)
    assert run("sweep", [str(sweep_config), "--shard", "1/2"]) == 0  # cells 0 and 2, serially
    stamps = {cell_id: _stamps(cell) for cell_id, cell, _ in cells[::2]}
    capfd.readouterr()

    assert run("sweep", [str(sweep_config), "--jobs", "2"]) == 0
    assert "2 of 4 cells finished already; running 2 cells in 2 jobs" in capfd.readouterr().out
    assert {cell_id: _stamps(cell) for cell_id, cell, _ in cells[::2]} == stamps  # not rewritten
    assert [paths.job_log(cell).is_file() for _, cell, _ in cells] == [False, True, False, True]
    rows = load_json(paths.sweep_summary(exp))["cells"]
    assert [row["cell"] for row in rows] == [cell_id for cell_id, _, _ in cells]
    assert all(row["metrics"] is not None for row in rows)

    paths.sweep_summary(exp).unlink()
    assert run("sweep", [str(sweep_config), "--shard", "2/2", "--jobs", "3"]) == 0  # a shard's cells in jobs
    out = capfd.readouterr().out
    assert "2 of 2 cells finished already; nothing to run" in out
    assert paths.sweep_summary(exp).is_file()  # the grid is finished: the shard merges, as without --jobs


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_a_bad_jobs_value_is_one_line_and_exit_2(sweep_config, value, capsys):
    with pytest.raises(SystemExit) as stopped:
        run("sweep", [str(sweep_config), f"--jobs={value}"])
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "--jobs" in errors[0] and repr(value) in errors[0], errors


def test_a_failing_cell_is_named(base_config, tmp_path, capfd):
    """A cell whose data set is missing fails in its worker with a UserError (one line, exit 2,
    naming the cell and its log); an unexpected exception reaches the user with its cell too."""
    missing = tmp_path / "no-data-here"
    path = _write_sweep(base_config(), [_variant("random", 0.5), _variant("random", 0.9, f', "data.root" = "{missing}"'),
                                        _variant("magnitude", 0.5)])
    exp = config.load(path)
    cells = all_cells(exp)
    bad_id, bad, _ = cells[1]
    assert run("sweep", [str(path), "--jobs", "2"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"sweep cell {bad_id}: " in err[0] and str(missing) in err[0], err
    assert f"(its output: {paths.job_log(bad)})" in err[0]
    assert str(missing) in paths.job_log(bad).read_text()
    assert not paths.sweep_summary(exp).exists()

    good_id, good, _ = cells[2]
    path = _write_sweep(base_config(), [_variant("random", 0.5), _variant("magnitude", 0.5)])
    paths.metrics(good).unlink(missing_ok=True)
    paths.metrics(good).mkdir(parents=True)  # test's atomic write cannot replace a directory
    with pytest.raises(RuntimeError, match=f"sweep cell {re.escape(good_id)} failed in its worker process: "
                                           "IsADirectoryError") as raised:
        run("sweep", [str(path), "--jobs", "2"])
    assert "Traceback" in str(raised.value.__cause__)  # the worker's traceback is printed with it
    assert "IsADirectoryError" in paths.job_log(good).read_text()


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_every_worker_and_the_rerun_resumes(base_config, tmp_path):
    path = _write_sweep(base_config(finetune_epochs=40, train_subset=1000),
                        [_variant(method, sparsity) for method, sparsity in VARIANTS[:2]])
    exp = config.load(path)
    assert run("get_dataset", [str(path)]) == 0  # the synthetic digests are this process's catalog only
    command = [sys.executable, str(REPO / "tasks" / "sweep.py"), str(path), "--jobs", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    logs = [paths.job_log(cell) for _, cell, _ in all_cells(exp)]
    deadline = time.monotonic() + 120
    # Interrupt once a cell has saved a fine-tuning epoch (the line comes after the save), long before its 40th.
    while not any(log.is_file() and "fine-tune epoch 1/" in log.read_text() for log in logs):
        assert time.monotonic() < deadline and sweep.poll() is None, sweep.communicate()
        time.sleep(0.05)
    started = [log for log in logs if log.is_file() and "fine-tune epoch 1/" in log.read_text()]
    os.killpg(sweep.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole process group
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, (out, err)
    assert f"`python tasks/sweep.py {path} --jobs 2` resumes" in err
    pids = [int(pid) for log in logs if log.is_file() for pid in re.findall(r"\(pid (\d+)\)", log.read_text())]
    assert pids and not [pid for pid in pids if _alive(pid)]  # every worker has exited and been reaped
    assert not list(paths.sweep_cells(exp).rglob("*.tmp"))  # interrupted writes cleaned up
    assert not paths.sweep_summary(exp).exists()

    assert run("sweep", [str(path), "--jobs", "2"]) == 0  # the re-run resumes the cells from their checkpoints
    assert all("resuming round 1/1 fine-tune" in log.read_text() for log in started)
    assert all(row["metrics"] is not None for row in load_json(paths.sweep_summary(exp))["cells"])


@pytest.mark.slow
def test_the_sweep_scaling_benchmark_runs_the_grid_both_ways(tmp_path, monkeypatch):
    from prunelab.families.at_init.bench_sweep import CELLS, sweep_scaling

    monkeypatch.chdir(tmp_path)
    data = Path(__file__).resolve().parents[1] / "dataset"
    if not (data / "fashion-mnist").is_dir():
        pytest.skip("needs the real Fashion-MNIST in dataset/ (get-dataset)")
    torch.set_num_threads(2)
    (row,) = sweep_scaling(jobs=2, data_root=str(data), images=300, epochs=1)
    assert torch.get_num_threads() == 2  # the grid's threads = 1 does not leak into the next benchmark
    serial, parallel = float(row["--jobs 1 s"]), float(row["--jobs 2 s"])
    assert serial > 0 and parallel > 0
    assert float(row["--jobs 1 cells/hour"].replace(",", "")) == pytest.approx(CELLS * 3600 / serial, rel=0.01)
    assert float(row["ratio"].rstrip("x")) == pytest.approx(serial / parallel, rel=0.05, abs=0.01)
