"""Downloads checked against the catalog's md5, and the sha256 digests manifests record."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from ..atomic import atomic_path
from ..errors import UserError
from ..log import console
from .catalog import DatasetSpec

DOWNLOAD_TIMEOUT_S = 30


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def md5(path: Path) -> str:
    digest = hashlib.md5()
    digest.update(path.read_bytes())
    return digest.hexdigest()


class MirrorsFailed(UserError):
    """Every mirror failed for one file: unreachable, or its bytes had the wrong md5."""


def download_into(spec: DatasetSpec, filename: str, out: Path) -> str:
    """Write `filename` from the first mirror that serves it with the catalog's md5 to `out` (a
    temporary path the caller renames or drops); return its URL, or raise MirrorsFailed."""
    errors = []
    for mirror in spec.mirrors:
        url = mirror + filename
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                total = int(response.headers.get("Content-Length") or 0) or None  # bytes
                with open(out, "wb") as handle, Progress(
                    TextColumn(filename), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console
                ) as progress:
                    task = progress.add_task(filename, total=total)
                    for block in iter(lambda: response.read(1 << 16), b""):
                        handle.write(block)
                        progress.advance(task, len(block))
            if md5(out) != spec.md5[filename]:
                raise ValueError("checksum mismatch")
            return url
        except (urllib.error.URLError, OSError, ValueError) as error:
            errors.append(f"{url}: {error}")
    raise MirrorsFailed(f"could not download {filename} ({'; '.join(errors)})")


def download(spec: DatasetSpec, filename: str, dest: Path) -> None:
    """`filename` from the mirrors to `dest`, written only once its md5 is the catalog's."""
    try:
        with atomic_path(dest) as tmp:
            download_into(spec, filename, tmp)
    except MirrorsFailed as failure:
        raise UserError(f"{failure}; copy the {spec.name} files into a directory and set data.source to it") from None
