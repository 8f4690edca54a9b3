"""Physical filter removal through Torch-Pruning's DepGraph (no per-architecture surgery).

A DepGraph group is every layer whose channels must go together: a conv's
filters, its BatchNorm channels, the input channels of each consumer (next conv,
linear head), and for residual additions or depthwise convs the coupled convs.
Removal targets are fractions of the *dense* model's channels, so iterative
steps reach the final ratio on a linear schedule (keep 1 - ratio x k/steps after
step k) whatever the channel counts left by earlier steps.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch_pruning as tp

from ...config import Experiment
from ...errors import UserError
from ...pruning.masks import classifier_name
from .criteria import FilterImportance, out_channel_layers

ROOT_TYPES = (nn.Conv2d, nn.Linear)
TORCH_DIR = str(Path(torch.__file__).parent)  # frames of torch's own modules


@dataclass
class Targets:
    """Final fraction of output channels removed, by layer name, plus a global pool."""

    ratios: dict[str, float]  # layers ranked within their own group
    global_ratio: float | None = None  # the rest of the convs, ranked together
    ignored: list[str] = field(default_factory=list)  # module names whose outputs are never removed
    where: str = "<model>"  # the config file, which starts the error for a layer pattern DepGraph cannot shrink


@dataclass
class ChannelGroup:
    layers: list[str]  # conv/linear modules whose output channels this group removes
    group: object  # the tp.Group, with full index lists
    size: int  # channels now


def dependency_graph(model: nn.Module, example_inputs: torch.Tensor) -> tp.DependencyGraph:
    """Trace the model (Torch-Pruning switches to eval mode; the caller's mode is restored)."""
    was_training = model.training
    try:
        with torch.enable_grad():  # tracing follows grad_fn links
            return tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
    finally:
        model.train(was_training)


def _ignored_modules(model: nn.Module, names: list[str]) -> list[nn.Module]:
    modules = dict(model.named_modules())
    return [sub for name in names for sub in modules[name].modules()]


def channel_groups(model: nn.Module, graph: tp.DependencyGraph, ignored: list[str]) -> list[ChannelGroup]:
    """Every removable group of output channels, skipping groups that touch an ignored layer."""
    names = {module: name for name, module in model.named_modules()}
    found = []
    for group in graph.get_all_groups(ignored_layers=_ignored_modules(model, ignored), root_module_types=ROOT_TYPES):
        layers = [names[layer] for layer, _, _ in out_channel_layers(group)]
        if layers:
            found.append(ChannelGroup(layers=layers, group=group, size=len(group[0].idxs)))
    return found


def filter_layers(model: nn.Module) -> list[str]:
    """Conv and hidden linear layers whose outputs may be removed (not the classifier)."""
    head = classifier_name(model)
    return [name for name, m in model.named_modules() if isinstance(m, ROOT_TYPES) and name != head]


def resolve_targets(exp: Experiment, model: nn.Module, example_inputs: torch.Tensor) -> Targets:
    """[prune.filters] -> Targets for this model; bad layer names are one-line UserErrors."""
    cfg = exp.prune.filters
    modules = dict(model.named_modules())
    layers = filter_layers(model)
    for name in cfg.ignored_layers:
        if name not in modules or name == "":
            raise UserError(f"{exp.path}: prune.filters.ignored_layers: no module {name!r} in {exp.model.arch}")
    head = classifier_name(model)  # its outputs are the classes
    ignored = list(dict.fromkeys(cfg.ignored_layers + ([head] if head else [])))
    ignored_set = {sub for name in ignored for sub in _submodule_names(model, name)}
    for name in cfg.layer_ratios:
        if name not in layers:
            raise UserError(
                f"{exp.path}: prune.filters.layer_ratios.{name}: no conv or hidden linear layer of that name in "
                f"{exp.model.arch} (valid: {', '.join(layers)})"
            )
        if name in ignored_set:
            raise UserError(
                f"{exp.path}: prune.filters.layer_ratios.{name}: the layer is in prune.filters.ignored_layers"
            )
    convs = [name for name in layers if isinstance(modules[name], nn.Conv2d)]
    ratios = dict(cfg.layer_ratios)
    if cfg.ratio is not None and not cfg.global_ranking:
        ratios = {**{name: cfg.ratio for name in convs}, **ratios}
    targets = Targets(ratios=ratios, global_ratio=cfg.ratio if cfg.global_ranking else None, ignored=ignored,
                      where=exp.path)
    if not cfg.layer_ratios:
        return targets
    graph = dependency_graph(model, example_inputs)
    for channel_group in channel_groups(model, graph, ignored):
        given = {name: value for name, value in cfg.layer_ratios.items() if name in channel_group.layers}
        if len(set(given.values())) > 1:
            first, second = list(given)[:2]
            raise UserError(
                f"{exp.path}: prune.filters.layer_ratios.{second}: shares its channels with {first} "
                f"(coupled by a residual or depthwise connection); give both the same ratio"
            )
        for name in channel_group.layers if given else []:  # a named layer sets its coupled partners' ratio
            ratios[name] = next(iter(given.values()))
    return targets


def _submodule_names(model: nn.Module, name: str) -> list[str]:
    return [f"{name}.{sub}" if sub else name for sub, _ in dict(model.named_modules())[name].named_modules()]


def _keep(dense: int, ratio: float, progress: float) -> int:
    """Channels kept after `progress` (k/steps) of the way to removing `ratio` of `dense`."""
    return max(1, round(dense * (1 - ratio * progress)))


def _choose_global(scored: list[tuple[ChannelGroup, torch.Tensor]], remove: int) -> list[list[int]]:
    """The `remove` lowest-scored channels over all groups, leaving each group at least one."""
    owners = torch.cat([torch.full((len(s),), i) for i, (_, s) in enumerate(scored)])
    positions = torch.cat([torch.arange(len(s)) for _, s in scored])
    order = torch.cat([s for _, s in scored]).argsort(stable=True)
    chosen: list[list[int]] = [[] for _ in scored]
    taken = 0
    for flat in order.tolist():
        if taken == remove:
            break
        owner = int(owners[flat])
        if scored[owner][0].size - len(chosen[owner]) > 1:
            chosen[owner].append(int(positions[flat]))
            taken += 1
    return chosen


def remove_filters(
    model: nn.Module,
    example_inputs: torch.Tensor,
    importance: FilterImportance,
    targets: Targets,
    dense_channels: dict[str, int],
    progress: float = 1.0,
) -> dict[str, int]:
    """Remove the lowest-ranked output channels of every group, in place.

    After the call each group keeps round(dense x (1 - ratio x progress)) channels
    (at least one), its ratio being the layer's own or, with global ranking, the
    pool's total. Returns the channels each group kept, by its first layer's name.
    """
    graph = dependency_graph(model, example_inputs)
    modules = dict(model.named_modules())
    local: list[tuple[ChannelGroup, int]] = []
    pool: list[ChannelGroup] = []
    for channel_group in channel_groups(model, graph, targets.ignored):
        named = [name for name in channel_group.layers if name in targets.ratios]
        dense = dense_channels[channel_group.layers[0]]
        if named:
            local.append((channel_group, min(channel_group.size, _keep(dense, targets.ratios[named[0]], progress))))
        elif targets.global_ratio is not None and any(
            isinstance(modules[name], nn.Conv2d) for name in channel_group.layers
        ):
            pool.append(channel_group)
    pool_keep = 0
    if pool:
        pool_dense = sum(dense_channels[g.layers[0]] for g in pool)
        wanted = round(pool_dense * (1 - targets.global_ratio * progress))
        pool_keep = min(sum(g.size for g in pool), max(len(pool), wanted))  # at least one channel per group
    share = pool_keep / max(sum(g.size for g in pool), 1)
    importance.expect_keep(
        {g.group[0].dep.target.module: keep for g, keep in local}
        | {g.group[0].dep.target.module: max(1, round(g.size * share)) for g in pool}
    )
    # Score every group before removing anything: removal changes the consumers' weights.
    removals: list[tuple[ChannelGroup, list[int]]] = []
    for channel_group, keep in local:
        if keep < channel_group.size:
            scores = importance(channel_group.group)
            removals.append((channel_group, scores.argsort(stable=True)[: channel_group.size - keep].tolist()))
    if pool:
        scored = [(g, importance(g.group)) for g in pool]
        removals += list(zip(pool, _choose_global(scored, sum(g.size for g in pool) - pool_keep)))
    kept = {g.layers[0]: g.size for g, _ in local} | {g.layers[0]: g.size for g in pool}
    for channel_group, idxs in removals:
        if not idxs:
            continue
        kept[channel_group.layers[0]] -= len(idxs)
        root = channel_group.group[0].dep
        group = graph.get_pruning_group(root.target.module, root.handler, sorted(idxs))
        if not graph.check_pruning_group(group):  # would empty a layer
            raise UserError(_unsupported(targets, channel_group, f"it would empty {_emptied(model, graph, group)}"))
        group.prune()
        _check_forward(model, example_inputs, targets, channel_group)
    return kept


def _unsupported(targets: Targets, channel_group: ChannelGroup, problem: str) -> str:
    """The one line for a layer pattern Torch-Pruning's DepGraph does not shrink consistently."""
    layer = channel_group.layers[0]
    return (f"{targets.where}: prune.granularity = \"filter\": removing filters of {layer} breaks the model: "
            f"{problem}; Torch-Pruning's dependency graph does not follow that layer pattern (a channel count "
            f"fixed in forward(), or parameters outside Conv2d / Linear / BatchNorm): add {layer!r} to "
            "prune.filters.ignored_layers, or prune element-wise")


def _emptied(model: nn.Module, graph: tp.DependencyGraph, group: tp.Group) -> str:
    """The member of a group that the removal would leave without channels (as check_pruning_group)."""
    names = {id(item): name for name, item in [*model.named_modules(), *model.named_parameters()]}
    for dep, idxs in group:
        counts = [(graph.is_out_channel_pruning_fn(dep.handler), graph.get_out_channels),
                  (graph.is_in_channel_pruning_fn(dep.handler), graph.get_in_channels)]
        for applies, count in counts:
            channels = count(dep.target.module) if applies else None
            if channels is not None and channels <= len(idxs):
                target = dep.target.module
                return f"{names.get(id(target), dep.target.name)} ({type(target).__name__})"
    return "a coupled layer"


def _check_forward(model: nn.Module, example_inputs: torch.Tensor, targets: Targets,
                   channel_group: ChannelGroup) -> None:
    """Run the shrunk model once (eval mode, no gradients: no statistics or random draws change) and
    name the layer that no longer fits, with the line of its forward() that raised."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_inputs)
    except Exception as error:  # a shape error anywhere in the user's forward
        names = {id(module): name for name, module in model.named_modules()}
        where = "the model"
        for frame, line in traceback.walk_tb(error.__traceback__):  # the innermost module's forward
            code = frame.f_code  # a method's first argument, whatever its name
            owner = frame.f_locals.get(code.co_varnames[0]) if code.co_argcount else None
            if id(owner) in names:
                source = code.co_filename  # the user's line; torch's own layers by their type alone
                at = "" if source.startswith(TORCH_DIR) else f", {Path(source).name} line {line}"
                where = f"{names[id(owner)] or 'the model itself'} ({type(owner).__name__}{at})"
        message = " ".join(str(error).split())
        raise UserError(_unsupported(targets, channel_group, f"{where} fails: {type(error).__name__}: {message}"))
    finally:
        model.train(was_training)
