"""test: accuracy, loss and test time of the dense and the pruned model -> metrics.json."""

from __future__ import annotations

import torch

from .. import checkpoints, family, paths, provenance
from .. import metrics as counts
from ..atomic import load_json, write_json
from ..errors import UserError
from ..config import Experiment
from ..data.loader import load_splits, make_loaders
from ..data.spec import spec_for
from ..device import resolve, seed_everything
from ..evaluate import evaluate, latency
from ..kernels.catalog import DENSE, KERNELS
from ..kernels.measure import KernelMismatch, measure
from ..log import console
from ..report.kernels import kernel_line
from ..replicates import over_seeds
from .export import current_program
from .train import load_pretrained


def stage_inputs(exp: Experiment) -> dict[str, tuple]:
    """Which checkpoints to measure: dense (unless pruning starts at init), and pruned."""
    inputs = {}
    if exp.prune is None or exp.prune.start == "dense":
        inputs["dense"] = (paths.dense(exp), exp.stage_hash("train"))
    if exp.prune is not None:
        inputs["pruned"] = (paths.pruned(exp), exp.stage_hash("prune"))
    return inputs


def _timing_batches(images: torch.Tensor, sizes: list[int]) -> dict[int, torch.Tensor]:
    """Test images batched at each size (repeated when the test set is smaller)."""
    batches = {}
    for size in sizes:
        repeats = -(-size // images.shape[0])
        batches[size] = images.repeat(repeats, 1, 1, 1)[:size].contiguous()
    return batches


def timing_devices() -> list[torch.device]:
    """Where forward time is measured: the CPU, and CUDA when present."""
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def measure_latency(model: torch.nn.Module, images: torch.Tensor, exp: Experiment) -> dict:
    """{device: {batch size: timing}} on the CPU, and on CUDA when present."""
    devices = timing_devices()
    results = {}
    for device in devices:
        model.to(device)
        batches = _timing_batches(images.to(device), exp.test.latency_batch_sizes)
        results[device.type] = {
            str(size): latency(model, batch, exp.test.latency_repeats, exp.test.latency_warmup)
            for size, batch in batches.items()
        }
    return results


def sparse_kernels(exp: Experiment) -> list[str]:
    """The sparse kernels each pruned model is measured with: [test] kernels but dense (always measured,
    the baseline), or when not given every kernel that runs on a device test times on."""
    if exp.test.kernels is not None:
        return [name for name in exp.test.kernels if name != DENSE]
    return [name for name, kernel in KERNELS.items()
            if any(kernel.device_problem(device) is None for device in timing_devices())]


def measure_kernels(exp: Experiment, key: str, model: torch.nn.Module, images: torch.Tensor, test_loader,
                    device: torch.device) -> dict:
    """{kernel: kernels.measure record} of one pruned model, timed on the same batches as its latency and
    checked on the test set (on `device` first where the kernel runs there); a mismatch is a UserError."""
    batches = _timing_batches(images, exp.test.latency_batch_sizes)
    devices = sorted(timing_devices(), key=lambda d: d.type != device.type)
    records = {}
    for name in sparse_kernels(exp):
        try:
            records[name] = measure(model, KERNELS[name], batches, devices, test_loader, exp.test.latency_repeats,
                                    exp.test.latency_warmup)
        except KernelMismatch as error:
            raise UserError(f"{exp.path}: test.kernels: the {key} model {error}; leave {name!r} out of "
                            "test.kernels to measure without it") from None
        console.print(kernel_line(key, name, records[name]), highlight=False)
    return records


def time_exported(exp: Experiment, record: dict, program: torch.nn.Module, images: torch.Tensor) -> dict:
    """model.pt2's CPU time at the latency batch sizes (a static program at its own size only), as
    metrics.json's "exported" entry; the program's check against the checkpoint is export.json's."""
    batches = _timing_batches(images, exp.test.latency_batch_sizes) if record["batch"]["dimension"] == "dynamic" else {}
    timing = {str(size): latency(program, batch, exp.test.latency_repeats, exp.test.latency_warmup)
              for size, batch in batches.items()}
    console.print("exported program (model.pt2), CPU: " + (", ".join(
        f"{t['ms_per_batch']:.2f} ms at batch {size}" for size, t in timing.items()) or "static batch, not timed"))
    return {"model": record["exported"]["model"], "kernels": record["kernels"]["used"], "latency": {"cpu": timing},
            "model_sha256": record["model_sha256"], **({} if batches else {"why": record["batch"]["why"]})}


def freshness(exp: Experiment, loaded: dict[str, dict], extra: dict[str, family.ExtraModel]) -> dict:
    """What metrics.json must have been made from to be current: the checkpoints' (and the families'
    extra models') config hashes and digests, and every [test] setting."""
    inputs = stage_inputs(exp)
    return {
        "config_hashes": {key: config_hash for key, (_, config_hash) in inputs.items()}
        | {key: model.artifact["config_hash"] for key, model in extra.items()},
        "inputs": {key: checkpoint["digest"] for key, checkpoint in loaded.items()},
        # kernels not given: left out, like a stage hash's defaults, so that metrics.json made before the key
        # existed stays current (`test --force` measures the kernels into it)
        "test": exp.test.model_dump(mode="json", exclude=set() if exp.test.kernels is not None else {"kernels"}),
    }


def load_inputs(exp: Experiment) -> dict[str, dict]:
    """The verified checkpoints test measures: dense and/or pruned (stage_inputs), and the
    pretrained model a regularized or retrained dense model started from (the real dense baseline)."""
    loaded = {key: checkpoints.load_current(exp, path, config_hash)
              for key, (path, config_hash) in stage_inputs(exp).items()}
    pretrained = load_pretrained(exp)
    if pretrained is not None:
        loaded["pretrained"] = {**pretrained[1], "path": str(pretrained[0])}
    return loaded


def _build(exp: Experiment, key: str, checkpoint: dict, extra: dict[str, family.ExtraModel]) -> torch.nn.Module:
    """The model to measure: a family's extra model (e.g. decoded from its file) or a checkpoint's."""
    if key in extra:
        return extra[key].build()
    return checkpoints.build_model(exp, checkpoint, checkpoint.get("path") or stage_inputs(exp)[key][0])


def is_current(exp: Experiment, path, wanted: dict) -> bool:
    try:
        measured = load_json(path)
    except UserError:  # damaged or foreign: measure again
        return False
    return all(measured.get(key) == value for key, value in wanted.items())


@over_seeds
def test(exp: Experiment, force: bool = False) -> None:
    """Accuracy, loss, counts and CPU (and CUDA) time of each model -> metrics.json."""
    loaded = load_inputs(exp)
    extra = family.extra_models(exp)  # e.g. the model decoded from compressed.bin
    loaded.update({key: model.artifact for key, model in extra.items()})
    wanted = freshness(exp, loaded, extra)
    program = current_program(exp) if exp.prune is not None else None  # model.pt2, when export made it
    if program is not None:
        wanted["exported_from"] = program[0]["digest"]  # a newer export makes metrics.json stale
    out = paths.metrics(exp)
    if not force and out.is_file() and is_current(exp, out, wanted):
        console.print(f"[green]{out}[/] is up to date; skipping test (--force to redo)")
        return
    device = resolve(exp)
    seed_everything(exp.seed)
    splits = load_splits(exp)
    _, test_loader = make_loaders(exp, splits, device)
    shape = spec_for(exp).image_shape
    timing_images = next(iter(make_loaders(exp, splits, torch.device("cpu"))[1]))[0]
    results = {
        **wanted, "device": str(device), "torch_threads": torch.get_num_threads(),
        "made_by": {
            **{stage: loaded[key].get("made_by") for stage, key in (("train", "dense"), ("prune", "pruned"),
                                                                     ("compress", "compressed")) if key in loaded},
            "test": provenance.made_by(exp, device),
        },
    }
    for key, checkpoint in loaded.items():
        path = checkpoint.get("path") or stage_inputs(exp)[key][0]
        model = _build(exp, key, checkpoint, extra).to(device)
        scores = evaluate(model, test_loader)
        summary = counts.summarize(model, shape)
        summary.pop("layers")
        timing = measure_latency(model, timing_images, exp)
        results[key] = {**scores, "latency": timing, **summary, **({"path": str(path)} if key == "pretrained" else {}),
                        **checkpoint.get("measured", {})}
        if key not in ("dense", "pretrained") and sparse_kernels(exp):  # the pruned models
            results[key]["sparse_kernels"] = measure_kernels(exp, key, model, timing_images, test_loader, device)
    if program is not None:
        results["exported"] = time_exported(exp, *program, timing_images)
    for key in ("pruned", *extra):  # a pruned model may be physically smaller than the dense one
        if "dense" in results and key in results:
            results[key].update(counts.against_dense(results["dense"], results[key]))
    for key in loaded:
        entry = results[key]
        cpu = ", ".join(f"{t['ms_per_batch']:.2f} ms at batch {b}" for b, t in entry["latency"]["cpu"].items())
        console.print(
            f"{key}: top-1 {entry['accuracy']:.2f}%, loss {entry['loss']:.4f}, CPU {cpu}, "
            f"compression {entry['compression']:.2f}x, theoretical speedup {entry['theoretical_speedup']:.2f}x"
        )
    write_json(out, results)
    console.print(f"[green]{out}[/] written")
