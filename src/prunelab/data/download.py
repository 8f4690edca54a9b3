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


def download(spec: DatasetSpec, filename: str, dest: Path, where: str = "") -> None:
    errors = []
    for mirror in spec.mirrors:
        url = mirror + filename
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, atomic_path(dest) as tmp:
                total = int(response.headers.get("Content-Length") or 0) or None
                with open(tmp, "wb") as out, Progress(
                    TextColumn(filename), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console
                ) as progress:
                    task = progress.add_task(filename, total=total)
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        progress.advance(task, len(block))
                if md5(tmp) != spec.md5[filename]:
                    raise ValueError("checksum mismatch")
            return
        except (urllib.error.URLError, OSError, ValueError) as error:
            errors.append(f"{url}: {error}")
    raise UserError(
        f"{where + ': data.dataset: ' if where else ''}could not download {filename} ({'; '.join(errors)}); "
        f"copy the {spec.name} files into a directory and set data.source to it"
    )
