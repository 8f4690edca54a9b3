"""Reference values for tests/test_conformance_deephoyer.py, computed with DeepHoyer's own code.

DeepHoyer (Yang, Wen, Li; ICLR 2020; github.com/yanghr/DeepHoyer) writes its regularizers inline
in training scripts that parse arguments and download MNIST at import time, so nothing here
imports them. Instead this script reads the scripts of a DeepHoyer checkout at run time, cuts out
the lines that compute the penalty (from `reg = 0.0` / `if decay:` to `total_loss = loss+decay*reg`
inside `train`), compiles them with the original file name and line numbers, and executes them
on fixed float64 weights. A line tracer records which `reg += ...` lines actually ran; those lines
are written to the JSON verbatim. The same is done for the element-wise std pruning loop of
mnist/CNN/prun_tune_V.py and for `print_nonzeros` of mnist/CNN/util.py (the original's count of
all-zero filters / channels). The LeNet-5 model is the original class (mnist/CNN/net/models.py),
imported from the checkout (it needs only torch). No DeepHoyer code is copied into prunelab.

    OMP_NUM_THREADS=1 .venv/bin/python tools/conformance/deephoyer.py <DeepHoyer checkout> \
        [--commit SHA] [--out tests/data/conformance/deephoyer.json]

`make_tensors` below is prunelab's own (the test imports it to rebuild the same weights).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import torch

SEED = 20200212
DECAY = 1e-3  # element.py / structure.py default --decay
SENSITIVITY = 0.25  # prun_tune_V.py default --sensitivity (threshold = s x std of the layer)
# LeNet-5-Caffe as in DeepHoyer's mnist/CNN/net/models.py (LeNet_5): name -> (shape, init std)
LAYERS = {
    "conv1": ((20, 1, 5, 5), 0.25),
    "conv2": ((50, 20, 5, 5), 0.05),
    "fc1": ((500, 800), 0.02),
    "fc2": ((10, 500), 0.1),
}
# Groups scaled down to 1e-3 of the rest, as after structural (Group-HS) training: they fall
# under the std rule and become all-zero filters (rows) / input channels (columns).
SHRUNK_ROWS = {"conv1": [2, 9, 15], "conv2": [4, 17, 23, 31, 40, 48], "fc1": list(range(0, 500, 7)), "fc2": []}
SHRUNK_COLS = {"conv1": [], "conv2": [2, 9, 15], "fc1": [c * 16 + k for c in (4, 17, 23, 31, 40, 48) for k in range(16)],
               "fc2": list(range(0, 500, 7))}
HALF_ROW = {"conv2": 7}  # one filter at 0.3x: partly zeroed by the rule, not all-zero


def make_tensors() -> dict[str, torch.Tensor]:
    """The fixed float64 tensors (seeded): LeNet-5-Caffe weights and biases, plus two with exact zero groups."""
    g = torch.Generator().manual_seed(SEED)
    out: dict[str, torch.Tensor] = {}
    for name, (shape, std) in LAYERS.items():
        w = torch.randn(shape, generator=g, dtype=torch.float64) * std
        w[SHRUNK_ROWS[name]] *= 1e-3
        w[:, SHRUNK_COLS[name]] *= 1e-3
        if name in HALF_ROW:
            w[HALF_ROW[name]] *= 0.3
        out[f"{name}.weight"] = w
        out[f"{name}.bias"] = torch.randn(shape[0], generator=g, dtype=torch.float64) * 0.05
    # Exactly-zero groups: DeepHoyer's sqrt(sum w^2) has gradient NaN there, prunelab's is 0.
    z = out["conv2.weight"].clone()
    z[4] = 0.0
    z[:, 9] = 0.0
    out["conv2_zero_groups"] = z
    z = out["fc2.weight"].clone()
    z[3] = 0.0
    z[:, [0, 7]] = 0.0
    out["fc2_zero_groups"] = z
    return out


# Which tensors the per-layer expressions are evaluated on (weights only; biases go into the model totals).
LAYER_TENSORS = ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "conv2_zero_groups", "fc2_zero_groups"]


def entry_indices(n: int) -> list[int]:
    """Fixed flat indices at which gradient entries are recorded."""
    return sorted({0, 1, n // 7, n // 3, n // 2, (2 * n) // 3, n - 2, n - 1})


def tensor_stats(t: torch.Tensor) -> dict:
    """Small fingerprint of a tensor: sums over its finite entries, NaN count, some fixed entries."""
    flat = t.detach().reshape(-1)
    finite = torch.isfinite(flat)
    f = flat[finite]
    nan_idx = torch.nonzero(~finite).reshape(-1)
    idx = entry_indices(flat.numel())
    return {
        "numel": flat.numel(),
        "sum": f.sum().item(),
        "sum_abs": f.abs().sum().item(),
        "sum_sq": (f * f).sum().item(),
        "nonfinite": int((~finite).sum()),
        "nonfinite_index_sum": int(nan_idx.sum()) if nan_idx.numel() else 0,
        "entries": {str(i): (flat[i].item() if math.isfinite(flat[i].item()) else str(flat[i].item())) for i in idx},
    }


# ---------------------------------------------------------------- extracting the original's lines


class Block:
    """Lines [start, end] (1-based, inclusive) of an original file, compiled with its own name and numbering."""

    def __init__(self, root: Path, rel: str, start: int, end: int):
        self.rel, self.start, self.end = rel, start, end
        lines = (root / rel).read_text().splitlines()
        self.lines = lines[start - 1 : end]
        text = textwrap.dedent("\n".join(self.lines))
        # Pad with blank lines so the code object's line numbers are the file's.
        self.code = compile("\n" * (start - 1) + text + "\n", str(root / rel), "exec")
        self.path = str(root / rel)
        self.all_lines = lines

    def run(self, namespace: dict) -> set[int]:
        """Exec the block in `namespace`; return the line numbers that ran."""
        ran: set[int] = set()

        def tracer(frame, event, arg):
            if frame.f_code.co_filename == self.path:
                if event == "line":
                    ran.add(frame.f_lineno)
                return tracer
            return None

        sys.settrace(tracer)
        try:
            exec(self.code, namespace)
        finally:
            sys.settrace(None)
        return ran

    def source(self) -> dict:
        return {"file": self.rel, "lines": [self.start, self.end], "text": "\n".join(self.lines)}

    def text_of(self, lineno: int) -> str:
        return self.all_lines[lineno - 1].strip()


def penalty_block(root: Path, rel: str) -> Block:
    """`reg = 0.0` ... `total_loss = loss+decay*reg` around the `if decay:` of the training loop."""
    lines = (root / rel).read_text().splitlines()
    hits = [i for i, line in enumerate(lines) if line.strip() == "if decay:"]
    if len(hits) != 1:
        raise SystemExit(f"{rel}: expected one 'if decay:' line, found {len(hits)}")
    i = hits[0]
    start = max(j for j in range(i) if lines[j].strip() == "reg = 0.0")
    end = next(j for j in range(i, len(lines)) if lines[j].strip().startswith("total_loss = loss+decay*reg"))
    return Block(root, rel, start + 1, end + 1)


def prune_block(root: Path, rel: str) -> Block:
    """The module-level `for name, p in model.named_parameters():` loop that applies s x np.std(tensor)."""
    lines = (root / rel).read_text().splitlines()
    std = next(i for i, line in enumerate(lines) if "np.std(tensor)" in line)
    start = max(j for j in range(std) if lines[j].startswith("for name, p in model.named_parameters():"))
    return _indented_block(root, rel, lines, start)


def _indented_block(root: Path, rel: str, lines: list[str], start: int) -> Block:
    """Line `start` (0-based) and the indented lines under it, without trailing blank lines."""
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    while not lines[end - 1].strip():
        end -= 1
    return Block(root, rel, start + 1, end)


def function_block(root: Path, rel: str, name: str) -> Block:
    """A top-level `def name(...)` of an original file."""
    lines = (root / rel).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
    return _indented_block(root, rel, lines, start)


class OneParam:
    """A stand-in `model` exposing one named parameter, so the original loop gives the per-layer term."""

    def __init__(self, name: str, param: torch.Tensor):
        self._items = [(name, param)]

    def named_parameters(self):
        return iter(self._items)

    def parameters(self):
        return iter(p for _, p in self._items)


# Original penalty blocks and the reg types evaluated: (key, file, how reg_type is read, {reg_type: label}).
SOURCES = {
    "mnist_cnn_element": ("mnist/CNN/element.py", "args",
                          {1: "L1", 2: "Hoyer", 3: "Hoyer-Square", 4: "Transformed L1"}),
    "mnist_cnn_structure": ("mnist/CNN/structure.py", "args", {1: "Group Lasso", 2: "Group-HS"}),
    "cifar_group": ("cifar/cifar_group.py", "local", {1: "Group Lasso", 2: "Group Hoyer", 3: "Group-HS"}),
    "imagenet_group": ("imagenet/main_group.py", "local", {1: "Group Lasso", 2: "Group Hoyer", 3: "Group-HS"}),
}
# prunelab's claimed counterpart of each original expression (None: prunelab has no such regularizer).
PAIRING = {
    ("mnist_cnn_element", 1): "l1",
    ("mnist_cnn_element", 2): "hoyer",
    ("mnist_cnn_element", 3): "hoyer_square",
    ("mnist_cnn_element", 4): "transformed_l1",
    ("mnist_cnn_structure", 1): "group_lasso",
    ("mnist_cnn_structure", 2): "group_hoyer_square",
    ("cifar_group", 1): "group_lasso",
    ("cifar_group", 2): None,
    ("cifar_group", 3): "group_hoyer_square",
    ("imagenet_group", 1): "group_lasso",
    ("imagenet_group", 2): None,
    ("imagenet_group", 3): "group_hoyer_square",
}


def run_penalty(block: Block, how: str, reg_type: int, model, decay: float) -> tuple[torch.Tensor, list[int]]:
    """total_loss of the original block with loss = 0; and the `reg +=` lines that ran."""
    args = types.SimpleNamespace(reg_type=reg_type)
    ns = {"torch": torch, "model": model, "decay": decay, "loss": torch.zeros((), dtype=torch.float64)}
    if how == "args":
        ns["args"] = args
    else:
        ns["reg_type"] = reg_type
    ran = block.run(ns)
    reg_lines = sorted(n for n in ran if "reg +=" in block.text_of(n))
    total = ns["total_loss"]
    if not torch.is_tensor(total):
        total = torch.tensor(float(total), dtype=torch.float64)
    return total, reg_lines


def original_lenet(root: Path, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """DeepHoyer's own LeNet_5 (mnist/CNN/net/models.py) holding the fixed float64 tensors."""
    sys.path.insert(0, str(root / "mnist" / "CNN"))
    try:
        models = importlib.import_module("net.models")
    finally:
        sys.path.pop(0)
    model = models.LeNet_5(mask=False).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(tensors[name])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkout", type=Path, help="path of a DeepHoyer checkout (github.com/yanghr/DeepHoyer)")
    parser.add_argument("--commit", help="its commit (default: git rev-parse HEAD in the checkout)")
    parser.add_argument("--out", type=Path, default=Path("tests/data/conformance/deephoyer.json"))
    opts = parser.parse_args()
    root = opts.checkout.resolve()
    commit = opts.commit or subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                           text=True, check=True).stdout.strip()
    torch.set_default_dtype(torch.float64)
    tensors = make_tensors()

    blocks = {key: penalty_block(root, rel) for key, (rel, _, _) in SOURCES.items()}
    data: dict = {
        "source": {"repository": "https://github.com/yanghr/DeepHoyer", "commit": commit,
                   "blocks": {key: b.source() for key, b in blocks.items()}},
        "command": ("OMP_NUM_THREADS=1 .venv/bin/python tools/conformance/deephoyer.py <DeepHoyer checkout> "
                    f"--commit {commit} --out tests/data/conformance/deephoyer.json"),
        "torch": torch.__version__,
        "seed": SEED,
        "tensors": {name: {"shape": list(t.shape), **tensor_stats(t)} for name, t in tensors.items()},
        "layer_terms": [],
        "model_totals": [],
    }

    # Per-layer terms: the original loop run on a model with one parameter, decay = 1, loss = 0.
    layer_names = {"conv1.weight": "conv1.weight", "conv2.weight": "conv2.weight", "fc1.weight": "fc1.weight",
                   "fc2.weight": "fc2.weight", "conv2_zero_groups": "conv2.weight", "fc2_zero_groups": "fc2.weight"}
    for key, (rel, how, types_) in SOURCES.items():
        for reg_type, label in types_.items():
            entry = {"source": key, "file": rel, "reg_type": reg_type, "label": label,
                     "prunelab": PAIRING[(key, reg_type)], "tensors": {}}
            for tname in LAYER_TENSORS:
                w = tensors[tname].clone().requires_grad_(True)
                total, reg_lines = run_penalty(blocks[key], how, reg_type, OneParam(layer_names[tname], w), 1.0)
                if not reg_lines:
                    continue  # the original skips this shape (e.g. cifar_group only takes 2-D / 4-D weights)
                total.backward()
                entry["tensors"][tname] = {
                    "evaluated": {str(n): blocks[key].text_of(n) for n in reg_lines},
                    "value": total.item(),
                    "grad": tensor_stats(w.grad),
                }
            data["layer_terms"].append(entry)

    # Whole-model totals: decay x sum over the parameters the original loop takes (its own LeNet_5).
    for key, (rel, how, types_) in SOURCES.items():
        for reg_type, label in types_.items():
            model = original_lenet(root, tensors)
            total, reg_lines = run_penalty(blocks[key], how, reg_type, model, DECAY)
            total.backward()
            names = [n for n, p in model.named_parameters() if p.grad is not None]
            data["model_totals"].append({
                "source": key, "file": rel, "reg_type": reg_type, "label": label, "decay": DECAY,
                "prunelab": PAIRING[(key, reg_type)],
                "evaluated": {str(n): blocks[key].text_of(n) for n in reg_lines},
                "parameters": names,
                "value": total.item(),
                "grads": {n: tensor_stats(p.grad) for n, p in model.named_parameters() if p.grad is not None},
            })

    # Structural counts: prun_tune_V.py's std rule on the original LeNet_5, then util.print_nonzeros.
    prune = prune_block(root, "mnist/CNN/prun_tune_V.py")
    count = function_block(root, "mnist/CNN/util.py", "print_nonzeros")
    model = original_lenet(root, tensors)
    printed: list[str] = []

    def capture(*a, **k):
        printed.append(" ".join(str(x) for x in a))

    import numpy as np

    prune.run({"model": model, "args": types.SimpleNamespace(sensitivity=SENSITIVITY), "np": np, "torch": torch,
               "device": torch.device("cpu"), "print": capture})
    thresholds = {}
    for line in printed:
        m = re.fullmatch(r"Pruning with threshold : (\S+) for layer (\S+)", line)
        thresholds[m.group(2)] = float(m.group(1))
    printed.clear()
    ns = {"np": np, "print": capture}
    count.run(ns)
    ns["print_nonzeros"](model)
    counts = {}
    for line in printed:
        m = re.match(r"(\S+)\s+\| dim0 =\s+(\d+) /\s+(\d+) .*\| dim1 =\s+(\d+) /\s+(\d+)", line)
        if m:
            nz0, n0, nz1, n1 = map(int, m.groups()[1:])
            # dim0 = sum over axis 0 -> one entry per input channel (column); dim1 -> per output filter (row)
            counts[m.group(1)] = {"zero_cols": n0 - nz0, "cols": n0, "zero_rows": n1 - nz1, "rows": n1}
    data["structure"] = {
        "sensitivity": SENSITIVITY,
        "prune": prune.source(),
        "count": count.source(),
        "printed": printed,
        "thresholds": thresholds,
        "pruned": {n: {"zeros": int((p == 0).sum()), **tensor_stats(p.detach())} for n, p in model.named_parameters()},
        "counts": counts,
    }

    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {opts.out} ({opts.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
