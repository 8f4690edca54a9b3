"""In-memory data: uint8 tensors, batched by indexing, normalized and augmented per batch.

No per-sample Python work: an epoch is a seeded permutation and a slice per batch,
so the loader costs a small fraction of the model's own compute.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from .. import paths, provenance
from ..config.sections import Experiment
from ..distributed import share
from ..errors import UserError
from . import colored, manifest, user
from .cifar import read_splits
from .fetch import validate_split
from .idx import find
from .spec import spec_for


@dataclass
class Splits:
    train_images: torch.Tensor  # uint8 (N, C, H, W)
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_splits(exp: Experiment) -> Splits:
    """Read the verified IDX files (CIFAR batches, a user's stored arrays) of exp.data.dataset into
    memory (subset if configured); a derived set is its base set's splits, coloured (colored.py)."""
    spec = spec_for(exp)
    if spec.derived_from is not None:
        base = load_splits(colored.base_experiment(exp))
        background = exp.data.color_background
        return Splits(
            train_images=colored.color_split(base.train_images, "train", spec.sizes["train"], background),
            train_labels=base.train_labels,
            test_images=colored.color_split(base.test_images, "test", spec.sizes["test"], background),
            test_labels=base.test_labels,
        )
    directory = paths.dataset_dir(exp)
    if not paths.dataset_manifest(exp).is_file():
        raise UserError(
            f"{exp.path}: data set {spec.name} not found in {directory}; {provenance.run_hint(exp, 'get_dataset')}"
        )
    manifest.verify(exp)
    arrays = {}
    if spec.archive is not None:  # CIFAR: pickled batches (cifar.py)
        arrays = read_splits(exp, spec)
    if spec.user_kind is not None:  # a user's own set: .npy arrays (user.py)
        arrays = user.read_splits(exp, spec)
    for split, (images_stem, labels_stem) in spec.files.items():
        images_path, labels_path = find(directory, images_stem), find(directory, labels_stem)
        if images_path is None or labels_path is None:
            raise UserError(f"{directory}: {split} files missing; {provenance.run_hint(exp, 'get_dataset', '--force')}")
        images, labels = validate_split(spec, split, images_path, labels_path)
        arrays[split] = (
            torch.from_numpy(images.copy()).reshape(-1, *spec.image_shape),
            torch.from_numpy(labels.astype("int64")),
        )
    train_n = exp.data.train_subset or None
    test_n = exp.data.test_subset or None
    return Splits(
        train_images=arrays["train"][0][:train_n],
        train_labels=arrays["train"][1][:train_n],
        test_images=arrays["test"][0][:test_n],
        test_labels=arrays["test"][1][:test_n],
    )


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` pixels and crop back at a random offset per image (batched); the
    offsets are drawn by `generator`, on the images' device."""
    if padding == 0:
        return images
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=generator.device)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=generator.device)
    rows = (dy[:, None] + torch.arange(height, device=images.device))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(width, device=images.device))[:, None, :]  # (B, 1, W)
    batch_index = torch.arange(batch, device=images.device)[:, None, None]
    # Advanced indexing puts the broadcast (B, H, W) dims first, then channels.
    return padded.permute(0, 2, 3, 1)[batch_index, rows, cols].permute(0, 3, 1, 2)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch horizontally (drawn by `generator`, on the images' device)."""
    flip = torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


class TensorLoader:
    """Batches of (normalized float images, labels) from in-memory uint8 tensors.

    Shuffling uses a generator seeded by (seed, epoch), so epoch k has the same
    order whether or not the run was interrupted and resumed before it. A loader
    `shard`ed for one of several processes yields only that rank's share of each batch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        shuffle: bool = False,
        seed: int = 0,
        augment: tuple[str, ...] | list[str] = (),
        crop_padding: int = 2,
        device: torch.device | str = "cpu",
    ):
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.augment = tuple(augment)
        self.crop_padding = crop_padding
        self.mean, self.std = tuple(mean), tuple(std)
        channels = images.shape[1]
        # Folded into one multiply-add per pixel: x / 255 / std - mean / std.
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).reshape(1, channels, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).reshape(1, channels, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        # Raw pixels (mean 0, std 1: data.normalize = false) are x / 255 exactly, as torchvision's
        # ToTensor gives them; x * fl(1/255) is one float32 ulp off at half the grey levels.
        self._raw = all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)
        self.epoch = 0
        self.rank, self.world = 0, 1  # this process's share of every batch (shard)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def batch_count(self, step: int) -> int:
        """Images in global batch `step` of an epoch, every rank's share together."""
        return min(self.batch_size, self.num_samples - step * self.batch_size)

    def shard(self, rank: int, world: int) -> "TensorLoader":
        """This loader as process `rank` of `world` (DDP) sees it: the same seeded order and
        augmentation draws every epoch, each global batch cut to this rank's rows
        (distributed.share), so the shares of all ranks together are the single-process batch.
        The data tensors are shared, not copied."""
        view = copy.copy(self)
        view.rank, view.world = rank, world
        return view

    def subset(self, count: int) -> "TensorLoader":
        """A loader over `count` images drawn at random (seeded by this loader's seed) without
        replacement, batched, shuffled and augmented as this one."""
        generator = torch.Generator().manual_seed(self.seed)
        index = torch.randperm(len(self.labels), generator=generator)[:count].to(self.device)
        return TensorLoader(self.images[index], self.labels[index], self.batch_size, self.mean, self.std,
                            shuffle=True, seed=self.seed, augment=self.augment, crop_padding=self.crop_padding,
                            device=self.device)

    def __iter__(self):
        # Every draw of the epoch (order, crops, flips) on the data's device: on a GPU no host round
        # trip per batch; on CPU the same generator and draws as ever (bit-identical runs).
        generator = torch.Generator(device=self.device).manual_seed(self.seed * 100_003 + self.epoch)
        count = len(self.labels)
        order = torch.randperm(count, generator=generator, device=self.device) if self.shuffle else None
        for start in range(0, count, self.batch_size):
            if order is None:
                images = self.images[start : start + self.batch_size]
                labels = self.labels[start : start + self.batch_size]
            else:
                index = order[start : start + self.batch_size]
                images, labels = self.images[index], self.labels[index]
            if "crop" in self.augment:
                images = random_crop(images, self.crop_padding, generator)
            if "flip" in self.augment:
                images = random_flip(images, generator)
            if self.world > 1:
                # Cut after augmenting: crop and flip were drawn for the whole global batch, exactly as
                # one process draws them (uint8 work on batch_size images per rank, cheap beside the model).
                start, stop = share(len(labels), self.rank, self.world)
                images, labels = images[start:stop], labels[start:stop]
            yield (images.float().div_(255.0) if self._raw else images.float().mul_(self._scale).add_(self._shift)), labels


def make_loaders(exp: Experiment, splits: Splits, device: torch.device) -> tuple[TensorLoader, TensorLoader]:
    """The training loader (shuffled, augmented) and the test loader of an experiment."""
    mean, std = spec_for(exp).normalization(exp.data.color_background)
    if not exp.data.normalize:  # raw [0, 1] pixels
        mean, std = (0.0,) * len(mean), (1.0,) * len(std)
    train = TensorLoader(
        splits.train_images, splits.train_labels, exp.data.batch_size, mean, std,
        shuffle=True, seed=exp.seed, augment=exp.data.augment, crop_padding=exp.data.crop_padding, device=device,
    )
    test = TensorLoader(splits.test_images, splits.test_labels, exp.data.test_batch_size, mean, std, device=device)
    return train, test
