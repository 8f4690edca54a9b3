"""Reading and validating IDX files (the MNIST format), raw or gzip-compressed."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from ..errors import UserError

# Third byte of the magic number: element type. MNIST-style sets only use unsigned bytes.
_UBYTE = 0x08


def read_bytes(path: Path, shown_as: str | Path | None = None) -> bytes:
    """The decompressed contents of an IDX file (.gz is decompressed in memory); errors name
    `shown_as` (default `path`: a temporary copy is better named after where it came from)."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise UserError(f"{shown_as or path}: corrupt or truncated gzip archive ({error})") from None
    return data


def check_raw_digest(shown_as: str | Path, data: bytes, expected_sha256: str) -> None:
    """Refuse decompressed IDX bytes whose sha256 is not the catalog's: a changed byte, a cut
    file or another data set with the right shape (about 0.1 s per 50 MB)."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise UserError(
            f"{shown_as}: sha256 of the decompressed bytes is {digest[:16]}..., not the catalog's "
            f"{expected_sha256[:16]}... (corrupted, truncated or other data); refused"
        )


def parse(path: Path, data: bytes, expected_count: int, expected_dims: tuple[int, ...]) -> np.ndarray:
    """Check the header and exact length, return a uint8 array of shape (count, *dims)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE:
        raise UserError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if ndim != 1 + len(expected_dims) or len(data) < header_len:
        raise UserError(f"{path}: expected a {1 + len(expected_dims)}-dimensional IDX file, header says {ndim}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape != (expected_count, *expected_dims):
        raise UserError(f"{path}: shape {shape}, expected {(expected_count, *expected_dims)}")
    expected_len = header_len + int(np.prod(shape))
    if len(data) != expected_len:
        state = "truncated" if len(data) < expected_len else "has trailing bytes"
        raise UserError(f"{path}: {state} ({len(data)} bytes, expected {expected_len})")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


def find(directory: Path, stem: str) -> Path | None:
    """The file for `stem` in `directory`, raw or .gz."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None
