"""Which measured model a report calls "dense": the baseline every accuracy change is against.

metrics.json holds "dense" (this experiment's dense.pt), "pruned", and, when training started
from another experiment's model (`train.pretrained`), "pretrained": that model measured the
same way, with its "path". Then the pretrained model is the real dense baseline, and dense.pt
(trained further from it, e.g. with a sparsity penalty) gets a label from the family that
trained it (TRAINED_LABELS), or "retrained from <path>" when no family claims it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..config import Experiment
from ..registry import Registry

# Family name -> (exp -> label of this experiment's dense.pt, or None when the family did not
# shape its training). Families register here at import, like their other report parts.
TRAINED_LABELS: Registry[Callable[[Experiment], Optional[str]]] = Registry("trained-model label")


# Models measured after "pruned" by a stage a family adds (compress: the model decoded from its file).
LATER_MODELS = ("compressed",)


@dataclass(frozen=True)
class Compared:
    """The measured models of one report, in table order, and the one changes are against."""

    rows: list[tuple[str, dict]]  # (label, metrics.json entry)
    baseline: Optional[dict]  # the dense baseline's entry; None when no dense model was measured
    note: str  # a sentence on which model is "dense" when it is not this experiment's dense.pt ('' otherwise)

    def change(self, entry: dict) -> Optional[float]:
        """Top-1 points gained (+) or lost (-) against the dense baseline."""
        return None if self.baseline is None else entry["accuracy"] - self.baseline["accuracy"]

    def entry(self, label: str) -> Optional[dict]:
        return dict(self.rows).get(label)

    @property
    def trained(self) -> Optional[tuple[str, dict]]:
        """(label, entry) of this experiment's dense.pt when it is not the baseline, else None."""
        return next(((label, m) for label, m in self.rows if label not in ("dense", "pruned", *LATER_MODELS)), None)


def trained_label(exp: Experiment, source: str) -> str:
    for label_of in TRAINED_LABELS.values():
        label = label_of(exp)
        if label:
            return label
    return f"retrained from {source}"


def compare(exp: Experiment, measured: dict) -> Compared:
    """The rows of the summary from metrics.json: dense and pruned as measured, or, with a
    "pretrained" entry, that model as dense and this experiment's dense.pt under its own label;
    then the later models (LATER_MODELS) measured."""
    compared = _compare(exp, measured)
    later = [(key, measured[key]) for key in LATER_MODELS if key in measured]
    return Compared(compared.rows + later, compared.baseline, compared.note)


def _compare(exp: Experiment, measured: dict) -> Compared:
    pretrained = measured.get("pretrained")
    if pretrained is None:
        rows = [(key, measured[key]) for key in ("dense", "pruned") if key in measured]
        return Compared(rows, measured.get("dense"), "")
    source = pretrained.get("path") or "the pretrained model"
    if exp.train.epochs == 0:  # dense.pt is the pretrained model as it was: one dense row
        rows = [("dense", pretrained)] + [("pruned", measured["pruned"])] * ("pruned" in measured)
        return Compared(rows, pretrained, f"Dense is `{source}` (train.pretrained, used as it is: train.epochs = 0).")
    own = trained_label(exp, source)
    rows = [("dense", pretrained)]
    if "dense" in measured:
        rows.append((own, measured["dense"]))
    if "pruned" in measured:
        rows.append(("pruned", measured["pruned"]))
    note = (f"Dense is `{source}`, the trained model this experiment started from (train.pretrained); "
            f"this experiment's own dense.pt is the row \"{own}\". Every top-1 change in this report is "
            "against that dense model.")
    return Compared(rows, pretrained, note)
