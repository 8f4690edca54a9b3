"""Report sections of the compress stage, from compress.json (what the encoder wrote, byte by byte)
and metrics.json (the model decoded from compressed.bin): Han et al. 2016's per-layer table with the
paper's columns beside ours, the file's parts, and a MASE student pipeline's three-step size table."""

from __future__ import annotations

from ... import paths
from ...atomic import load_json
from ...config import Experiment
from ...family import ReportInputs
from ...report.markdown import count, plural, table, words
from .references import DEEP_COMPRESSION, MASE_GROUP3, LayerRow

FP32_BYTES = 4


def _per_layer(values: dict[str, int], unit: str) -> str:
    """'6 bits in fc1, fc2 and fc3' or 'conv1 8 bits, fc1 5 bits' (layers named without '.weight')."""
    if len(set(values.values())) == 1:
        return f"{plural(next(iter(values.values())), unit)} in {words([_short(name) for name in values])}"
    return ", ".join(f"{_short(name)} {plural(value, unit)}" for name, value in values.items())


def describe(exp: Experiment, recorded: dict | None = None) -> str:
    """What compress does; with compress.json (`recorded`), the per-layer widths it used."""
    cfg = exp.compress
    if recorded is None:
        bits = f"conv {plural(cfg.conv_bits, 'bit')}, fully connected {plural(cfg.fc_bits, 'bit')}"
        widths = f"conv {plural(cfg.conv_index_bits, 'bit')}, fully connected {plural(cfg.fc_index_bits, 'bit')}"
    else:
        bits = _per_layer({name: q["bits"] for name, q in recorded["quantizer"].items()}, "bit")
        widths = _per_layer({s["name"]: s["index_bits"] for s in recorded["sizes"]["sections"]
                             if s["kind"] == "sparse"}, "bit")
    if cfg.quantizer == "kmeans":
        how = f"k-means weight sharing per layer ({bits}, {cfg.init} initialization)"
        learns = "the centroids learn (each one's gradient the sum over its weights) and the biases"
    else:
        how = f"uniform fixed point ({cfg.total_bits} bits, {cfg.frac_bits} after the binary point)"
        learns = "the float weights learn through a straight-through estimator and are quantized again"
    tune = cfg.finetune
    return (f"Every conv/linear weight of the pruned model, classifier included, is quantized by {how}; then "
            f"{plural(tune.epochs, 'epoch')} of fine-tuning ({tune.optimizer}, lr {tune.lr:g}, {tune.schedule}) in "
            f"which {learns}, pruned weights held at zero. The encoder stores each kept weight's codebook index "
            f"and its distance from the previous one (relative indices of {widths}, a filler zero where a gap "
            "overflows), both Huffman-coded, and every other tensor raw, in `compressed.bin` "
            "(docs/compressed-format.md); test decodes the file and measures that model.")


def _layer_rows(recorded: dict) -> tuple[list[dict], list[dict]]:
    sections = recorded["sizes"]["sections"]
    return [s for s in sections if s["kind"] == "sparse"], [s for s in sections if s["kind"] == "raw"]


def _short(name: str) -> str:
    return name.removesuffix(".weight")


def _weights(recorded: dict, layer: dict) -> int:
    shape = recorded["shapes"][layer["name"]]
    total = 1
    for size in shape:
        total *= size
    return total


def _kept(layer: dict) -> int:
    """Weights stored: the entries that are not filler zeros."""
    return layer["entries"] - layer["fillers"]


def _rate_pq(layer: dict, bits: int) -> float:
    """P+Q bytes: every entry at the codebook's (`bits`) and the index's fixed widths, plus the codebook."""
    return layer["entries"] * (bits + layer["index_bits"]) / 8 + layer["codebook_bytes"]


def _paper(row: LayerRow | None, field: str, fmt: str = "{:g}") -> str:
    return "-" if row is None else fmt.format(getattr(row, field))


def layer_table(exp: Experiment, recorded: dict) -> str:
    """Han et al. 2016's Table 2/3 columns per layer and in total, ours beside the paper's."""
    paper = DEEP_COMPRESSION.get(exp.model.arch)
    sparse, raw = _layer_rows(recorded)
    rows = []
    totals = {"weights": 0, "kept": 0, "entries": 0, "pq": 0.0, "w_h": 0, "i_h": 0, "bytes": 0}
    for layer in sparse:
        weights = _weights(recorded, layer)
        bits = recorded["quantizer"][layer["name"]]["bits"]
        ref = paper.layers.get(_short(layer["name"])) if paper else None
        entries = max(layer["entries"], 1)
        rows.append([
            _short(layer["name"]), count(weights),
            f"{100 * _kept(layer) / weights:.2f}", _paper(ref, "kept"),
            bits, _paper(ref, "weight_bits"),
            f"{layer['weight_stream_bits'] / entries:.2f}", _paper(ref, "weight_bits_huffman"),
            layer["index_bits"], _paper(ref, "index_bits"),
            f"{layer['gap_stream_bits'] / entries:.2f}", _paper(ref, "index_bits_huffman"),
            count(layer["fillers"]), count(layer["total_bytes"]),
            f"{100 * _rate_pq(layer, bits) / (FP32_BYTES * weights):.2f}", _paper(ref, "rate"),
            f"{100 * layer['total_bytes'] / (FP32_BYTES * weights):.2f}", _paper(ref, "rate_huffman"),
        ])
        totals["weights"] += weights
        totals["kept"] += _kept(layer)
        totals["entries"] += layer["entries"]
        totals["pq"] += _rate_pq(layer, bits)
        totals["w_h"] += layer["weight_stream_bits"]
        totals["i_h"] += layer["gap_stream_bits"]
        totals["bytes"] += layer["total_bytes"]
    raw_bytes = sum(r["total_bytes"] for r in raw)
    raw_values = sum(r["data_bytes"] for r in raw) // FP32_BYTES
    rows.append(["other tensors (raw fp32)", count(raw_values), "100", "-", 32, "-", "-", "-", "-", "-", "-", "-",
                 "-", count(raw_bytes), "100", "-", "100", "-"])
    entries, ref = max(totals["entries"], 1), paper.total if paper else None
    file_bytes, original = recorded["file_bytes"], recorded["original_bytes"]
    rows.append([
        "**total (the whole file)**", count(totals["weights"] + raw_values),
        f"{100 * totals['kept'] / max(totals['weights'], 1):.2f}", _paper(ref, "kept"), "-", _paper(ref, "weight_bits"),
        f"{totals['w_h'] / entries:.2f}", _paper(ref, "weight_bits_huffman"), "-", _paper(ref, "index_bits"),
        f"{totals['i_h'] / entries:.2f}", _paper(ref, "index_bits_huffman"), "-", count(file_bytes),
        f"{100 * (totals['pq'] + FP32_BYTES * raw_values) / original:.2f}", _paper(ref, "rate"),
        f"{100 * file_bytes / original:.2f} ({original / file_bytes:.1f}x)",
        _paper(ref, "rate_huffman", "{:g}") + (f" ({100 / ref.rate_huffman:.0f}x)" if ref else ""),
    ])
    han = "Han" if paper else "paper"
    return table(rows, [
        "layer", "weights", "kept (%)", han, "weight bits (P+Q)", han, "weight bits (P+Q+H)", han,
        "index bits (P+Q)", han, "index bits (P+Q+H)", han, "filler zeros", "bytes in file",
        "compress rate P+Q (%)", han, "compress rate P+Q+H (%)", han,
    ])


def parts_table(recorded: dict) -> str:
    """Where the file's bytes go."""
    sparse, raw = _layer_rows(recorded)
    parts = {
        "header and trailer (magic, version, config hash, checksum)":
            recorded["sizes"]["header_bytes"] + recorded["sizes"]["trailer_bytes"],
        "section headers (names, shapes, counts)": sum(s["meta_bytes"] for s in sparse + raw),
        "codebooks (fp32 centroids)": sum(s["codebook_bytes"] for s in sparse),
        "Huffman tables": sum(s["weight_table_bytes"] + s["gap_table_bytes"] for s in sparse),
        "weight codes (Huffman)": sum(s["weight_stream_bytes"] for s in sparse),
        "relative indices (Huffman)": sum(s["gap_stream_bytes"] for s in sparse),
        "other tensors (raw)": sum(s["data_bytes"] for s in raw),
    }
    total = recorded["file_bytes"]
    rows = [[part, count(size), f"{100 * size / total:.1f}"] for part, size in parts.items()]
    rows.append(["**compressed.bin**", count(total), "100.0"])
    return table(rows, ["part", "bytes", "% of the file"])


def three_steps(recorded: dict) -> list[tuple[str, float]]:
    """A MASE student pipeline's size after each pass, counted as it counts them (values only, no
    indices): pruning keeps the nonzero fp32 values; quantization stores them at the codebook's width;
    Huffman coding stores the weight codes, their tables and codebooks. Other tensors stay fp32."""
    sparse, raw = _layer_rows(recorded)
    other = sum(r["data_bytes"] for r in raw)
    kept = sum(_kept(s) for s in sparse)
    bits = {name: q["bits"] for name, q in recorded["quantizer"].items()}
    return [
        ("original (fp32)", recorded["original_bytes"]),
        ("after pruning", FP32_BYTES * kept + other),
        ("after quantization", sum(_kept(s) * bits[s["name"]] / 8 + s["codebook_bytes"] for s in sparse) + other),
        ("after Huffman coding", sum(s["weight_stream_bytes"] + s["weight_table_bytes"] + s["codebook_bytes"]
                                     for s in sparse) + other),
    ]


def three_step_table(recorded: dict) -> str:
    steps = three_steps(recorded)
    original = steps[0][1]
    mase = [100.0, MASE_GROUP3.pruned, MASE_GROUP3.quantized, MASE_GROUP3.huffman]
    rows = [[step, count(size), f"{100 * size / original:.2f}", f"{ref:g}"] for (step, size), ref in zip(steps, mase)]
    rows.append(["compressed.bin (indices, tables, header: everything)", count(recorded["file_bytes"]),
                 f"{100 * recorded['file_bytes'] / original:.2f}", "-"])
    return table(rows, ["model size", "bytes", "% of original", f"{MASE_GROUP3.source} (%)"])


def accuracy_line(recorded: dict, measured: dict) -> str:
    steps = recorded["accuracy"]
    decoded = measured.get("compressed", {}).get("accuracy")
    shown = (f"top-1 {steps['pruned']:.2f}% pruned, {steps['quantized']:.2f}% right after quantization, "
             f"{steps['fine-tuned']:.2f}% after fine-tuning")
    if decoded is not None:
        shown += f", {decoded:.2f}% decoded from compressed.bin by test"
    return f"Accuracy along the way: {shown}."


def sections(inputs: ReportInputs) -> list[str]:
    exp = inputs.exp
    if getattr(exp, "compress", None) is None or not paths.compress_log(exp).is_file():
        return []
    recorded = load_json(paths.compress_log(exp))
    paper = DEEP_COMPRESSION.get(exp.model.arch)
    out = ["## Deep Compression: compressed.bin", describe(exp, recorded), accuracy_line(recorded, inputs.measured),
           f"The file is {count(recorded['file_bytes'])} bytes against {count(recorded['original_bytes'])} bytes of "
           f"fp32 tensors: {recorded['original_bytes'] / recorded['file_bytes']:.1f}x smaller.",
           "### Per layer", layer_table(exp, recorded),
           "Bits per entry (kept weights and filler zeros). P+Q widths are the codebook's (2^bits shared values) "
           "and the relative index's, as in the paper (a fixed-width file would need one more code for the filler "
           "zero); P+Q+H is the Huffman stream's length / entries. "
           "Compress rate = bytes / the layer's fp32 bytes; P+Q counts every entry at the fixed widths plus the "
           "codebook, P+Q+H the layer's real bytes in the file (streams, tables, codebook and section header). "
           + (f"Han columns: {paper.source}, error {paper.error_dense}% -> {paper.error_compressed}%, "
              f"{paper.size}." if paper else "No published per-layer table for this model."),
           "### Where the bytes go", parts_table(recorded),
           "### Size after each pass (MASE's three steps)", three_step_table(recorded),
           "The three steps count values only, as the MASE pipeline does (no indices, so pruned positions are "
           "free); the last row is the real file, relative indices included."]
    return out
