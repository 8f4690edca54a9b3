"""The models the reproduced works use, by name: `build(arch, in_channels, num_classes, image_size)`;
and the user's own, by import path (`package.module:factory`, user.py).

Adding one: a factory decorated with `@MODELS.register("name")` in a module here, and
that module in the import line below.
"""

from __future__ import annotations

import torch.nn as nn

from . import lenet, mobilenet, resnet, vgg  # noqa: F401  (each registers its models)
from . import user
from .registry import MODELS
from .user import ArchError


def build(arch: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """A registered model, or the one an import path's factory returns (ArchError when it cannot)."""
    if user.is_import_path(arch):
        return user.build(arch, in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    return MODELS.get(arch)(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


def check_arch(arch: str) -> None:
    """`[model] arch`'s check (ValueError): a registered name, or an import path whose factory loads
    and takes the factory arguments; its errors start "arch: " to be blamed on model.arch."""
    if arch in MODELS:
        return
    if not user.is_import_path(arch):
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(MODELS.names())}, "
                         "or a factory's import path package.module:factory")
    try:
        user.factory(arch)
    except ArchError as error:
        raise ValueError(f"arch: {error}") from None


def identity(arch: str) -> dict[str, str]:
    """What the stage hashes add to `[model]` for this arch: nothing for a registered name (so no hash
    of theirs changes), the sha256 of the factory's module file for an import path (ArchError)."""
    digest = user.source_digest(arch) if user.is_import_path(arch) else None
    return {} if digest is None else {"source_sha256": digest}
