"""Disk and permission faults: a write the file system refuses (full, over quota, read-only, not
permitted) is one UserError line naming the artifact and what to do, with no temp file left behind
and the previous artifact intact; through the CLI it is exit status 2 and one line, and the stage
resumes once the fault is gone. The tests run as root, which chmod does not stop, so every fault is
injected by monkeypatching the call the file system would fail."""

from __future__ import annotations

import errno
import os
import pathlib
import tempfile
from pathlib import Path

import pytest
import torch

from prunelab import paths
from prunelab.atomic import load_json, load_torch, save_torch, write_csv, write_json, write_text
from prunelab.cli import run
from prunelab.errors import UserError

from conftest import experiment

WRITERS = {
    "write_text": lambda path: write_text(path, "new text\n" * 1000),
    "write_json": lambda path: write_json(path, {"value": list(range(1000))}),
    "write_csv": lambda path: write_csv(path, [{"a": i, "b": 2 * i} for i in range(1000)]),
    "save_torch": lambda path: save_torch(path, {"model": {"w": torch.arange(1000.0)}}),
}
ADVICE = {errno.ENOSPC: "free space", errno.EDQUOT: "quota", errno.EROFS: "read-only file system",
          errno.EACCES: "fix the permissions", errno.EPERM: "fix the permissions"}


def _refuse(code: int, filename=None) -> OSError:
    return OSError(code, os.strerror(code), None if filename is None else str(filename))


def _previous(tmp_path: Path, writer: str) -> tuple[Path, bytes]:
    """An artifact written before the fault (by the same writer), and its bytes."""
    path = tmp_path / "run" / f"artifact.{writer}"
    WRITERS[writer](path)
    return path, path.read_bytes()


def _leftovers(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")] if directory.is_dir() else []


def _half_written(monkeypatch, code: int) -> None:
    """Data writes put half their bytes in the file, then the disk is full (or the quota spent)."""
    def write(self, data, *args, **kwargs):
        data = data.encode() if isinstance(data, str) else bytes(data)
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise _refuse(code, self)

    monkeypatch.setattr(pathlib.Path, "write_text", write)
    monkeypatch.setattr(pathlib.Path, "write_bytes", write)


def _one_line(error: pytest.ExceptionInfo, path: Path, code: int) -> None:
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: cannot write it ")
    assert ADVICE[code] in message and "results_root" in message


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
@pytest.mark.parametrize("writer", WRITERS)
def test_a_full_disk_during_the_write_keeps_the_previous_artifact(tmp_path, monkeypatch, writer, code):
    path, before = _previous(tmp_path, writer)
    _half_written(monkeypatch, code)
    with pytest.raises(UserError) as error:
        WRITERS[writer](path)
    monkeypatch.undo()
    _one_line(error, path, code)
    assert path.read_bytes() == before and _leftovers(path.parent) == []


@pytest.mark.parametrize("writer", WRITERS)
def test_a_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch, writer):
    path, before = _previous(tmp_path, writer)
    monkeypatch.setattr(os, "replace", lambda source, target: (_ for _ in ()).throw(_refuse(errno.ENOSPC, source)))
    with pytest.raises(UserError) as error:
        WRITERS[writer](path)
    monkeypatch.undo()
    _one_line(error, path, errno.ENOSPC)
    assert path.read_bytes() == before and _leftovers(path.parent) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EPERM])
def test_a_directory_that_cannot_be_made_is_one_line(tmp_path, monkeypatch, code):
    def mkdir(name, *args, **kwargs):
        raise _refuse(code, name)

    monkeypatch.setattr(os, "mkdir", mkdir)
    path = tmp_path / "results" / "tiny" / "dense.pt"
    with pytest.raises(UserError) as error:
        WRITERS["save_torch"](path)
    _one_line(error, path, code)
    assert str(tmp_path) in str(error.value)  # the nearest directory that exists: where to look
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("writer", WRITERS)
def test_a_directory_that_refuses_new_files_keeps_the_previous_artifact(tmp_path, monkeypatch, writer, code):
    path, before = _previous(tmp_path, writer)
    monkeypatch.setattr(tempfile, "mkstemp", lambda *args, **kwargs: (_ for _ in ()).throw(_refuse(code)))
    with pytest.raises(UserError) as error:
        WRITERS[writer](path)
    monkeypatch.undo()
    _one_line(error, path, code)
    assert path.read_bytes() == before and _leftovers(path.parent) == []


def test_a_refused_mode_change_leaves_no_temp_file(tmp_path, monkeypatch):
    path, before = _previous(tmp_path, "write_json")
    monkeypatch.setattr(os, "chmod", lambda name, mode: (_ for _ in ()).throw(_refuse(errno.EPERM, name)))
    with pytest.raises(UserError) as error:
        WRITERS["write_json"](path)
    monkeypatch.undo()
    _one_line(error, path, errno.EPERM)
    assert path.read_bytes() == before and _leftovers(path.parent) == []
    assert load_json(path)["value"] == list(range(1000))


def test_other_errors_pass_unchanged(tmp_path, monkeypatch):
    """Only faults a user can fix become a UserError; an I/O error stays what it is."""
    monkeypatch.setattr(os, "replace", lambda source, target: (_ for _ in ()).throw(_refuse(errno.EIO, source)))
    with pytest.raises(OSError) as error:
        write_text(tmp_path / "x.txt", "text")
    assert error.value.errno == errno.EIO and _leftovers(tmp_path) == []


def test_a_checkpoint_written_through_memory_loads(tmp_path):
    path = tmp_path / "state.pt"
    save_torch(path, {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3})
    loaded = load_torch(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(6.0).reshape(2, 3)) and loaded["epoch"] == 3


# ---------------------------------------------------------------- through the CLI


def _under(root: Path, name) -> bool:
    return Path(name).resolve().is_relative_to(root.resolve())


def test_a_full_results_disk_is_exit_2_one_line_and_resumes(tiny_config, monkeypatch, capsys):
    path = tiny_config(train={"epochs": 1})
    exp = experiment(path)
    root = Path(exp.results_root)
    assert run("get_dataset", [str(path)]) == 0
    real = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if _under(root, self):
            with open(self, "wb") as handle:
                handle.write(bytes(data)[:100])
            raise _refuse(errno.ENOSPC, self)
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    capsys.readouterr()
    assert run("train", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write it (No space left on device)" in err
    assert str(paths.train_state(exp)) in err
    assert _leftovers(paths.run_dir(exp)) == [] and not paths.dense(exp).exists()
    monkeypatch.undo()  # space freed
    assert run("train", [str(path)]) == 0 and paths.dense(exp).is_file()


def _read_only(monkeypatch, root: Path) -> None:
    """Directories under `root` cannot be made: the file system is read-only (as root, chmod would not stop it)."""
    real = os.mkdir

    def mkdir(name, *args, **kwargs):
        if _under(root, name):
            raise _refuse(errno.EROFS, name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


def test_a_read_only_results_root_is_exit_2_one_line(tiny_config, monkeypatch, capsys):
    path = tiny_config(train={"epochs": 1})
    exp = experiment(path)
    root = Path(exp.results_root)
    assert run("get_dataset", [str(path)]) == 0
    _read_only(monkeypatch, root)
    capsys.readouterr()
    assert run("train", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "read-only file system" in err and "results_root" in err
    assert not root.exists()


def test_a_read_only_data_root_is_exit_2_one_line(tiny_config, monkeypatch, capsys):
    """get-dataset's own copies and directories (not atomic_path's) give the same one line."""
    path = tiny_config(train={"epochs": 1})
    _read_only(monkeypatch, Path(experiment(path).data.root))
    assert run("get_dataset", [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "read-only file system" in err and "data.root" in err
