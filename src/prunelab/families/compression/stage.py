"""The compress stage: pruned.pt -> shared weights (k-means or fixed point) -> fine-tuning -> compressed.bin,
read back before anything is recorded -> compress.json. Resumable: the fine-tuning checkpoints every epoch.

compress.json records what the file holds (bytes by part and layer, from the encoder) and the
accuracy at each step; test measures the model decoded from the file, not the one in memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn as nn

from ... import checkpoints, paths, provenance
from ...atomic import load_json, write_json
from ...config import Experiment
from ...data.loader import load_splits, make_loaders
from ...device import resolve, seed_everything
from ...errors import UserError
from ...evaluate import evaluate
from ...family import ExtraModel
from ...log import console
from ...train import fit
from .container import decode, encode
from .layout import expected_tensors, file_sections, original_bytes, quantize_layers
from .quantize import bake, share


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pruned_checkpoint(exp: Experiment) -> dict:
    if getattr(exp, "compress", None) is None:
        raise UserError(f"{exp.path}: compress: section missing; add a [compress] table")
    if exp.prune is None:
        raise UserError(f"{exp.path}: compress: compresses the pruned model; add a [prune] table")
    return checkpoints.load_current(exp, paths.pruned(exp), exp.stage_hash("prune"))


def _recorded(exp: Experiment) -> dict | None:
    """compress.json when it and the file it describes are intact (None when either is missing or damaged)."""
    log_path, out = paths.compress_log(exp), paths.compressed(exp)
    if not (log_path.is_file() and out.is_file()):
        return None
    try:
        recorded = load_json(log_path)
    except UserError:
        return None
    return recorded if recorded.get("file_sha256") == file_digest(out) else None


def compress(exp: Experiment, force: bool = False) -> None:
    """Quantize every conv/linear weight of pruned.pt, fine-tune the shared weights, write compressed.bin
    and read it back (it must hold the fine-tuned weights bit for bit) -> compress.json."""
    pruned = _pruned_checkpoint(exp)
    cfg = exp.compress
    config_hash = exp.stage_hash("compress")
    inputs = {"pruned": pruned["digest"]}
    out, log_path, state_path = paths.compressed(exp), paths.compress_log(exp), paths.compress_state(exp)
    recorded = None if force else _recorded(exp)
    if recorded is not None and recorded["config_hash"] == config_hash and recorded["inputs"] == inputs:
        console.print(f"[green]{out}[/] is up to date; skipping compress (--force to redo)")
        return
    device = resolve(exp)
    seed_everything(exp.seed)
    model = checkpoints.build_model(exp, pruned, paths.pruned(exp)).to(device)
    train_loader, test_loader = make_loaders(exp, load_splits(exp), device)
    accuracy = {"pruned": evaluate(model, test_loader)["accuracy"]}
    layers = quantize_layers(model, pruned.get("masks", {}), cfg, torch.Generator().manual_seed(exp.seed))
    share(model, layers)
    accuracy["quantized"] = evaluate(model, test_loader)["accuracy"]
    if force:
        state_path.unlink(missing_ok=True)
    finetune_log = fit(model, train_loader, test_loader, cfg.finetune, state_path, config_hash,
                       description="shared-weight fine-tune", settings="compress.finetune")
    layers = bake(model, layers)
    accuracy["fine-tuned"] = evaluate(model, test_loader)["accuracy"]
    model.cpu()
    sizes = encode(out, config_hash, file_sections(model, layers, cfg))
    check_round_trip(out, config_hash, model)
    write_json(log_path, {
        "config_hash": config_hash, "inputs": inputs, "file_sha256": file_digest(out),
        "file_bytes": out.stat().st_size, "original_bytes": original_bytes(model), "sizes": sizes.as_dict(),
        "shapes": {name: list(q.mask.shape) for name, q in layers.items()},
        "quantizer": {name: {"kind": q.kind, "bits": q.bits, "frac_bits": q.frac_bits, "clusters": len(q.codebook)}
                      for name, q in layers.items()},
        "accuracy": accuracy, "finetune_log": finetune_log, "made_by": provenance.made_by(exp, device),
    })
    state_path.unlink(missing_ok=True)
    console.print(f"[green]{out}[/]: {out.stat().st_size:,} bytes ({original_bytes(model) / out.stat().st_size:.1f}x "
                  f"smaller than fp32); top-1 {accuracy['pruned']:.2f}% pruned, {accuracy['quantized']:.2f}% "
                  f"quantized, {accuracy['fine-tuned']:.2f}% fine-tuned")


def check_round_trip(path: Path, config_hash: str, model: nn.Module) -> None:
    """The decoded file equals the model bit for bit; otherwise the file is removed (never left behind wrong)."""
    decoded = decode(path, config_hash, expected_tensors(model))
    for name, tensor in model.state_dict().items():
        if not _same_bits(decoded[name], tensor):
            path.unlink(missing_ok=True)
            raise RuntimeError(f"{path}: {name} does not decode to the encoded values (an encoder bug)")


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        return torch.equal(a.contiguous().view(torch.int32 if a.element_size() == 4 else torch.int64),
                           b.contiguous().view(torch.int32 if b.element_size() == 4 else torch.int64))
    return torch.equal(a, b)


def decoded_model(exp: Experiment) -> ExtraModel | None:
    """The model test measures for a config with [compress]: decoded from compressed.bin (None without
    [compress]); refused when the file or its record is missing, damaged or made from another config."""
    if getattr(exp, "compress", None) is None or exp.prune is None:
        return None
    log_path, out = paths.compress_log(exp), paths.compressed(exp)
    recorded = checkpoints.read_input(exp, log_path, load_json)
    config_hash = exp.stage_hash("compress")
    if recorded.get("config_hash") != config_hash:
        raise UserError(f"{log_path}: made from a different config; {provenance.run_hint(exp, 'compress')}")
    if not out.is_file() or file_digest(out) != recorded["file_sha256"]:
        raise UserError(f"{out}: missing or not the file {log_path} describes; "
                        f"{provenance.run_hint(exp, 'compress', '--force')}")
    artifact = {"digest": recorded["file_sha256"], "config_hash": config_hash, "path": str(out),
                "made_by": recorded["made_by"],
                "measured": {"file_bytes": recorded["file_bytes"], "original_bytes": recorded["original_bytes"],
                             "storage_compression": recorded["original_bytes"] / recorded["file_bytes"]}}

    def build() -> nn.Module:
        pruned = checkpoints.load_current(exp, paths.pruned(exp), exp.stage_hash("prune"))
        model = checkpoints.build_model(exp, pruned, paths.pruned(exp))  # the family's rebuild (e.g. input masks)
        model.load_state_dict(decode(out, config_hash, expected_tensors(model)))
        return model

    return ExtraModel(artifact, build)


def extra_models(exp: Experiment) -> dict[str, ExtraModel]:
    """{"compressed": the decoded model} for a config with [compress]; {} otherwise."""
    model = decoded_model(exp)
    return {} if model is None else {"compressed": model}
