"""Content digests sealed inside artifacts, checked whenever an artifact is read.

torch.load does not check the CRCs of a checkpoint's tensor data, so a flipped bit
in a weight loads silently; and a JSON file edited or truncated by hand may still
parse. Every checkpoint and JSON artifact therefore carries a "digest" entry: the
sha256 of a canonical encoding of everything else in it (tensors by dtype, shape
and raw bytes; containers in key order). Reading recomputes it and refuses a
mismatch, so damage anywhere in the content is caught, whatever the file format.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

DIGEST_KEY = "digest"


def _feed(hasher: "hashlib._Hash", value: Any) -> None:
    """Feed one value's canonical encoding: a type tag, a length where needed, then the content."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        raw = flat.view(torch.uint8) if flat.numel() else flat.new_empty(0, dtype=torch.uint8)
        hasher.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        hasher.update(raw.numpy().tobytes())
    elif isinstance(value, dict):
        hasher.update(f"D{len(value)}".encode())
        for key in sorted(value, key=str):
            _feed(hasher, str(key))
            _feed(hasher, value[key])
    elif isinstance(value, (list, tuple)):
        hasher.update(f"L{len(value)}".encode())
        for item in value:
            _feed(hasher, item)
    elif isinstance(value, str):
        encoded = value.encode()
        hasher.update(f"S{len(encoded)}:".encode() + encoded)
    elif isinstance(value, float) and math.isnan(value):
        hasher.update(b"Fnan")  # NaN != NaN, but it is the same stored value
    elif isinstance(value, (bool, int, float)) or value is None:
        # bool before int in the tag: True and 1 are different stored values.
        hasher.update(f"{type(value).__name__[0]}{value!r};".encode())
    else:
        raise TypeError(f"cannot digest a {type(value).__name__}")


def digest(content: dict) -> str:
    """sha256 (hex) of a dict's canonical encoding, ignoring a "digest" entry."""
    hasher = hashlib.sha256()
    _feed(hasher, {key: value for key, value in content.items() if key != DIGEST_KEY})
    return hasher.hexdigest()


def seal(content: dict) -> dict:
    """The dict with its digest added (the input is not modified)."""
    return {**content, DIGEST_KEY: digest(content)}


def problem(content: dict) -> str | None:
    """Why a loaded artifact cannot be trusted, or None when its digest matches."""
    recorded = content.get(DIGEST_KEY)
    if recorded is None:
        return "no integrity digest (written by another program or an older prunelab)"
    if recorded != digest(content):
        return "damaged: its contents do not match the digest recorded when it was written"
    return None
