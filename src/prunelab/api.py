"""prunelab from Python: the families' pruning on your own model and data, through the functions the
tasks call (docs/your-model.md has a worked example).

  prune(model, train_loader, method, compression=..., **options) -> MaskSet    magnitude, or an at-init
                 score (random, magnitude, snip, grasp, synflow): exact selection, the masks applied
  apply_masks(model, masks) -> MaskSet       zero masked weights; `.attach(optimizer)` keeps them zero
  remove_filters(model, example_input, criterion, amount, **options) -> model    filters removed in
                 place through Torch-Pruning's DepGraph
  compress(model, path, bits=..., **options) -> path      Deep Compression's compressed.bin
  load_compressed(path, model) -> model      the tensors of such a file (the compress task's too)
  layer_report(dense, pruned, input_shape) -> str    the per-layer tables every report has (markdown)

Options are the config's keys ([prune], [prune.filters], [compress]; docs/config.md), validated by
the same schema: bad input is a prunelab.UserError with the config's one-line messages, naming the
call (e.g. "prunelab.api.prune(): prune.compression: ...") where a config would name its file. Like
the package root, this module is a facade over the spine and the families; nothing in prunelab imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from itertools import islice
from pathlib import Path

import torch
import torch.nn as nn

from . import config
from .config import Experiment, ModelConfig, PruneConfig
from .config.plugins import select
from .errors import UserError
from .families.at_init.scores import at_init_masks
from .families.at_init.settings import SCHEMA as SCORE_FAMILY
from .families.at_init.ties import ZeroScoreTies
from .families.compression.container import decode, encode
from .families.compression.layout import expected_tensors, file_sections, quantize_layers
from .families.compression.quantize import bake, share
from .families.compression.stage import check_round_trip
from .families.filters.criteria import make_importance
from .families.filters.rebuild import architecture_of, out_channels
from .families.filters.remove import remove_filters as remove_channel_groups
from .families.filters.remove import resolve_targets
from .families.magnitude.pruner import magnitude_masks
from .families.magnitude.settings import SCHEMA as MAGNITUDE_FAMILY
from .metrics import layer_stats
from .pruning.mask_pruner import check_layer_names
from .pruning.masks import MaskSet, prunable_parameters
from .report.experiment import flops_table, parameters_table, size_table

__all__ = ["MaskSet", "UserError", "apply_masks", "compress", "layer_report", "load_compressed", "prune",
           "remove_filters"]

Masks = Mapping[str, torch.Tensor]  # by parameter name ("conv1.weight"): True = kept


def _experiment(where: str, model: nn.Module, **tables: object) -> Experiment:
    """An experiment holding `tables` (config tables as dicts), validated as a config is; `where`
    (the call) stands for the config file in errors, the model's class name for model.arch."""
    exp = config.validate({"name": "api", **tables}, where)
    exp = exp.model_copy(update={"model": ModelConfig.model_construct(arch=type(model).__name__)})
    exp._path = where
    return exp


def _refuse(where: str, options: Mapping[str, object], keys: tuple[str, ...], table: str, instead: str) -> None:
    """Config keys the API has no use for are refused, not silently ignored."""
    for key in keys:
        if key in options:
            raise UserError(f"{where}: {table}.{key}: {instead}")


def _round_masks(where: str, cfg: PruneConfig, model: nn.Module, names: list[str], loader) -> Callable:
    """(k, current masks) -> round k's masks, by the function the selected family's pruner calls."""
    family = select(cfg)
    if family is MAGNITUDE_FAMILY:
        params = dict(model.named_parameters())
        # Han's quality x std rule: the std of each weight as prune() gets it (the prune stage: dense.pt's).
        dense_std = {name: params[name].detach().std().item() for name in names}
        return lambda k, current: magnitude_masks(cfg, k, model, current, dense_std)
    if family is not SCORE_FAMILY:
        raise UserError(f"{where}: prune() runs method = magnitude and the at-init scores "
                        f"({SCORE_FAMILY.selected_by}); this table selects the {family.name} family "
                        "(filter removal: remove_filters())")
    scoring = cfg.at_init
    if scoring.pre_epochs or scoring.shuffle or scoring.reinit:
        raise UserError(f"{where}: prune.at_init: pre_epochs, shuffle and reinit run in the prune task only "
                        "(a config); instead of pre_epochs, train the model before prune()")
    if scoring.score_images and not hasattr(loader, "subset"):
        raise UserError(f"{where}: prune.at_init.score_images draws images through prunelab's own loader "
                        "(TensorLoader.subset); with another loader give score_batches (batches of it) instead")
    return lambda k, current: at_init_masks(cfg, k, model, current, loader)


def prune(model: nn.Module, train_loader: Iterable | None = None, method: str = "magnitude", *,
          compression: float | None = None, masks: MaskSet | None = None, **options: object) -> MaskSet:
    """Mask `model`'s conv/linear weights (not biases or the classifier unless options say so) and
    return the MaskSet, already applied (masked weights are exactly 0).

    method: "magnitude" (|w|, Han et al. 2015: the magnitude family on the weights as they are) or a
    score at initialization ("random", "snip", "grasp", "synflow"; "magnitude" with start="init").
    compression: conv/linear weights / kept ones (10 = keep 10%); or give sparsity= or density=.
    train_loader: any iterable of (images, labels) batches on the model's device (a torch DataLoader);
    snip and grasp average `at_init={"score_batches": n}` batches of it (default 1), synflow reads one
    batch's image shape; magnitude and random need none. random draws from torch's global generator.
    masks: masks to shrink further (a weight pruned there stays pruned), e.g. the last round's.
    options: other [prune] keys, e.g. scope="global", layer_sparsity={"fc1": 0.9}, iterations=3
    (rounds of score and select with no training between them; the prune task fine-tunes between
    rounds: do so by calling prune() once per round, passing `masks`), at_init={...}, quality=....
    To fine-tune, `masks.attach(optimizer)` keeps the masked weights at 0 after every optimizer step.
    """
    where = "prunelab.api.prune()"
    _refuse(where, options, ("finetune", "last_round_epochs"), "prune",
            "prune() does not train; fine-tune yourself with masks.attach(optimizer)")
    table = {"method": method, **options, **({"compression": compression} if compression is not None else {})}
    exp = _experiment(where, model, prune=table)
    cfg = exp.prune
    names = prunable_parameters(model, cfg.prune_bias, cfg.prune_classifier)
    check_layer_names(exp, names)
    round_masks = _round_masks(where, cfg, model, names, train_loader)
    kept = masks if masks is not None else MaskSet.ones(model, names)
    for k in range(1, cfg.iterations + 1):
        try:
            kept.update(round_masks(k, kept.masks))  # masks only shrink; applied to the weights
        except ZeroScoreTies as error:
            raise UserError(f"{where}: prune.at_init.{error}") from None
        except ValueError as error:  # a score that needs batches without a loader, a budget a floor exceeds
            raise UserError(f"{where}: {' '.join(str(error).split())}") from None
    return kept


def apply_masks(model: nn.Module, masks: MaskSet | Masks) -> MaskSet:
    """Zero the masked weights of `model` and return its MaskSet (`masks`: a MaskSet, or bool tensors
    by parameter name, e.g. a checkpoint's "masks"). `.attach(optimizer)` re-applies them after every
    optimizer step (what the prune task's fine-tuning does, train.KeepMasks); `.apply()` once, by hand."""
    where = "prunelab.api.apply_masks()"
    given = masks.masks if isinstance(masks, MaskSet) else masks
    params = dict(model.named_parameters())
    for name, mask in given.items():
        if name not in params:
            raise UserError(f"{where}: {name}: no parameter of that name in {type(model).__name__} "
                            f"(its weights: {', '.join(n for n in params if n.endswith('weight'))})")
        if tuple(mask.shape) != tuple(params[name].shape):
            raise UserError(f"{where}: {name}: mask of shape {list(mask.shape)}, the parameter is "
                            f"{list(params[name].shape)}")
    applied = MaskSet(model, dict(given))
    applied.apply()
    return applied


def remove_filters(model: nn.Module, example_input: torch.Tensor, criterion: str = "l1",
                   amount: float | None = 0.5, *, train_loader: Iterable | None = None, seed: int = 0,
                   **options: object) -> nn.Module:
    """Remove output channels (conv filters, hidden linear units) of `model` in place and return it:
    a smaller dense model, every coupled layer (BatchNorm, the next layer's inputs, residual partners)
    shrunk with them by Torch-Pruning's dependency graph, traced on `example_input` (a batch).

    criterion: "l1", "l2" (filter norm, Li et al. 2017), "taylor" (needs train_loader: the mean
    |activation x gradient| over taylor_batches of its batches), "kmeans", "random" (drawn from `seed`).
    amount: fraction of each conv layer's channels removed, in [0, 1) ([prune.filters] ratio).
    options: other [prune.filters] keys: layer_ratios={"conv1": 0.25} (with amount=None for those
    layers alone), global_ranking=True, ignored_layers=[...], steps, taylor_batches. The classifier's
    outputs are never removed. A layer pattern the graph cannot shrink is a UserError naming the layer.
    """
    where = "prunelab.api.remove_filters()"
    table = {"criterion": criterion, **options, **({"ratio": amount} if amount is not None else {})}
    exp = _experiment(where, model, seed=seed, prune={"granularity": "filter", "filters": table})
    cfg = exp.prune.filters
    targets = resolve_targets(exp, model, example_input)
    dense = out_channels(architecture_of(model))  # steps aim at fractions of these counts
    for k in range(1, cfg.steps + 1):  # as the filters pruner's steps, without fine-tuning between them
        importance = make_importance(cfg.criterion, seed + k)
        batches = islice(train_loader, cfg.taylor_batches) if train_loader is not None else iter(())
        try:
            importance.prepare(model, batches, total=cfg.taylor_batches)
        except ValueError as error:
            raise UserError(f"{where}: prune.filters.criterion = {cfg.criterion!r}: {error} "
                            "(give train_loader)") from None
        remove_channel_groups(model, example_input, importance, targets, dense, progress=k / cfg.steps)
    return model


def compress(model: nn.Module, path: str | Path, *, bits: int | None = None, masks: MaskSet | Masks | None = None,
             train: Callable[[nn.Module], None] | None = None, seed: int = 0, **options: object) -> Path:
    """Write `model` as Deep Compression's file (Han et al. 2016; docs/compressed-format.md): every
    conv/linear weight quantized over its kept weights, relative indices, Huffman codes; returns the path.
    The compress task's writer: the file is read back and must equal the model bit for bit.

    bits: k-means codebook width for every layer (2**bits shared values); or conv_bits= / fc_bits=.
    masks: which weights are kept (prune()'s MaskSet); default: the nonzero ones.
    train: called as train(model) between quantization and writing, to fine-tune the shared weights
    with your own loop (k-means: each layer's codebook is the parameter that learns; build the
    optimizer inside); without it the file holds the quantized weights as clustered.
    options: other [compress] keys: quantizer="fixed" (with total_bits, frac_bits), init,
    conv_index_bits, fc_index_bits. `model` ends up holding the decoded (quantized) weights.
    """
    where = "prunelab.api.compress()"
    _refuse(where, options, ("finetune",), "compress", "fine-tune the shared weights through train=")
    if bits is not None:
        _refuse(where, options, ("conv_bits", "fc_bits"), "compress", "give bits or conv_bits / fc_bits, not both")
        options = {**options, "conv_bits": bits}  # checked once (one error line), then copied: the same bounds
    exp = _experiment(where, model, seed=seed, compress=options)
    cfg = exp.compress
    if bits is not None:
        cfg.fc_bits = bits
    if bits is not None and cfg.quantizer != "kmeans":
        raise UserError(f"{where}: bits is the k-means codebook width; quantizer = {cfg.quantizer!r} takes "
                        "total_bits and frac_bits")
    config_hash = exp.stage_hash("compress")  # in the file's header: what it was made with
    kept = masks.masks if isinstance(masks, MaskSet) else dict(masks or {})
    layers = quantize_layers(model, kept, cfg, torch.Generator().manual_seed(seed))
    share(model, layers)
    try:
        if train is not None:
            train(model)
    finally:
        layers = bake(model, layers)  # plain weights again, the same Parameter objects
    device = next(model.parameters()).device
    model.cpu()
    try:
        encode(Path(path), config_hash, file_sections(model, layers, cfg))
        check_round_trip(Path(path), config_hash, model)
    finally:
        model.to(device)
    return Path(path)


def load_compressed(path: str | Path, model: nn.Module) -> nn.Module:
    """Load the tensors of a compressed file (compress()'s, or the compress task's compressed.bin)
    into `model`, which must have exactly the file's tensors (the pruned architecture); returns it.
    A damaged file or one for another model is a UserError naming the file."""
    model.load_state_dict(decode(Path(path), None, expected_tensors(model)))
    return model


def layer_report(dense: nn.Module, pruned: nn.Module, input_shape: tuple[int, ...]) -> str:
    """Markdown: the per-layer parameter, size (bytes: fp32 and CSR) and FLOPs (fvcore MACs for one
    input of `input_shape`, (C, H, W)) tables every report has, dense beside pruned; a weight that is 0
    counts as pruned. `pruned` may be physically smaller (remove_filters) but has the same layers."""
    shape = tuple(input_shape)
    before, after = ([asdict(row) for row in layer_stats(model, shape)] for model in (dense, pruned))
    if [row["name"] for row in before] != [row["name"] for row in after]:
        raise UserError(f"prunelab.api.layer_report(): the models' conv/linear layers differ "
                        f"({', '.join(row['name'] for row in before)} vs {', '.join(row['name'] for row in after)})")
    return "\n\n".join(["## Parameters per layer", parameters_table(before, after), "## Size per layer",
                        size_table(before, after), "## FLOPs per layer", flops_table(before, after)]) + "\n"
