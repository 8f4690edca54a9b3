"""Physically pruned models saved without pickle: an architecture description + a state_dict.

`architecture_of(model)` records the channel counts of every conv, linear and
BatchNorm layer as plain JSON-able data; checkpoints store it under
"architecture". `rebuild_model(exp, architecture)` builds the configured model
and removes trailing channels through the same DepGraph coupling until every
layer has the recorded shape, so `load_state_dict` of the saved weights fits.
Which channels are removed does not matter: the loaded tensors replace them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch_pruning as tp

from ...checkpoints import build_for
from ...config import Experiment
from ...data.spec import spec_for
from ...errors import UserError
from .remove import dependency_graph

FORMAT = 1  # bump when the description's layout changes


def _describe(module: nn.Module) -> dict | None:
    if isinstance(module, nn.Conv2d):
        return {"type": "Conv2d", "in": module.in_channels, "out": module.out_channels, "groups": module.groups}
    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in": module.in_features, "out": module.out_features}
    if isinstance(module, nn.BatchNorm2d):
        return {"type": "BatchNorm2d", "features": module.num_features}
    return None


def architecture_of(model: nn.Module, arch: str | None = None) -> dict:
    """Per-layer channel counts (JSON-able), e.g. {"features.0": {"type": "Conv2d", "in": 3, "out": 32, ...}}."""
    layers = {name: spec for name, module in model.named_modules() if (spec := _describe(module)) is not None}
    return {"format": FORMAT, "arch": arch, "layers": layers}


def out_channels(architecture: dict) -> dict[str, int]:
    """Output channels of each conv/linear layer in a description."""
    return {name: spec["out"] for name, spec in architecture["layers"].items() if spec["type"] != "BatchNorm2d"}


def shrink_to(model: nn.Module, architecture: dict, example_inputs: torch.Tensor) -> list[str]:
    """Remove trailing output channels until the model matches; returns the problems (empty if it does)."""
    modules = dict(model.named_modules())
    wanted = architecture["layers"]
    missing = [name for name in wanted if name not in modules]
    if missing:
        return [f"no layer {name}" for name in missing]
    graph = dependency_graph(model, example_inputs)
    for name, spec in wanted.items():
        module = modules[name]
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue  # BatchNorm channels follow their conv
        current = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        if spec["out"] < current:
            handler = tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels
            graph.get_pruning_group(module, handler, list(range(spec["out"], current))).prune(record_history=False)
    have = architecture_of(model)["layers"]
    return [f"{name}: recorded {spec}, rebuilt {have.get(name)}"
            for name, spec in wanted.items() if have.get(name) != spec]


def _check_description(exp: Experiment, architecture: object) -> dict:
    ok = (
        isinstance(architecture, dict)
        and architecture.get("format") == FORMAT
        and isinstance(architecture.get("layers"), dict)
        and all(isinstance(spec, dict) and isinstance(spec.get("type"), str)
                for spec in architecture["layers"].values())
    )
    if not ok:
        raise UserError(f"{exp.path}: the checkpoint's architecture entry is not a format-{FORMAT} layer description")
    recorded = architecture.get("arch")
    if recorded is not None and recorded != exp.model.arch:
        raise UserError(f"{exp.path}: model.arch: the checkpoint holds a pruned {recorded}, not {exp.model.arch}")
    return architecture


def rebuild_model(exp: Experiment, architecture: dict) -> nn.Module:
    """The configured architecture shrunk to the recorded channel counts (on the CPU)."""
    architecture = _check_description(exp, architecture)
    model = build_for(exp)
    example = torch.zeros(1, *spec_for(exp).image_shape)
    problems = shrink_to(model, architecture, example)
    if problems:
        raise UserError(
            f"{exp.path}: model.arch = {exp.model.arch!r} cannot take the checkpoint's architecture "
            f"({problems[0]}{f'; +{len(problems) - 1} more' if len(problems) > 1 else ''})"
        )
    return model


def rebuild(exp: Experiment, checkpoint: dict) -> nn.Module | None:
    """The family's rebuild hook: a checkpoint with an "architecture" entry holds a physically
    pruned model; any other (e.g. dense.pt) holds the configured one (None)."""
    return rebuild_model(exp, checkpoint["architecture"]) if "architecture" in checkpoint else None
