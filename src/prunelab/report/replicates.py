"""The figures of a replicated config (`seeds`): each seed's accuracy, change and compression, their
mean and sample standard deviation, the tables that show them and the terminal's lines. One seed's
figures are shown as they are ("seed 0", no ± and no mean or std rows); seeds that did not run are
named where the seeds are counted ("over seed 0 (seeds 1, 2 not run)")."""

from __future__ import annotations

import statistics
from typing import Optional

from .baseline import Compared
from .experiment import ALL_WEIGHTS, rounds_counts
from .markdown import plural, table
from .references import Reference, dataset_note

# key -> (column header, format of one value); the order of the tables' columns.
FIGURES = {
    "dense_top1": ("dense top-1 (%)", "{:.2f}"),
    "trained_top1": ("{label} top-1 (%)", "{:.2f}"),
    "pruned_top1": ("pruned top-1 (%)", "{:.2f}"),
    "change": ("top-1 change vs dense (points)", "{:+.2f}"),
    "compression_all": (f"compression of {ALL_WEIGHTS}", "{:.2f}x"),
    "compression_pruner": ("compression of {label}", "{:.2f}x"),  # what the pruner counts
    "speedup": ("theoretical speedup", "{:.2f}x"),
    # The model decoded from compressed.bin (the compress stage), where there is one.
    "compressed_top1": ("compressed top-1 (%)", "{:.2f}"),
    "compressed_change": ("compressed change vs dense (points)", "{:+.2f}"),
    "storage": ("storage compression (file)", "{:.1f}x"),
}


def seed_figures(compared: Compared, log: list[dict]) -> dict[str, tuple[str, float]]:
    """{key: (label, value)} of one seed's run; a figure its run does not have is left out."""
    found: dict[str, tuple[str, float]] = {}
    pruned = compared.entry("pruned")
    if compared.baseline is not None:
        found["dense_top1"] = ("dense", compared.baseline["accuracy"])
    if compared.trained is not None:
        found["trained_top1"] = (compared.trained[0], compared.trained[1]["accuracy"])
    if pruned is not None:
        found["pruned_top1"] = ("pruned", pruned["accuracy"])
        if compared.baseline is not None:
            found["change"] = ("", compared.change(pruned))
        found["compression_all"] = ("", pruned["compression"])
        if log:
            found["compression_pruner"] = (rounds_counts(log), log[-1]["compression"])
        found["speedup"] = ("", pruned["theoretical_speedup"])
    compressed = compared.entry("compressed")
    if compressed is not None:
        found["compressed_top1"] = ("compressed", compressed["accuracy"])
        if compared.baseline is not None:
            found["compressed_change"] = ("", compared.change(compressed))
        found["storage"] = ("", compressed["storage_compression"])
    return found


def figures(per_seed: dict[int, tuple[Compared, list[dict]]]) -> dict[str, dict]:
    """{key: {"label", "values": {seed: value}, "mean", "std"}} for the figures every seed has;
    std is the sample standard deviation (n - 1), None for one seed."""
    found = {seed: seed_figures(compared, log) for seed, (compared, log) in per_seed.items()}
    common = [key for key in FIGURES if all(key in seed_found for seed_found in found.values())]
    result = {}
    for key in common:
        values = {str(seed): seed_found[key][1] for seed, seed_found in found.items()}
        label = next(iter(found.values()))[key][0]
        series = list(values.values())
        result[key] = {"label": label, "values": values, "mean": statistics.fmean(series),
                       "std": statistics.stdev(series) if len(series) > 1 else None}
    return result


def seed_list(seeds: list) -> str:
    """'seed 0', 'seeds 1, 2'."""
    return f"seed{'' if len(seeds) == 1 else 's'} {', '.join(map(str, seeds))}"


def over(found: dict[str, dict], missing: list[int] = ()) -> str:
    """What the figures are over: '3 seeds', 'seed 0' (one seed is named), then the seeds that did not
    run: 'seed 0 (seeds 1, 2 not run)'."""
    seeds = list(next(iter(found.values()))["values"]) if found else []
    counted = seed_list(seeds) if len(seeds) == 1 else plural(len(seeds), "seed")
    return f"{counted} ({seed_list(list(missing))} not run)" if missing else counted


def not_run_line(where: str, present: list[int], missing: list[int], verb: str, command: str) -> str:
    """The one line `check` and `report` print about the seeds that did not run, e.g. "runs/lenet5/seeds:
    seeds 1, 2 not run (no metrics.json); reporting seed 0 alone; `CONFIG's reproduce` runs them"."""
    return (f"{where}: {seed_list(missing)} not run (no metrics.json); {verb} {seed_list(present)}"
            f"{' alone' if len(present) == 1 else ''}; `{command}` runs them")


def _header(key: str, figure: dict) -> str:
    return FIGURES[key][0].format(label=figure["label"])


def _value(key: str, value: Optional[float]) -> str:
    return "-" if value is None else FIGURES[key][1].format(value)


def mean_std(key: str, figure: dict) -> str:
    """'98.41 ± 0.05' (the std in the figure's own format, unsigned; no ± for one seed)."""
    shown = _value(key, figure["mean"])
    if figure["std"] is None:
        return shown
    spread = FIGURES[key][1].replace("+", "").format(figure["std"]).rstrip("x")
    return f"{shown} ± {spread}"


def _reference_cells(key: str, ref: Reference) -> str:
    value = {
        "dense_top1": ref.accuracy_dense, "pruned_top1": ref.accuracy_pruned,
        "change": None if ref.accuracy_dense is None else ref.accuracy_pruned - ref.accuracy_dense,
        "compression_all": ref.compression, "speedup": 100 / ref.flops_kept if ref.flops_kept else None,
        "storage": ref.storage,
    }.get(key)
    return _value(key, value)


def _single(found: dict[str, dict]) -> bool:
    return bool(found) and len(next(iter(found.values()))["values"]) == 1


def summary_table(found: dict[str, dict], references: list[Reference]) -> str:
    """Ours as mean ± std over the seeds (one seed: its figures), then each published result that applies."""
    label = f"ours, {over(found)}" if _single(found) else f"ours, mean ± std over {over(found)}"
    rows = [[label, *(mean_std(key, fig) for key, fig in found.items())]]
    rows += [[ref.label, *(_reference_cells(key, ref) for key in found)] for ref in references]
    return table(rows, ["", *(_header(key, fig) for key, fig in found.items())])


def seeds_table(found: dict[str, dict]) -> str:
    """One row per seed, then the mean and the standard deviation; "" for one seed (its row would be
    the summary's, its std undefined)."""
    if _single(found) or not found:
        return ""
    seeds = list(next(iter(found.values()))["values"])
    rows = [[seed, *(_value(key, fig["values"][seed]) for key, fig in found.items())] for seed in seeds]
    rows.append(["mean", *(_value(key, fig["mean"]) for key, fig in found.items())])
    rows.append(["std", *(f"{fig['std']:.2f}" if fig["std"] is not None else "-" for fig in found.values())])
    return table(rows, ["seed", *(_header(key, fig) for key, fig in found.items())])


def note(references: list[Reference], dataset: str, found: dict[str, dict] | None = None) -> str:
    spread = ("" if found is not None and _single(found) else
              "± is the sample standard deviation over the seeds (n - 1); each seed's figures are in the next table.")
    return " ".join(filter(None, [
        spread, "A published row is one run of its authors, its change against its own dense model.",
        dataset_note(references, dataset),
    ]))


def terminal_lines(title: str, found: dict[str, dict], missing: list[int] = ()) -> list[str]:
    spread = "" if _single(found) else ", mean ± std"  # one seed: its own figures
    lines = [f"{title} ({over(found, missing)}{spread})"]
    if "pruned_top1" in found:
        dense = f"dense {mean_std('dense_top1', found['dense_top1'])}% -> " if "dense_top1" in found else ""
        change = f" ({mean_std('change', found['change'])} points)" if "change" in found else ""
        lines.append(f"  top-1: {dense}pruned {mean_std('pruned_top1', found['pruned_top1'])}%{change}")
        lines.append(f"  compression: {mean_std('compression_all', found['compression_all'])} of {ALL_WEIGHTS}")
        lines.append(f"  theoretical speedup: {mean_std('speedup', found['speedup'])}")
        if "storage" in found:
            lines.append(f"  compressed file: {mean_std('storage', found['storage'])} smaller than dense fp32, "
                         f"top-1 {mean_std('compressed_top1', found['compressed_top1'])}%")
    elif "dense_top1" in found:
        lines.append(f"  top-1: dense {mean_std('dense_top1', found['dense_top1'])}% (not pruned)")
    return lines
