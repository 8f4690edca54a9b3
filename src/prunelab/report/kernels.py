"""The report's "Measured speed with sparse kernels" section, its terminal line and test's console line,
from the "sparse_kernels" records metrics.json holds for each pruned model (kernels/measure.py).
A metrics.json made before kernels were measured has none: then the report has no such section."""

from __future__ import annotations

from .markdown import plural, table

TITLE = "## Measured speed with sparse kernels"


def _timings(record: dict) -> dict[str, dict[str, dict]]:
    """{device: {batch size: timing}} of a kernel's record ({} when it was skipped or took no layer)."""
    return record.get("latency", {}).get("devices", {})


def speedups(record: dict, device: str = "cpu") -> str:
    """'0.98x at batch 1, 2.10x at batch 128' on `device`, or why there is none."""
    if "skipped" in record:
        return f"not measured ({record['skipped']})"
    timings = _timings(record).get(device)
    if not timings:
        return "no layer can take it" if not record.get("latency") else f"not measured on {device}"
    return ", ".join(f"{t['speedup']:.2f}x at batch {size}" for size, t in timings.items())


def kernel_line(key: str, name: str, record: dict) -> str:
    """test's console line for one model and kernel: speedup per batch size and the check."""
    line = f"{key}, {name} kernels: measured speedup {speedups(record)}"
    check = record.get("latency", {}).get("check", {})
    if check.get("layers"):
        line += (f"; outputs match dense (largest logit difference {check['max_relative_difference']:.1e} of the "
                 f"largest logit, tolerance {check['tolerance']:g}; top-1 {check['accuracy']:.2f}%)")
    return line


def _models(measured: dict) -> list[tuple[str, dict]]:
    return [(key, entry) for key, entry in measured.items() if isinstance(entry, dict) and entry.get("sparse_kernels")]


def _columns(measured: dict) -> list[tuple[str, str]]:
    """(device, batch size) of every kernel timing, in the order first met."""
    found: dict[tuple[str, str], None] = {}
    for _, entry in _models(measured):
        for record in entry["sparse_kernels"].values():
            for device, timings in _timings(record).items():
                found.update({(device, size): None for size in timings})
    return list(found)


def _cell(timing: dict, kernel: str) -> str:
    """A layer's choice at one batch size: 'csr: 0.157 ms (dense 1.300)'."""
    if timing["kernel"] == kernel:
        return f"{kernel}: {timing[f'{kernel}_ms']:.3f} ms (dense {timing['dense_ms']:.3f})"
    return f"dense: {timing['dense_ms']:.3f} ms ({kernel} {timing[f'{kernel}_ms']:.3f})"


def layer_table(name: str, record: dict) -> str:
    """Per layer: weights the kernel keeps, and at each device and batch size the kernel chosen with both
    times; the layers the kernel cannot take, with the reason."""
    timings = _timings(record)
    columns = [(device, size) for device, sizes in timings.items() for size in sizes]
    layers = {}  # layer -> row: the timed layers in model order, then those the kernel cannot take
    for device, size in columns:
        for layer, timing in timings[device][size]["layers"].items():
            row = layers.setdefault(layer, [layer, f"{100 * timing['density']:.2f}"] + ["-"] * len(columns) + [""])
            row[2 + columns.index((device, size))] = _cell(timing, name)
    for layer, why in record.get("ineligible", {}).items():
        layers[layer] = [layer, "-"] + ["dense"] * len(columns) + [why]
    headers = ["layer", "weights kept (%)", *[f"{device.upper()} batch {size}" for device, size in columns],
               f"not on {name}"]
    return table(list(layers.values()), headers)


def section(measured: dict) -> list[str]:
    """The section, or [] when metrics.json has no kernel records."""
    models = _models(measured)
    if not models:
        return []
    columns = _columns(measured)
    rows, notes, tables = [], [], []
    for key, entry in models:
        for name, record in entry["sparse_kernels"].items():
            timings, check = _timings(record), record.get("latency", {}).get("check", {})
            cells = [f"{timings[d][s]['speedup']:.2f}x" if s in timings.get(d, {}) else "-" for d, s in columns]
            if check.get("layers"):
                agreed = f"{check['accuracy']:.2f} (dense {check['dense_accuracy']:.2f})"
                difference = f"{check['max_relative_difference']:.1e} (tolerance {check['tolerance']:g})"
            else:  # skipped, or no layer took the kernel: nothing ran on it
                agreed, difference = ("-", "-") if "skipped" in record else ("= dense (no layer on it)", "0")
            rows.append([key, name, f"{entry['theoretical_speedup']:.2f}x", *cells, agreed, difference])
            if "skipped" in record:
                notes.append(f"{key}, {name}: {speedups(record)}.")
            elif timings:
                tables += [f"Per-layer kernel choice, {key} model, {name}:", layer_table(name, record)]
            else:
                notes.append(f"{key}, {name}: every layer stays dense (" + "; ".join(
                    f"{layer}: {why}" for layer, why in record.get("ineligible", {}).items()) + ").")
    threads = measured.get("torch_threads")
    intro = (
        "Each pruned model run with sparse kernels against the same model stored dense (masked weights held at "
        "zero), on the same batches, in turns: the median of the timed batches of each"
        + (f", {plural(threads, 'torch thread')}" if threads else "") + ". A layer keeps the dense kernel where the "
        "sparse one measured slower alone on its own input (the per-layer tables); measured speedup = dense time / "
        "time with the chosen kernels. Outputs are checked on the whole test set against the dense model: every "
        "logit within the tolerance times the largest logit of its batch, and the same top-1 class except on "
        "near ties (docs/speed.md)."
    )
    headers = ["model", "kernel", "theoretical speedup",
               *[f"measured speedup, {device.upper()} batch {size}" for device, size in columns],
               "top-1 with the kernels (%)", "largest logit difference (relative to the largest logit)"]
    return [TITLE, intro, table(rows, headers), *notes, *exported_note(measured), *tables]


def exported_note(measured: dict) -> list[str]:
    """The exported program's CPU time (test times model.pt2 when `export` ran on the same checkpoints)."""
    exported = measured.get("exported")
    if not exported:
        return []
    eager = measured.get("pruned", {}).get("latency", {}).get("cpu", {})
    times = ", ".join(f"{t['ms_per_batch']:.3f} ms at batch {size}"
                      + (f" (the pruned model in prunelab: {eager[size]['ms_per_batch']:.3f})" if size in eager else "")
                      for size, t in exported["latency"]["cpu"].items())
    return [f"The exported program (`model.pt2`, {exported['model']} model, {exported['kernels']}; "
            f"docs/export.md), CPU: {times or 'not timed (' + exported.get('why', 'static batch') + ')'}."]


def terminal_line(entry: dict, indent: str) -> list[str]:
    """'measured speedup with csr kernels (CPU): 0.98x at batch 1, 2.10x at batch 128' per kernel timed."""
    return [f"{indent}measured speedup with {name} kernels (CPU): {speedups(record)}"
            for name, record in (entry.get("sparse_kernels") or {}).items() if _timings(record).get("cpu")]
