"""Conformance data for the pruning-at-initialization scores: run the original Synaptic-Flow
code (Tanaka et al. 2020, github.com/ganguli-lab/Synaptic-Flow) unmodified on a fixed tiny
network and fixed inputs, and write what it computes as JSON test data.

    OMP_NUM_THREADS=1 .venv/bin/python tools/conformance/synaptic_flow.py /path/to/Synaptic-Flow \
        [--commit SHA] [--out tests/data/conformance/synaptic_flow.json] \
        [--zero-ties-out tests/data/conformance/synaptic_flow_zero_ties.json] [--zero-ties-only]

The checkout is only imported from (Pruners/pruners.py, Layers/layers.py, Utils/generator.py,
prune.py); none of its code is copied into prunelab. tests/test_conformance_synaptic_flow.py
rebuilds the same network and inputs with prunelab alone and compares against the JSON.
The second file (zero_ties below) holds the same network scored on inputs whose channel
ZERO_CHANNEL is 0 in every image, so that SNIP and GraSP score those conv1 weights exactly 0, and
what the original's global mask and prune_loop do at densities that need more weights than there
are positive scores; tests/test_conformance_synaptic_flow_zero_ties.py reads it.

The network and inputs below must stay identical to the test's (_tiny_net / _batches there);
the JSON carries checksums of both, which the test checks first.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

RANDOM_SEED = 11  # torch.manual_seed right before Rand scores (float32)

# conv1 -> relu -> conv2 (stride 2) -> relu -> flatten -> fc1 -> relu -> fc2, input 3 x 8 x 8.
# 216 + 1152 + 8192 + 320 = 9880 weights: at density 0.1 and 0.01 prunelab's round(d N) and
# Synaptic-Flow's N - int((1 - d) N) give the same counts (988 and 99); checked below.
SHAPES = {
    "conv1.weight": (8, 3, 3, 3), "conv1.bias": (8,),
    "conv2.weight": (16, 8, 3, 3), "conv2.bias": (16,),
    "fc1.weight": (32, 256), "fc1.bias": (32,),
    "fc2.weight": (10, 32), "fc2.bias": (10,),
}
WEIGHTS = [name for name in SHAPES if name.endswith(".weight")]
INPUT = (3, 8, 8)
CLASSES = 10
BATCHES, BATCH_SIZE = 2, 16
DENSITIES = (0.1, 0.01)
SYNFLOW_ROUNDS = 100

# Zero ties: input channel 2 is 0 in every scoring image, so the 8 x 9 conv1 weights that read it get
# SNIP and GraSP scores of exactly 0 (the loss does not depend on them), besides the exact zeros of
# units that are dead on every image. (method, density): 0.96 and 0.56 need more weights than have a
# positive score and are more than 5 short (prune_loop stops); 0.952 is 4 short (it goes on with
# fewer); 0.5 and 0.1 leave every zero below the threshold; GraSP at 0.7 keeps every zero, as its
# negative scores rank below them; 1 / 1.051, 1 / 1.859 and 1 / 1.705 are the compressions prunelab's
# refusal names (9880 / 9402 positive SNIP scores; 9880 / 5316 positive and 9880 / (5316 + 478)
# nonnegative GraSP scores). At each, round(d N) == N - int((1 - d) N) (checked below).
ZERO_CHANNEL = 2
ZERO_TIE_CASES = (("snip", 0.96), ("snip", 0.952), ("snip", 1 / 1.051), ("snip", 0.5), ("snip", 0.1),
                  ("grasp", 0.56), ("grasp", 1 / 1.859), ("grasp", 1 / 1.705), ("grasp", 0.5), ("grasp", 0.7))


def tiny_state() -> dict[str, torch.Tensor]:
    """float64 parameters from a seeded CPU generator (deterministic across machines)."""
    g = torch.Generator().manual_seed(20200601)
    state = {}
    for name, shape in SHAPES.items():
        if name.endswith(".weight"):
            fan_in = math.prod(shape[1:])
            state[name] = torch.randn(shape, generator=g, dtype=torch.float64) * math.sqrt(2.0 / fan_in)
        else:
            state[name] = torch.randn(shape, generator=g, dtype=torch.float64) * 0.1
    return state


def tiny_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    return [(torch.randn((BATCH_SIZE, *INPUT), generator=g, dtype=torch.float64),
             torch.randint(0, CLASSES, (BATCH_SIZE,), generator=g)) for _ in range(BATCHES)]


def checksums(state, batches) -> dict:
    return {
        "weights": {name: [float(t.sum()), float((t * t).sum())] for name, t in state.items()},
        "images": [float(x.sum()) for x, _ in batches],
        "labels": [y.tolist() for _, y in batches],
    }


def stats(score: torch.Tensor) -> dict:
    s = score.detach().double()
    return {"sum": float(s.sum()), "abs_sum": float(s.abs().sum()), "sumsq": float((s * s).sum()),
            "min": float(s.min()), "max": float(s.max())}


def zero_channel_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """tiny_batches with input channel ZERO_CHANNEL set to 0 in every image."""
    batches = tiny_batches()
    for images, _ in batches:
        images[:, ZERO_CHANNEL] = 0.0
    return batches


def bitmap(mask: torch.Tensor) -> str:
    """A mask's flat entries as hex, 4 per digit, the first entry the highest bit, 0-padded at the end."""
    bits = "".join("1" if b else "0" for b in mask.flatten().bool().tolist())
    bits += "0" * (-len(bits) % 4)
    return "".join(f"{int(bits[i:i + 4], 2):x}" for i in range(0, len(bits), 4))


def signs(scores: dict[str, torch.Tensor]) -> dict:
    """Positive, zero and negative scores, in all and per weight."""
    layers = {n: {"positive": int((s > 0).sum()), "zero": int((s == 0).sum()), "negative": int((s < 0).sum())}
              for n, s in scores.items()}
    return {key: sum(v[key] for v in layers.values()) for key in ("positive", "zero", "negative")} | {"layers": layers}


def zero_ties(pruners, generator, prune_loop, fresh, scored, commit: str) -> dict:
    """The original's global mask where its threshold is 0: SNIP and GraSP through prune_loop (one
    round, as the scores above), its "ERROR: ..." line and quit() caught."""
    batches = zero_channel_batches()
    total = sum(math.prod(SHAPES[n]) for n in WEIGHTS)
    loss = nn.CrossEntropyLoss()
    out = {
        "source": {"repository": "https://github.com/ganguli-lab/Synaptic-Flow", "commit": commit,
                   "modules": ["Pruners/pruners.py", "Layers/layers.py", "Utils/generator.py", "prune.py"]},
        "command": "OMP_NUM_THREADS=1 .venv/bin/python tools/conformance/synaptic_flow.py <Synaptic-Flow checkout> "
                   f"--commit {commit} --zero-ties-only "
                   "--zero-ties-out tests/data/conformance/synaptic_flow_zero_ties.json",
        "torch": torch.__version__,
        "network": "as synaptic_flow.json (tiny_state), float64",
        "zero_channel": ZERO_CHANNEL,
        "checksums": {"images": [float(x.sum()) for x, _ in batches], "labels": [y.tolist() for _, y in batches],
                      "zero_channel_abs_sum": float(sum(x[:, ZERO_CHANNEL].abs().sum() for x, _ in batches))},
        "total": total,
        "notes": ("Each case: prune_loop(model, nn.CrossEntropyLoss(), pruner, batches, cpu, density, 'exponential', "
                  "'global', 1) on a fresh model in eval mode; SystemExit from its quit() caught. budget = the "
                  "original's count N - int((1 - d) N); expected = N d, which its check compares the kept count "
                  "with (stops when off by >= 5); threshold = kthvalue of its scores at k = int((1 - d) N), "
                  "recomputed here from Pruner.scores; signs = positive / zero / negative scores in "
                  "Pruner.scores; masks = the kept weights as hex bitmaps (4 flat entries per digit, the first the "
                  "highest bit, 0-padded)."),
        "cases": [],
    }
    classes = {"snip": pruners.SNIP, "grasp": pruners.GraSP}
    for method, density in ZERO_TIE_CASES:
        budget = total - int((1.0 - density) * total)
        assert budget == round(density * total), (density, budget, round(density * total))
        torch.manual_seed(0)
        model = fresh()
        pruner = classes[method](generator.masked_parameters(model))
        printed = io.StringIO()
        aborted = False
        with contextlib.redirect_stdout(printed):
            try:
                prune_loop(model, loss, pruner, batches, torch.device("cpu"), density, "exponential", "global", 1)
            except SystemExit:
                aborted = True
        scores = scored(model, pruner)
        flat = torch.cat([scores[n].flatten() for n in WEIGHTS])
        masks = {f"{n}.weight": m.weight_mask for n, m in model.named_children()}
        errors = [line for line in printed.getvalue().splitlines() if line.startswith("ERROR")]
        out["cases"].append({
            "method": method, "density": density, "budget": budget, "expected": total * density,
            "kept": int(sum(int(m.sum()) for m in masks.values())),
            "kept_per_layer": {n: int(m.sum()) for n, m in masks.items()},
            "aborted": aborted, "error": errors[0] if errors else None,
            "threshold": float(torch.kthvalue(flat, int((1.0 - density) * total)).values),
            "signs": signs({n: scores[n] for n in WEIGHTS}),
            "masks": {n: bitmap(m) for n, m in masks.items()},
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of ganguli-lab/Synaptic-Flow")
    parser.add_argument("--commit", help="its commit (read with git when the checkout is a git work tree)")
    parser.add_argument("--out", type=Path, default=Path("tests/data/conformance/synaptic_flow.json"))
    parser.add_argument("--zero-ties-out", type=Path,
                        default=Path("tests/data/conformance/synaptic_flow_zero_ties.json"))
    parser.add_argument("--zero-ties-only", action="store_true", help="write only the zero-ties file")
    args = parser.parse_args()
    commit = args.commit
    if commit is None:
        commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()

    # float64 throughout: the original builds its masks and SynFlow's all-ones input in the default dtype.
    torch.set_default_dtype(torch.float64)
    sys.path.insert(0, str(args.checkout.resolve()))
    from Layers import layers  # noqa: E402  (the original modules, unmodified)
    from Pruners import pruners
    from Utils import generator
    from prune import prune_loop

    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = layers.Conv2d(3, 8, 3, padding=1)
            self.conv2 = layers.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc1 = layers.Linear(256, 32)
            self.fc2 = layers.Linear(32, 10)

        def forward(self, x):
            x = F.relu(self.conv2(F.relu(self.conv1(x))))
            return self.fc2(F.relu(self.fc1(x.flatten(1))))

    state, batches = tiny_state(), tiny_batches()

    def fresh():
        model = TinyNet()
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and all("mask" in k for k in missing), (missing, unexpected)
        return model

    def scored(model, pruner) -> dict:
        names = {id(p): n for n, p in model.named_parameters()}
        return {names[i]: s for i, s in pruner.scores.items()}

    def kept(model) -> dict:
        return {f"{n}.weight": m.weight_mask.flatten().nonzero().flatten().tolist()
                for n, m in model.named_children()}

    loss = nn.CrossEntropyLoss()
    total = sum(math.prod(SHAPES[n]) for n in WEIGHTS)
    counts = {}
    for d in DENSITIES:
        original = total - int((1.0 - d) * total)  # the original's _global_mask (without ties)
        assert original == round(d * total), (d, original, round(d * total))
        counts[str(d)] = original

    out = {
        "source": {"repository": "https://github.com/ganguli-lab/Synaptic-Flow", "commit": commit,
                   "modules": ["Pruners/pruners.py", "Layers/layers.py", "Utils/generator.py", "prune.py"]},
        "command": "OMP_NUM_THREADS=1 .venv/bin/python tools/conformance/synaptic_flow.py <Synaptic-Flow checkout> "
                   f"--commit {commit} --out tests/data/conformance/synaptic_flow.json",
        "torch": torch.__version__,
        "network": {"shapes": {k: list(v) for k, v in SHAPES.items()}, "weights": WEIGHTS, "input": list(INPUT),
                    "batches": BATCHES, "batch_size": BATCH_SIZE, "dtype": "float64"},
        "checksums": checksums(state, batches),
        "counts": counts,
        "notes": ("Scores as the original leaves them in Pruner.scores after prune_loop(..., epochs=1, "
                  "schedule='exponential', scope='global') in eval mode with nn.CrossEntropyLoss(): SNIP divided by "
                  "the sum of all scores, GraSP by |sum| + 1e-10 (rank-preserving normalisations). masks: sorted flat "
                  "indices kept per weight, keyed by density."),
        "scores": {},
        "random_seed": RANDOM_SEED,
    }
    for label, cls in [("magnitude", pruners.Mag), ("snip", pruners.SNIP), ("grasp", pruners.GraSP),
                       ("synflow", pruners.SynFlow), ("random", pruners.Rand)]:
        entry = {"masks": {}, "kept": {}}
        for d in DENSITIES:
            torch.manual_seed(0)
            model = fresh()
            if label == "random":
                # Rand draws randn_like(p) per weight in order: in float32 (as real runs), seeded right
                # before scoring, the draws are prunelab's random score's under the same seed.
                model = model.float()
                torch.manual_seed(RANDOM_SEED)
            pruner = cls(generator.masked_parameters(model))
            prune_loop(model, loss, pruner, batches, torch.device("cpu"), d, "exponential", "global", 1)
            if label != "random":
                entry["stats"] = {n: stats(s) for n, s in scored(model, pruner).items()}
            entry["masks"][str(d)] = kept(model)
            entry["kept"][str(d)] = {n: len(v) for n, v in kept(model).items()}
        out["scores"][label] = entry

    # SynFlow, 100 rounds of prune_loop's exponential schedule; the count after every round is observed.
    rounds = {"rounds": SYNFLOW_ROUNDS, "masks": {}, "alive_per_round": {}}
    for d in DENSITIES:
        model = fresh()
        pruner = pruners.SynFlow(generator.masked_parameters(model))
        alive, mask = [], pruner.mask

        def observed(sparsity, scope, mask=mask, alive=alive):
            mask(sparsity, scope)
            alive.append(int(sum(m.sum() for m, _ in pruner.masked_parameters)))

        pruner.mask = observed
        prune_loop(model, loss, pruner, batches, torch.device("cpu"), d, "exponential", "global", SYNFLOW_ROUNDS)
        rounds["masks"][str(d)] = kept(model)
        rounds["alive_per_round"][str(d)] = alive
    out["synflow_rounds"] = rounds

    ties = zero_ties(pruners, generator, prune_loop, fresh, scored, commit)
    written = [(args.zero_ties_out, ties)] if args.zero_ties_only else [(args.out, out), (args.zero_ties_out, ties)]
    for path, data in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, separators=(",", ":"), sort_keys=False) + "\n")
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
