"""The DeepHoyer frontier: accuracy vs nonzero weights for each regularizer x decay of a sweep.

Each cell of a `[sweep] kind = "regularizer"` config is one regularizer and one
decay, trained, threshold-pruned and fine-tuned under the masks; its point is
(nonzero conv/linear weights %, top-1 % after fine-tuning). Han et al.'s
magnitude pipeline on the same model and data (the checked-in config named in
MAGNITUDE_REFERENCE) is the reference point. `compare` finds, for each reference
point, the sparsest Hoyer-Square point at its accuracy; frontier_report.py writes
the report and the curve from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...atomic import load_json
from ...config import Experiment

KIND_KEY = "train.regularizer.kind"
DECAY_KEY = "train.regularizer.decay"
HOYER_SQUARE = "hoyer_square"
HAN_MAGNITUDE = "Han magnitude pruning"
# "Equal accuracy" allows this much noise (points of top-1): one binomial standard deviation
# of a 10,000-image test accuracy near 90% is 0.3 points.
ACCURACY_TOLERANCE = 0.2
# (arch, dataset) -> the experiment (configs/<name>.toml) running Han et al.'s magnitude pipeline.
MAGNITUDE_REFERENCE = {
    ("lenet300_100", "fashion-mnist"): "lenet300_100_fashion",
    ("lenet300_100", "mnist"): "lenet300_100/seeds/seed-{seed}",  # a replicated config: the same seed's run
    ("lenet5_caffe", "fashion-mnist"): "lenet5_caffe_fashion",
    ("lenet5_caffe", "mnist"): "lenet5_caffe/seeds/seed-{seed}",
}
PRETTY = {"l1": "L1", "hoyer": "Hoyer", "hoyer_square": "Hoyer-Square", "transformed_l1": "transformed L1",
          "group_lasso": "group lasso", "group_hoyer_square": "Group-HS", "magnitude": "Han magnitude"}


@dataclass(frozen=True)
class Point:
    """One pruned-and-fine-tuned model on the frontier."""

    method: str  # a regularizer name, or "magnitude" for the reference
    decay: float | None
    nonzero: float  # nonzero conv/linear weights, % of all conv/linear weights
    accuracy: float  # top-1 %, after pruning and fine-tuning
    trained_accuracy: float | None  # top-1 % before pruning (after regularized training)
    compression: float
    speedup: float  # theoretical, element-wise
    cell: str

    @property
    def label(self) -> str:
        name = PRETTY.get(self.method, self.method)
        return name if self.decay is None else f"{name} (decay {self.decay:g})"


def _point(method: str, decay: float | None, metrics: dict, cell: str) -> Point:
    pruned = metrics["pruned"]
    trained = metrics.get("dense", {}).get("accuracy")
    return Point(method, decay, 100 * pruned["nonzero_weights"] / pruned["weights"], pruned["accuracy"], trained,
                 pruned["compression"], pruned["theoretical_speedup"], cell)


def cell_points(exp: Experiment, summary: dict) -> tuple[list[Point], list[str]]:
    """(a point per measured cell, ids of cells without metrics); kind/decay from the overrides or the base."""
    base = exp.train.regularizer
    points, missing = [], []
    for row in summary["cells"]:
        if row["metrics"] is None or "pruned" not in row["metrics"]:
            missing.append(row["cell"])
            continue
        kind = row["overrides"].get(KIND_KEY, base.kind if base else "none")
        decay = row["overrides"].get(DECAY_KEY, base.decay if base else 0.0)
        points.append(_point(kind, float(decay), row["metrics"], row["cell"]))
    return points, missing


def magnitude_reference(exp: Experiment) -> tuple[Point | None, float | None, Path | None]:
    """(Han's pruned point, its dense top-1, the metrics.json read) or Nones where there is none."""
    name = MAGNITUDE_REFERENCE.get((exp.model.arch, exp.data.dataset))
    if name is None:
        return None, None, None
    name = name.format(seed=exp.seed)
    path = Path(exp.results_root) / name / "metrics.json"
    if not path.is_file():
        return None, None, path
    metrics = load_json(path)
    if "pruned" not in metrics:
        return None, metrics.get("dense", {}).get("accuracy"), path
    return _point("magnitude", None, metrics, name), metrics.get("dense", {}).get("accuracy"), path


def sparsest_at(points: list[Point], accuracy: float, tolerance: float = ACCURACY_TOLERANCE) -> Point | None:
    """The point with the fewest nonzero weights among those at least as accurate (minus the tolerance)."""
    eligible = [p for p in points if p.accuracy >= accuracy - tolerance]
    return min(eligible, key=lambda p: p.nonzero) if eligible else None


def compare(candidate: list[Point], references: list[Point], strict: bool = False,
            tolerance: float = ACCURACY_TOLERANCE) -> list[dict]:
    """For each reference point: the candidate's sparsest point at its accuracy, and whether it wins.

    It wins with nonzero <= the reference's (< with `strict`); it loses when the
    candidate never reaches the reference's accuracy.
    """
    rows = []
    for ref in references:
        best = sparsest_at(candidate, ref.accuracy, tolerance)
        wins = best is not None and (best.nonzero < ref.nonzero if strict else best.nonzero <= ref.nonzero)
        rows.append({"reference": ref, "best": best, "wins": wins})
    return rows


def verdict(rows: list[dict]) -> bool | None:
    """True when the candidate wins at every reference point, None when there was nothing to compare."""
    return all(row["wins"] for row in rows) if rows else None
