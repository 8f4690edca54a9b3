"""export: the pruned model as a torch.export program -> model.pt2, loadable without prunelab, and
export.json (what was exported from which checkpoint, the program's check and CPU latency)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from .. import checkpoints, exporting, family, paths, provenance
from ..atomic import atomic_path, load_json, write_json
from ..config import Experiment
from ..data.loader import load_splits, make_loaders
from ..data.spec import spec_for
from ..device import resolve
from ..errors import UserError
from ..log import console
from ..pruning.activations import input_masks
from ..replicates import over_seeds

# How a user runs model.pt2 (docs/export.md): torch alone, no prunelab.
USAGE = "import torch; program = torch.export.load('model.pt2').module(); logits = program(images)"


@dataclass
class Source:
    """The model export traces: its key (as in metrics.json), the artifact it comes from (digest,
    config_hash, path, made_by), the checkpoint beneath it and how to build it (on the CPU)."""

    key: str  # "pruned", "dense", or a family's extra model (e.g. "compressed")
    artifact: dict
    checkpoint: dict  # the pruned (or dense) checkpoint, the reference of a decoded model
    build: Callable[[], nn.Module]


def _sources(exp: Experiment) -> tuple[Source, dict[str, dict]]:
    """The model to export and every artifact it is made from, by key (verified; a missing, damaged or
    stale one is refused with the command that makes it): a family's extra model when it has one (the
    model decoded from a file), else the pruned checkpoint, else (no [prune] table) dense.pt."""
    key, path, config_hash = (("pruned", paths.pruned(exp), exp.stage_hash("prune")) if exp.prune is not None
                              else ("dense", paths.dense(exp), exp.stage_hash("train")))
    checkpoint = {**checkpoints.load_current(exp, path, config_hash), "path": str(path)}
    loaded = {key: checkpoint}
    extra = family.extra_models(exp)
    if extra:
        extra_key, model = next(iter(extra.items()))
        loaded[extra_key] = model.artifact
        return Source(extra_key, model.artifact, checkpoint, model.build), loaded
    return Source(key, checkpoint, checkpoint, lambda: checkpoints.build_model(exp, checkpoint, path)), loaded


def freshness(exp: Experiment, loaded: dict[str, dict]) -> dict:
    """What export.json must have been made from to be current: its inputs' config hashes and digests,
    and the [test] settings (latency batch sizes)."""
    return {"config_hashes": {key: artifact["config_hash"] for key, artifact in loaded.items()},
            "inputs": {key: artifact["digest"] for key, artifact in loaded.items()},
            "test": exp.test.model_dump(mode="json")}


def is_current(wanted: dict, record_path, program_path) -> bool:
    """export.json is intact, made from `wanted`, and model.pt2 is the file it describes."""
    if not (record_path.is_file() and program_path.is_file()):
        return False
    try:
        record = load_json(record_path)
    except UserError:  # damaged or foreign: export again
        return False
    same = all(record.get(key) == value for key, value in wanted.items())
    return same and record.get("model_sha256") == hashlib.sha256(program_path.read_bytes()).hexdigest()


def current_program(exp: Experiment) -> tuple[dict, nn.Module] | None:
    """(export.json, model.pt2's program) when `export` has run on the current inputs, for `test` to time
    beside the checkpoints; None when there is no export or it is stale (test does not export)."""
    out, record_path = paths.exported_model(exp), paths.export_record(exp)
    if not record_path.is_file():
        return None
    _, loaded = _sources(exp)
    if not is_current(freshness(exp, loaded), record_path, out):
        return None
    return load_json(record_path), exporting.Program(exporting.load(out.read_bytes()))


def _parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def describe(exp: Experiment, source: Source, model: nn.Module) -> dict:
    """What was exported and why: decoded (a family's file), rebuilt (physically smaller), pruned
    (the configured network, pruned weights exact zeros) or dense (no [prune] table)."""
    path = source.artifact.get("path")
    if source.key not in ("pruned", "dense"):
        return {"model": "decoded", "why": f"{source.key}: the model {path} decodes to (what test measures)"}
    if source.key == "dense":
        return {"model": "dense", "why": f"{exp.path} has no [prune] table: the trained model {path}"}
    masks = input_masks(model)
    masked = (f"; input masks on {len(masks)} layers ({', '.join(masks)}), applied by forward pre-hooks "
              "traced into the program" if masks else "")
    configured, kept = _parameters(checkpoints.build_for(exp)), _parameters(model)
    if kept < configured:
        return {"model": "rebuilt", "why": f"{path} rebuilt by the {family.of(exp).name} family: physically "
                                           f"smaller, {kept:,} of {configured:,} parameters{masked}"}
    return {"model": "pruned", "why": f"the configured {exp.model.arch} with {path}'s weights, pruned ones exact "
                                      f"zeros{masked}"}


def _check_images(exp: Experiment) -> tuple[torch.Tensor, dict]:
    """The first test batch on the CPU (at least 2 images: a batch of 1 would fix the traced batch
    size), and how a user makes such inputs."""
    _, test_loader = make_loaders(exp, load_splits(exp), torch.device("cpu"))
    images = next(iter(test_loader))[0]
    if images.shape[0] < 2:
        images = images.repeat(2, 1, 1, 1)
    channels, height, width = spec_for(exp).image_shape
    return images, {"shape": ["batch", channels, height, width], "dtype": "float32",
                    "pixels": "uint8 / 255, then (x - mean) / std per channel",
                    "mean": list(test_loader.mean), "std": list(test_loader.std)}


@over_seeds
def export(exp: Experiment, force: bool = False) -> None:
    """The pruned model as a torch.export program that runs without prunelab -> model.pt2, export.json.

    export.json: what was exported (the pruned, physically smaller or decoded model) and why, the
    program's check against the model it was traced from, and its CPU latency (docs/export.md)."""
    source, loaded = _sources(exp)
    wanted = freshness(exp, loaded)
    out, record_path = paths.exported_model(exp), paths.export_record(exp)
    if not force and is_current(wanted, record_path, out):
        console.print(f"[green]{out}[/] is up to date; skipping export (--force to redo)")
        return
    resolve(exp)  # the config's torch threads; the program is traced and timed on the CPU
    images, inputs = _check_images(exp)
    model = source.build().eval()
    exported = describe(exp, source, model)
    made = exporting.export_model(model, images, f"{exp.path}: model.arch {exp.model.arch}", exp.test.kernels)
    traced, data = made.traced, made.data
    program = exporting.load(data)  # checked as a user loads it
    check = exporting.compare(program, model, images)
    if traced.batch == "dynamic":
        check["batch_1"] = exporting.compare(program, model, images[:1])
    failed = [entry for entry in (check, check.get("batch_1", check)) if not entry["passed"]]
    if failed:  # nothing is written: a program that does not compute the model's logits is no export
        raise UserError(f"{out}: the exported program's logits differ from {source.artifact.get('path')}'s by "
                        f"{failed[0]['max_abs_logit_difference']:.3g} (tolerance {exporting.LOGIT_TOLERANCE}, same "
                        f"top-1: {failed[0]['same_argmax']}); not written")
    if exported["model"] == "decoded":  # also against the pruned checkpoint it was decoded from
        reference = checkpoints.build_model(exp, source.checkpoint, source.checkpoint["path"])
        check["against_pruned"] = exporting.compare(program, reference, images)  # quantization error, no pass
    latency = exporting.timings({"exported": exporting.Program(program), "eager": made.module}, images,
                                exp.test.latency_batch_sizes, exp.test.latency_repeats, exp.test.latency_warmup,
                                None if traced.batch == "dynamic" else images.shape[0])
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    made_by = {checkpoints.making_task(artifact["path"]): artifact.get("made_by") for artifact in loaded.values()}
    write_json(record_path, {
        **wanted, "model_sha256": hashlib.sha256(data).hexdigest(), "model_bytes": len(data),
        "exported": exported, "kernels": {"used": made.kernels, "why": made.why},
        "batch": {"dimension": traced.batch, "why": traced.why}, "input": inputs, "check": check,
        "latency_cpu": latency, "usage": USAGE, "torch_threads": torch.get_num_threads(),
        "made_by": {**made_by, "export": provenance.made_by(exp, "cpu")},
    })
    cpu = ", ".join(f"{entry['ms_per_batch']:.2f} ms at batch {size}" for size, entry in latency["exported"].items())
    console.print(f"exported {exported['model']} model ({exported['why']}); {traced.batch} batch; kernels "
                  f"{made.kernels} ({made.why}); logits within {check['max_abs_logit_difference']:.2g} of the "
                  f"model, same top-1: {check['same_argmax']}; CPU {cpu}")
    if traced.why:
        console.print(f"[yellow]static batch {images.shape[0]}[/]: {traced.why}")
    console.print(f"[green]{out}[/] and [green]{record_path}[/] written")
