"""Atomic artifact writes (temp file in the same directory, then rename) and safe loads.

Checkpoints and JSON artifacts are sealed with a content digest when written and
checked when read (integrity.py); a damaged one is a one-line UserError naming the file.
A write the file system refuses (full, over quota, read-only, not permitted) is a one-line
UserError naming the artifact and what to do; the temp file is gone and the previous
artifact, if any, is intact, so the stage resumes once the cause is fixed.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

import torch

from . import integrity
from .errors import UserError


def file_mode() -> int:
    """The mode a new file gets under the current umask (0666 - umask); mkstemp's is 0600."""
    mask = os.umask(0o022)  # the only way to read the umask is to set it
    os.umask(mask)
    return 0o666 & ~mask


# The file system's refusals a user can fix (OSError errno) -> what to do; {dir}: the directory.
ELSEWHERE = "results_root (data.root for a data set)"
WRITE_FAULTS = {
    errno.ENOSPC: "free space on {dir}'s disk, or set " + ELSEWHERE + " to a directory on another disk",
    errno.EDQUOT: "free space within your disk quota, or set " + ELSEWHERE + " to a directory on another disk",
    errno.EROFS: "{dir} is on a read-only file system: set " + ELSEWHERE + " to a writable directory",
    errno.EACCES: "fix the permissions of {dir}, or set " + ELSEWHERE + " to a directory you can write",
    errno.EPERM: "fix the permissions of {dir}, or set " + ELSEWHERE + " to a directory you can write",
}


def _existing(directory: Path) -> Path:
    """`directory`, or its nearest ancestor that exists (where a refused mkdir was refused)."""
    while not os.path.exists(directory) and directory != directory.parent:
        directory = directory.parent
    return directory


@contextmanager
def write_faults(path: Path) -> Iterator[None]:
    """Inside the block, a write the file system refuses becomes one UserError line naming `path`
    and what to do; any other error passes unchanged."""
    try:
        yield
    except OSError as error:
        if error.errno not in WRITE_FAULTS:
            raise
        todo = WRITE_FAULTS[error.errno].format(dir=_existing(path.parent))
        raise UserError(f"{path}: cannot write it ({os.strerror(error.errno)}); {todo}") from None


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds. The temp
    file is removed on every failure; a refused write is a UserError (write_faults)."""
    path = Path(path)
    with write_faults(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.close(fd)  # a network file system may report a full disk only here
            yield Path(tmp)
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
        finally:
            with suppress(OSError):  # never hide the error that got us here
                if os.path.lexists(tmp):
                    os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: dict) -> None:
    """A JSON artifact, sealed with its digest (checked by load_json)."""
    write_text(path, json.dumps(integrity.seal(data), indent=2, sort_keys=True) + "\n")


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows as CSV; the columns are every key in order of first appearance."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def save_torch(path: Path, obj: dict) -> None:
    """A checkpoint, sealed with its digest (checked by load_torch). Serialized in memory first:
    torch.save's own file writer reports a failed write as a RuntimeError without its errno, this
    write raises the OSError (a full disk, ...) that write_faults names."""
    buffer = io.BytesIO()
    torch.save(integrity.seal(obj), buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_torch(path: Path) -> dict:
    """Load a checkpoint without pickle (weights_only) and check its digest; a bad or damaged
    file is a one-line UserError naming it."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except Exception as error:  # torch raises many types for corrupt or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: not a readable prunelab checkpoint ({reason[:120]})") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise UserError(f"{path}: not a prunelab checkpoint (no 'model' entry)")
    problem = integrity.problem(obj)
    if problem is not None:
        raise UserError(f"{path}: {problem}")
    return obj


def load_json(path: Path) -> dict:
    """A JSON artifact written by write_json, its digest checked."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a prunelab artifact (not a JSON object)")
    problem = integrity.problem(data)
    if problem is not None:
        raise UserError(f"{path}: {problem}")
    return data
