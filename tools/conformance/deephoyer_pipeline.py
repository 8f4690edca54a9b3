"""Reference values for tests/test_conformance_deephoyer_pipeline.py: DeepHoyer's own MNIST MLP pipeline
(regularized training, both prune rules, fine-tuning with the zeros held), run on a fixed start and data.

DeepHoyer (Yang, Wen, Li; ICLR 2020; github.com/yanghr/DeepHoyer) trains, prunes and fine-tunes
LeNet-300-100 with three monolithic scripts in mnist/MLP/: element.py (Adam, the Hoyer / Hoyer-Square
/ L1 penalty over every parameter), prun_tune_V.py (zero |w| < sensitivity x np.std(w) in every
parameter, then fine-tune with Adam(lr, weight_decay=1e-4), the gradients of zero entries zeroed)
and prun_tune_T.py (zero |w| < a fixed threshold, then fine-tune with Adam(lr)). Each parses its
arguments, builds its loaders and model and runs its loops at module level. This script executes
each of the three files whole, as read from a checkout (compiled with their own file names, nothing
cut out or changed), in a scratch working directory, one after the other as its README chains them:

    element.py --pretrained --reg 3 --decay 3e-05 --epochs 4      (loads saves/elt_0.0_0.pth)
    prun_tune_V.py --model saves/elt_3e-05_3 --sensitivity 0.25 --epochs 2   (its lr 1e-3, wd 1e-4)
    prun_tune_T.py --model saves/elt_3e-05_3 --sensitivity 0.03 --epochs 2   (its lr 1e-4)

What had to be supplied, since the scripts cannot run here as published:
  - args.reg_type: element.py parses --reg but reads args.reg_type (and names its output file with
    it), which nothing sets, so any nonzero decay stops with AttributeError. While element.py runs,
    argparse.ArgumentParser.parse_args returns its namespace with reg_type = reg (the --reg value),
    the meaning the README gives both ("--reg [regularization type]", "saves/elt_(args.decay)_
    (args.reg_type).pth").
  - torchvision (not installed here, and its MNIST downloads): modules named torchvision,
    torchvision.datasets and torchvision.transforms are put in sys.modules. datasets.MNIST(root, train,
    download, transform) serves the fixed slice (the first TRAIN_COUNT = 1024 / TEST_COUNT = 512 images
    of the raw IDX files in --mnist; item i: (transform(image i), int(label i)), as torchvision's MNIST,
    with a uint8 28x28 array where torchvision has the PIL image of the same bytes);
    transforms.ToTensor converts it as torchvision's ToTensor does (np.array(pic, np.uint8) -> a
    1x28x28 tensor, .to(float32).div(255)); transforms.Compose composes.
  - scipy.io (imported as sio, never used): an empty module.
  - the dense start: saves/elt_0.0_0.pth, the state dict of `make_init()` below (a seeded PyTorch
    default initialization), which element.py --pretrained loads.
Everything else is the scripts' own: their DataLoaders (batch 100, shuffled by their seeded global
generator; test batch 1000), their LeNet (mnist/MLP/net/models.py), loss, penalty, optimizer, prune
loops, gradient zeroing and test(). Note that prun_tune_V.py / _T.py prune in a module-level loop over
every named parameter (biases and fc3 included); net/prune.py's prune_by_std is not called by them.

What is recorded (by a line tracer on the scripts' own frames; no line of them is altered):
  - the order in which each training epoch drew the slice's images (the indices the DataLoader
    asked the dataset for), so that prunelab can be fed the same order;
  - per training step, at the line `optimizer.step()`: the batch's loss, and element.py's reg and
    total_loss;
  - at the end of every epoch (the `for epoch in pbar:` line coming round, or train's return):
    per-parameter statistics (nonzeros, max |w|, sum |w|, sum w^2, std over n, sum), and the model,
    which after the script has finished is put back into the script's model and scored with the
    script's own test() (test loss and correct count read from its locals at return);
  - after the prune loop (prun_tune_*.py's first print_nonzeros): the same statistics, the script's
    test(), its printed thresholds (V) and print_nonzeros lines; every test() the script made itself
    (its last one must equal one of the epoch scores: asserted). stdout and tqdm's stderr are captured.
Takes ~5 s on one CPU thread; --workdir keeps the scripts' saves/*.pth for inspection.

    OMP_NUM_THREADS=1 .venv/bin/python tools/conformance/deephoyer_pipeline.py <DeepHoyer checkout> \
        [--mnist dataset/mnist] [--commit SHA] [--out tests/data/conformance/deephoyer_pipeline.json] [--workdir DIR]

`make_init`, `param_stats`, `decode_order` and the constants below are prunelab-free; the test imports
them to rebuild the same start, statistics and batch order (it reads the data through prunelab and
checks the slice's sha256 against the JSON's).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

INIT_SEED = 20200212  # torch.manual_seed before the three nn.Linear of the dense start
TRAIN_COUNT, TEST_COUNT = 1024, 512  # the first images of MNIST's train and t10k files
REG, REG_NAME, DECAY, EPOCHS = 3, "hoyer_square", 3e-5, 4  # element.py: 3 = Hoyer-Square (HS)
V_SENSITIVITY, T_THRESHOLD, FINETUNE_EPOCHS = 0.25, 0.03, 2
MLP = "mnist/MLP"
SCRIPTS = ("element.py", "prun_tune_V.py", "prun_tune_T.py")
SOURCES = (*SCRIPTS, "net/models.py", "util.py")


def make_init() -> dict[str, torch.Tensor]:
    """The dense start: PyTorch's default init of 784-300-100-10 Linear layers, seeded, as a state dict."""
    torch.manual_seed(INIT_SEED)
    layers = {"fc1": nn.Linear(784, 300), "fc2": nn.Linear(300, 100), "fc3": nn.Linear(100, 10)}
    return {f"{layer}.{kind}": getattr(module, kind).detach().clone()
            for layer, module in layers.items() for kind in ("weight", "bias")}


def _idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes, raw or (as path + ".gz") gzip-compressed."""
    data = path.read_bytes() if path.is_file() else gzip.decompress(path.with_name(path.name + ".gz").read_bytes())
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_slice(mnist: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (uint8 N x 28 x 28, uint8 N), "test": ...}: the first TRAIN_COUNT / TEST_COUNT images of
    the IDX files in `mnist`."""
    out = {}
    for split, stem, count in (("train", "train", TRAIN_COUNT), ("test", "t10k", TEST_COUNT)):
        images = _idx(mnist / f"{stem}-images-idx3-ubyte")[:count]
        labels = _idx(mnist / f"{stem}-labels-idx1-ubyte")[:count]
        out[split] = (np.ascontiguousarray(images), np.ascontiguousarray(labels))
    return out


def slice_digest(images: np.ndarray, labels: np.ndarray) -> dict:
    return {"count": int(labels.shape[0]),
            "images_sha256": hashlib.sha256(images.astype(np.uint8).tobytes()).hexdigest(),
            "labels_sha256": hashlib.sha256(labels.astype(np.uint8).tobytes()).hexdigest()}


def param_stats(t: torch.Tensor) -> dict:
    """Scale of one parameter, in float64: nonzeros, max |w|, sum |w|, sum w^2, std over n, sum."""
    w = t.detach().double().reshape(-1)
    return {"numel": w.numel(), "nonzeros": int((w != 0).sum()), "max_abs": w.abs().max().item(),
            "sum_abs": w.abs().sum().item(), "sum_sq": (w * w).sum().item(), "std": w.std(correction=0).item(),
            "sum": w.sum().item()}


def encode_order(indices: list[int]) -> str:
    return base64.b64encode(np.asarray(indices, dtype="<u2").tobytes()).decode()


def decode_order(text: str) -> list[int]:
    """An epoch's image order as stored in the JSON (base64 of little-endian uint16)."""
    return np.frombuffer(base64.b64decode(text), dtype="<u2").astype(np.int64).tolist()


# ---------------------------------------------------------------- stand-ins for what is not installed


class _MNISTSlice(torch.utils.data.Dataset):
    """torchvision.datasets.MNIST's interface over the fixed slice; the training set logs what is asked."""

    slices: dict = {}
    drawn: list[int] = []

    def __init__(self, root, train=True, download=False, transform=None):
        self.images, self.labels = self.slices["train" if train else "test"]
        self.train, self.transform = train, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        if self.train:
            _MNISTSlice.drawn.append(int(index))
        image = self.images[index]
        return (self.transform(image) if self.transform else image), int(self.labels[index])


class _ToTensor:
    """torchvision.transforms.ToTensor on a uint8 H x W image: 1 x H x W, float32, divided by 255."""

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        img = torch.from_numpy(np.array(image, np.uint8, copy=True))
        return img.view(1, *img.shape).contiguous().to(dtype=torch.get_default_dtype()).div(255)


class _Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


def _stub_modules() -> dict[str, types.ModuleType]:
    tv, datasets, transforms = (types.ModuleType(n) for n in ("torchvision", "torchvision.datasets",
                                                             "torchvision.transforms"))
    datasets.MNIST = _MNISTSlice
    transforms.ToTensor, transforms.Compose = _ToTensor, _Compose
    tv.datasets, tv.transforms = datasets, transforms
    scipy, scipy_io = types.ModuleType("scipy"), types.ModuleType("scipy.io")
    scipy.io = scipy_io
    return {"torchvision": tv, "torchvision.datasets": datasets, "torchvision.transforms": transforms,
            "scipy": scipy, "scipy.io": scipy_io}


# ---------------------------------------------------------------- running a script, traced


def _line(lines: list[str], text: str, after: int = 0) -> int:
    """1-based number of the first line at or after `after` whose stripped text starts with `text`."""
    for i in range(after, len(lines)):
        if lines[i].strip().startswith(text):
            return i + 1
    raise SystemExit(f"no line starting with {text!r}")


class Run:
    """One script executed whole under a tracer that records steps, epochs, prune and test() results."""

    def __init__(self, path: Path, argv: list[str], reg_type: bool = False):
        self.path, self.argv, self.reg_type = path, argv, reg_type
        self.lines = path.read_text().splitlines()
        self.epoch_line = _line(self.lines, "for epoch in pbar:")
        self.step_line = _line(self.lines, "optimizer.step()")
        pruning = next((i for i, s in enumerate(self.lines) if s.strip() == 'print("--- Pruning ---")'), None)
        self.pruned_line = _line(self.lines, "util.print_nonzeros(model)", pruning) if pruning is not None else None
        self.batches: list[dict] = []
        self.epochs: list[dict] = []
        self.snapshots: list[dict] = []
        self.script_tests: list[dict] = []
        self.pruned: dict | None = None
        self.ns: dict = {}

    def _epoch_end(self, frame) -> None:
        if not self.batches:
            return
        model = frame.f_globals["model"]
        order, _MNISTSlice.drawn[:] = list(_MNISTSlice.drawn), []
        self.epochs.append({"epoch": len(self.epochs) + 1, "order": encode_order(order), "batches": self.batches,
                            "params": {n: param_stats(p) for n, p in model.named_parameters()}})
        self.snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        self.batches = []

    def _tracer(self, frame, event, arg):
        code = frame.f_code
        if event == "line":
            if code.co_name == "train" and frame.f_lineno == self.epoch_line:
                self._epoch_end(frame)
            elif code.co_name == "train" and frame.f_lineno == self.step_line:
                loc = frame.f_locals
                batch = {"n": int(loc["target"].numel()), "loss": loc["loss"].item()}
                if "reg" in loc:  # element.py: the penalty before decay, and the objective
                    reg = loc["reg"]
                    batch["reg"] = reg.item() if torch.is_tensor(reg) else float(reg)
                    batch["total_loss"] = loc["total_loss"].item()
                self.batches.append(batch)
            elif code.co_name == "<module>" and frame.f_lineno == self.pruned_line and self.pruned is None:
                model = frame.f_globals["model"]
                self.pruned = {"params": {n: param_stats(p) for n, p in model.named_parameters()},
                               "test": self.script_tests[-1] if self.script_tests else None}
        elif event == "return":
            if code.co_name == "train":
                self._epoch_end(frame)
            elif code.co_name == "test":
                loc = frame.f_locals
                self.script_tests.append({"correct": int(loc["correct"]), "loss": float(loc["test_loss"]),
                                          "accuracy": float(arg)})
        return self._tracer

    def _global(self, frame, event, arg):
        return self._tracer if frame.f_code.co_filename == str(self.path) else None

    def execute(self, workdir: Path, stdout: io.StringIO) -> None:
        code = compile(self.path.read_text(), str(self.path), "exec")
        self.ns = {"__name__": "__main__", "__file__": str(self.path)}
        parse_args = argparse.ArgumentParser.parse_args

        def with_reg_type(parser, *a, **k):
            args = parse_args(parser, *a, **k)
            args.reg_type = args.reg
            return args

        old_argv, old_cwd = sys.argv, os.getcwd()
        sys.argv = [self.path.name, *self.argv]
        if self.reg_type:
            argparse.ArgumentParser.parse_args = with_reg_type
        os.chdir(workdir)
        _MNISTSlice.drawn[:] = []
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
                sys.settrace(self._global)
                try:
                    exec(code, self.ns)
                finally:
                    sys.settrace(None)
        finally:
            argparse.ArgumentParser.parse_args = parse_args
            sys.argv = old_argv
            os.chdir(old_cwd)

    def score_epochs(self) -> None:
        """Each epoch's model, put back into the script's model, scored by the script's own test()."""
        model, final = self.ns["model"], {k: v.clone() for k, v in self.ns["model"].state_dict().items()}
        sink = io.StringIO()
        for record, snapshot in zip(self.epochs, self.snapshots):
            model.load_state_dict(snapshot)
            before = len(self.script_tests)
            with contextlib.redirect_stdout(sink):
                sys.settrace(self._global)
                try:
                    self.ns["test"]()
                finally:
                    sys.settrace(None)
            record["test"] = self.script_tests.pop()
            assert len(self.script_tests) == before
        model.load_state_dict(final)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (as prunelab's provenance records it), else ""."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text(errors="replace").splitlines() if info.is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def source_record(root: Path, commit: str) -> dict:
    return {"repository": "https://github.com/yanghr/DeepHoyer", "commit": commit,
            "sha256": {f"{MLP}/{rel}": hashlib.sha256((root / MLP / rel).read_bytes()).hexdigest()
                       for rel in SOURCES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkout", type=Path, help="path of a DeepHoyer checkout (github.com/yanghr/DeepHoyer)")
    parser.add_argument("--mnist", type=Path, default=Path("dataset/mnist"), help="the four MNIST IDX files (raw or .gz)")
    parser.add_argument("--commit", help="its commit (default: git rev-parse HEAD in the checkout)")
    parser.add_argument("--out", type=Path, default=Path("tests/data/conformance/deephoyer_pipeline.json"))
    parser.add_argument("--workdir", type=Path, help="where the scripts run and save (default: a temporary "
                        "directory, removed after); kept, it holds the scripts' saves/*.pth")
    opts = parser.parse_args()
    root = opts.checkout.resolve()
    commit = opts.commit or subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                           text=True, check=True).stdout.strip()
    out = opts.out.resolve()
    torch.set_num_threads(1)
    _MNISTSlice.slices = read_slice(opts.mnist)
    sys.modules.update(_stub_modules())
    for name in [m for m in sys.modules if m in ("net", "util") or m.startswith("net.")]:
        del sys.modules[name]
    sys.path.insert(0, str(root / MLP))

    data: dict = {
        "source": source_record(root, commit),
        "command": ("OMP_NUM_THREADS=1 .venv/bin/python tools/conformance/deephoyer_pipeline.py <DeepHoyer checkout> "
                    f"--mnist dataset/mnist --commit {commit} --out tests/data/conformance/deephoyer_pipeline.json"),
        # Bit-identical float results need the same torch, kind of CPU and thread count (the test checks).
        "torch": torch.__version__, "numpy": np.__version__, "threads": torch.get_num_threads(),
        "cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "data": {split: slice_digest(*arrays) for split, arrays in _MNISTSlice.slices.items()},
        "init": {"seed": INIT_SEED, "params": {n: param_stats(t) for n, t in make_init().items()}},
        "setup": {"reg": REG, "prunelab_kind": REG_NAME, "decay": DECAY, "epochs": EPOCHS,
                  "v_sensitivity": V_SENSITIVITY, "t_threshold": T_THRESHOLD, "finetune_epochs": FINETUNE_EPOCHS},
    }
    with contextlib.ExitStack() as stack:
        work = opts.workdir.resolve() if opts.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        (work / "saves").mkdir(parents=True, exist_ok=True)
        torch.save(make_init(), work / "saves" / "elt_0.0_0.pth")
        trained = f"saves/elt_{DECAY}_{REG}"
        runs = {
            "train": Run(root / MLP / "element.py", ["--pretrained", "--reg", str(REG), "--decay", str(DECAY),
                                                     "--epochs", str(EPOCHS), "--no-cuda", "--log", "log.txt"],
                         reg_type=True),
            "prune_v": Run(root / MLP / "prun_tune_V.py", ["--model", trained, "--sensitivity", str(V_SENSITIVITY),
                                                           "--epochs", str(FINETUNE_EPOCHS), "--no-cuda"]),
            "prune_t": Run(root / MLP / "prun_tune_T.py", ["--model", trained, "--sensitivity", str(T_THRESHOLD),
                                                           "--epochs", str(FINETUNE_EPOCHS), "--no-cuda"]),
        }
        for key, run in runs.items():
            printed = io.StringIO()
            run.execute(work, printed)
            run.score_epochs()
            # The script's own last test() scored a model that score_epochs scored too (the same numbers).
            assert run.script_tests[-1] in [e["test"] for e in run.epochs], key
            lines = printed.getvalue().splitlines()
            args = run.ns["args"]
            entry = {"script": f"{MLP}/{run.path.name}", "argv": run.argv,
                     "settings": {k: v for k, v in sorted(vars(args).items()) if k not in ("log", "no_cuda")},
                     "optimizer": {k: v for k, v in run.ns["optimizer"].defaults.items()
                                   if k in ("lr", "weight_decay", "betas", "eps", "amsgrad")},
                     "script_tests": run.script_tests, "epochs": run.epochs}
            if run.pruned is not None:
                entry["pruned"] = run.pruned
                # the thresholds (V) and the first print_nonzeros, right after the prune loop
                first = next(i for i, s in enumerate(lines) if s.startswith("alive:"))
                entry["printed"] = [s for s in lines[: first + 1]
                                    if s.startswith(("Pruning with threshold", "fc", "alive:"))]
                entry["thresholds"] = {m.group(2): float(m.group(1)) for m in
                                       (re.fullmatch(r"Pruning with threshold : (\S+) for layer (\S+)", s)
                                        for s in lines) if m}
            data[key] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
