"""check: a run's figures against the checked-in results/<name>/ -> one line per figure that drifted.

What is compared, published copy first, the run's second:
  a config with `seeds`: each seed's runs/<name>/seeds/seed-<k>/metrics.json with results/<name>/
      replicates.json's "metrics"[k] (the seeds the config, after --set, names, that have run: one line
      names those that have not);
  a sweep: runs/<name>/sweep.json with results/<name>/sweep.json, cell by cell (matched by cell id);
  otherwise: runs/<name>/metrics.json with results/<name>/metrics.json, and compress.json with
      results/<name>/compress.json when that is checked in.
Rules, figure by figure (every leaf of those JSON files; a table or list one side lacks is one line):
  accuracies (any key ending in "accuracy", and the figures under an "accuracy" table): within
      ACCURACY_TOLERANCE percentage points, the bound included;
  figures that follow where training left the weights rather than the config (TRAINED: effective FLOPs,
      theoretical speedup, the compressed file's entropy-coded sizes): within RELATIVE_TOLERANCE of the
      checked-in value;
  not compared (IGNORED): how and where it ran (made_by, device, threads, latency, seconds), digests and
      hashes of inputs and files, paths, and losses (they move with every bit of the weights, and no
      report states one as a result);
  everything else exactly: parameter, weight and nonzero counts, FLOPs, compression ratios, dense and
      sparse bytes, quantizer settings, cell and override values.
On the kind of CPU, torch and thread count that made a report every figure comes out bit-identical
(README, "Same numbers"); the tolerances absorb another machine or torch (docs/ci.md has the measurements).
Both files are read as the artifacts they are, their digests checked: a hand-edited reference is refused
as damaged (exit 2), so a reference changes only through `publish`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .. import checkpoints, paths, provenance
from ..atomic import load_json
from ..config import Experiment
from ..errors import DriftFound, UserError
from ..log import console, print_plain
from ..replicates import measured as measured_seeds
from ..report.replicates import not_run_line

# Percentage points an accuracy may move. LeNet-5's seeds 0 and 1 made with AVX2 instead of AVX-512
# kernels (same torch, one thread) moved their accuracies by 0.01 to 0.07 points; over seeds 0, 1, 2
# the LeNets' accuracies spread by up to 0.14 points. A changed method or a bug moves them by more.
ACCURACY_TOLERANCE = 0.3

# Relative change allowed in a TRAINED figure. Global pruning's split of the same number of weights
# over the layers follows the trained values: the AVX2 runs above moved effective FLOPs by 1.6-1.8%; over
# seeds, LeNet-5's theoretical speedup spreads from 1.85x to 2.18x. The Huffman-coded compressed file
# of a LeNet-5 (Caffe) coded on AVX2 was 0.4% smaller; over seeds such files differ by under 1%.
RELATIVE_TOLERANCE = 0.10

# Keys (and whole tables) whose figures follow the trained weights: see RELATIVE_TOLERANCE.
TRAINED = frozenset({"effective_flops", "theoretical_speedup", "file_bytes", "storage_compression", "sizes"})

# Keys whose whole subtree is not a result (see the module docstring).
IGNORED = frozenset({
    "made_by", "device", "torch_threads", "latency", "seconds",
    "digest", "inputs", "config_hashes", "config_hash", "file_sha256",
    "path", "results",
    "sparse_kernels", "exported",  # kernel choices, speedups, the exported program: timings (and its identity)
    "loss", "train_loss", "test_loss",
})

ACCURACY_SUFFIX = "accuracy"
EXACT, POINTS, RELATIVE = "exact", "points", "relative"  # how a figure is compared
SHOWN = 60  # characters: a longer list or table is shown by its length
DIGITS = 9  # accuracies are compared after rounding their difference (binary floats: 99.69 - 99.39 > 0.3)


class _Missing:
    """A figure one of the two files does not have."""

    def __repr__(self) -> str:
        return "missing"


MISSING = _Missing()


@dataclass(frozen=True)
class Pair:
    """One comparison: a part of a checked-in file, and the run's figures it must match."""

    published: Path
    prefix: str  # where in the published file: "" (all of it), "metrics.<seed>." or "cell <cell id>: "
    reference: object  # MISSING: a sweep cell that is not checked in
    run: Path
    fresh: object  # MISSING: a checked-in sweep cell the run does not have

    def lines(self) -> list[str]:
        if self.fresh is MISSING:
            return [f"{self.published}: {self.prefix}not in {self.run}"]
        if self.reference is MISSING:
            return [f"{self.published}: {self.prefix}not checked in, but in {self.run}"]
        return [f"{self.published}: {self.prefix}{line}" for line in drifted(self.reference, self.fresh)]


def _show(value: object) -> str:
    if value is MISSING:
        return "missing"
    shown = json.dumps(value)
    return f"({len(value)} entries)" if isinstance(value, (dict, list)) and len(shown) > SHOWN else shown


def _same(published: object, fresh: object) -> bool:
    if isinstance(published, float) and isinstance(fresh, float) and math.isnan(published) and math.isnan(fresh):
        return True  # NaN != NaN, but it is the same figure
    return isinstance(published, bool) == isinstance(fresh, bool) and published == fresh


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rule(key: object, inherited: str) -> str:
    if str(key).endswith(ACCURACY_SUFFIX):
        return POINTS
    return RELATIVE if key in TRAINED else inherited


def _within(rule: str, published: float, fresh: float) -> bool:
    if rule == POINTS:  # rounded: in binary floats 99.69 - 99.39 is 0.30000000000000426
        return round(abs(fresh - published), DIGITS) <= ACCURACY_TOLERANCE
    return abs(fresh - published) <= RELATIVE_TOLERANCE * abs(published)


TOLERANCE_TEXT = {POINTS: f"tolerance {ACCURACY_TOLERANCE:.2f} points",
                  RELATIVE: f"tolerance {RELATIVE_TOLERANCE:.0%}"}


def drifted(published: object, fresh: object, field: str = "", rule: str = EXACT) -> Iterator[str]:
    """'<field> <published> -> <fresh> (<rule>)' for each figure of `fresh` that drifted from `published`."""
    if isinstance(published, dict) and isinstance(fresh, dict):
        for key in sorted(published.keys() | fresh.keys(), key=str):
            if key not in IGNORED:
                yield from drifted(published.get(key, MISSING), fresh.get(key, MISSING), f"{field}{key}.",
                                   _rule(key, rule))
        return
    field = field.rstrip(".")
    lists = isinstance(published, list) and isinstance(fresh, list)
    if lists and len(published) == len(fresh) and any(isinstance(item, dict) for item in published + fresh):
        for index, (old, new) in enumerate(zip(published, fresh)):  # e.g. a log's rows
            yield from drifted(old, new, f"{field}[{index}].", rule)
    elif rule != EXACT and _number(published) and _number(fresh):
        if not _within(rule, published, fresh):
            yield f"{field} {_show(published)} -> {_show(fresh)} ({TOLERANCE_TEXT[rule]})"
    elif not _same(published, fresh):
        yield f"{field} {_show(published)} -> {_show(fresh)} (must be equal)"


def _read_run(exp: Experiment, path: Path) -> dict:
    """A run's artifact; missing or damaged -> a UserError with the command that makes the whole run."""
    return checkpoints.read_input(exp, path, load_json, task="sweep" if exp.sweep is not None else "reproduce")


def _seed_pairs(exp: Experiment, published: Path) -> list[Pair]:
    measured = load_json(published).get("metrics", {})
    runs, missing = measured_seeds(exp)
    if missing:
        print_plain([not_run_line(str(paths.replicates_dir(exp)), [run.seed for run in runs], missing, "checking",
                                  provenance.command(exp, "reproduce"))])
    found = []
    for run in runs:
        if str(run.seed) not in measured:
            held = ", ".join(measured) or "none"
            raise UserError(f"{published}: no seed {run.seed} (it holds seeds {held}); check only those, "
                            f"e.g. --set 'seeds=[{next(iter(measured), 0)}]'")
        found.append(Pair(published, f"metrics.{run.seed}.", measured[str(run.seed)], paths.metrics(run),
                          _read_run(exp, paths.metrics(run))))
    return found


def _sweep_pairs(exp: Experiment, published: Path) -> list[Pair]:
    run = paths.sweep_summary(exp)
    reference, fresh = load_json(published), _read_run(exp, run)
    old = {row["cell"]: row for row in reference.get("cells", [])}
    new = {row["cell"]: row for row in fresh.get("cells", [])}
    found = [Pair(published, "", {key: value for key, value in reference.items() if key != "cells"}, run,
                  {key: value for key, value in fresh.items() if key != "cells"})]
    for cell in [*old, *(cell for cell in new if cell not in old)]:  # checked-in order, then new cells
        found.append(Pair(published, f"cell {cell}: ", old.get(cell, MISSING), run, new.get(cell, MISSING)))
    return found


def _whole(exp: Experiment, published: Path, run: Path) -> Pair:
    """A run's file against its namesake in results/<name>/."""
    reference = published / run.name
    return Pair(reference, "", load_json(reference), run, _read_run(exp, run))


def pairs(exp: Experiment) -> list[Pair]:
    """Every comparison `check` makes for this config (see the module docstring)."""
    published = paths.published_dir(exp)
    if not published.is_dir():  # results/ is read from the current directory, as the config's paths are
        elsewhere = provenance.elsewhere(exp, published)
        raise UserError(f"{published}: no checked-in results for {exp.path} (`publish` writes them)"
                        + (f"; {elsewhere}" if elsewhere else ""))
    if exp.seeds:
        return _seed_pairs(exp, published / paths.replicates_summary(exp).name)
    if exp.sweep is not None:
        return _sweep_pairs(exp, published / paths.sweep_summary(exp).name)
    found = [_whole(exp, published, paths.metrics(exp))]
    if (published / paths.compress_log(exp).name).is_file():  # the compress stage's record, where checked in
        found.append(_whole(exp, published, paths.compress_log(exp)))
    return found


def check(exp: Experiment, force: bool = False) -> None:
    """Compare a run's figures with the checked-in results/<name>/ and name each one that drifted.

    Accuracies may move by ACCURACY_TOLERANCE points, TRAINED figures by RELATIVE_TOLERANCE, every other
    figure must be equal. Drift raises DriftFound (exit status 1); a missing run or reference is a
    UserError (2). `force` is accepted as every task's is: nothing is made, so nothing is redone."""
    lines = [line for pair in pairs(exp) for line in pair.lines()]
    if lines:
        raise DriftFound(lines)
    console.print(f"[green]{paths.published_dir(exp)}[/]: {paths.run_dir(exp)} matches it (accuracies within "
                  f"{ACCURACY_TOLERANCE:.2f} points, trained sizes within {RELATIVE_TOLERANCE:.0%}, the rest exactly)")
