"""Model checkpoints: state_dict + masks (or another family entry) + the config hash they were made from;
their freshness, and the refusal to replace one made with other `--set` overrides; and the experiment's
model, built fresh or from a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch.nn as nn

from . import config, family, provenance
from .atomic import load_torch, save_torch
from .config import Experiment
from .data.spec import spec_for
from .errors import UserError
from .models import ArchError, build
from .models.init import INITS

# The task that writes each artifact, for the hint in an error about it.
TASK_FOR_ARTIFACT = {"dense.pt": "train", "train_state.pt": "train", "pruned.pt": "prune", "metrics.json": "test",
                     "compressed.bin": "compress", "compress.json": "compress", "compress_state.pt": "compress",
                     "sweep.json": "sweep", "model.pt2": "export", "export.json": "export"}


def making_task(path: Path) -> str:
    name = Path(path).name
    return "prune" if name.startswith(("prune_round_", "finetune_state_")) else TASK_FOR_ARTIFACT.get(name, "train")


def save(path: Path, model: nn.Module, config_hash: str, masks: dict | None = None,
         inputs: dict[str, str] | None = None, **extra) -> None:
    """A model checkpoint; `inputs` maps each artifact it was made from to that artifact's digest."""
    save_torch(path, {"model": model.state_dict(), "masks": masks or {}, "config_hash": config_hash,
                      "inputs": inputs or {}, **extra})


def is_current(path: Path, config_hash: str, inputs: dict[str, str] | None = None) -> bool:
    """True if `path` loads intact, was made from a config with this hash and from these inputs
    (the digests of the artifacts it was made from, e.g. the dense model a pruned one started from).
    An intact one that is not current is about to be replaced: refused (UserError) when it was made
    with other overrides that matter to it (refuse_replacing); stages call this only without --force."""
    if not path.is_file():
        return False
    try:
        checkpoint = load_torch(path)
    except UserError:
        return False
    if checkpoint.get("config_hash") == config_hash and checkpoint.get("inputs", {}) == (inputs or {}):
        return True
    refuse_replacing(path, checkpoint)
    return False


def _without_seeds(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """The overrides less `seeds=...`: which seeds run never changes one seed's artifact."""
    return [item for item in overrides if item.split("=", 1)[0].strip() != "seeds"]


def refuse_replacing(path: Path, checkpoint: dict) -> None:
    """Stop a run that would replace an intact artifact made with other `--set` overrides, where they
    change its stage's hash: a run with overrides shares <results_root>/<name>/ with the plain run, and
    silently retraining over either loses it. The hash test reads the run's config with each side's
    overrides, so overrides of keys outside the stage hash (data.source, [test], results_root) never
    stop it. Sweep cells and seed replicates record their command's overrides (the grid's and the
    seed's values are not overrides), so they are compared the same way. No record, no command line
    (library use), or old overrides the config no longer takes: nothing to compare, the stage goes on."""
    invocation, made = provenance.current(), checkpoint.get("made_by")
    if invocation is None or not isinstance(made, dict):
        return
    before, now = list(made.get("overrides", [])), list(invocation.overrides)
    if _without_seeds(before) == _without_seeds(now):
        return
    stage = making_task(path)
    try:
        hashes = {config.load(invocation.config, _without_seeds(items)).stage_hash(stage) for items in (before, now)}
    except UserError:
        return
    if len(hashes) == 1:
        return

    def shown(items: list[str]) -> str:
        return " ".join(provenance.set_words(items)) or "no overrides"

    raise UserError(f"{path}: made with {shown(before)}, this run has {shown(now)}; "
                    f"`{invocation.command(None, '--force')}` replaces it, "
                    "or --set results_root=<another dir> keeps both")


def read_input(exp: Experiment, path: Path, read: Callable[[Path], dict] = load_torch,
               task: str | None = None) -> dict:
    """An artifact a stage reads (checkpoint, metrics.json, sweep.json), refused when missing or
    damaged with the command that (re)makes it (`task`, by default the one that writes the file)."""
    task = task or making_task(path)
    if not path.is_file():
        # Run outside the repository the config belongs to, the hint would remake it in the wrong place.
        elsewhere = provenance.elsewhere(exp, path)
        raise UserError(f"{path}: not found; {elsewhere or provenance.run_hint(exp, task) + ' first'}")
    try:
        return read(path)
    except UserError as error:
        raise UserError(f"{error}; remake it: {provenance.run_hint(exp, task, '--force')}") from None


def load_current(exp: Experiment, path: Path, config_hash: str) -> dict:
    """Load an input checkpoint, refusing a missing, damaged or stale one with the command that remakes it."""
    task = making_task(path)
    checkpoint = read_input(exp, path)
    if checkpoint.get("config_hash") != config_hash:
        raise UserError(
            f"{path}: made from a different config (hash {checkpoint.get('config_hash')}, "
            f"{exp.path} now hashes to {config_hash}); {provenance.run_hint(exp, task)}"
        )
    return checkpoint


def load_into(model: nn.Module, checkpoint: dict, path: Path) -> None:
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise UserError(f"{path}: does not fit the configured model ({first})") from None


def build_for(exp: Experiment) -> nn.Module:
    """The experiment's model, freshly initialized (from the global generator, by `model.init`), shaped
    for its data set."""
    channels, height, width = spec_for(exp).image_shape
    if height != width and ":" not in exp.model.arch:  # the registered models are sized by one image_size
        raise UserError(f"{exp.path}: model.arch: {exp.model.arch} takes square images, and {exp.data.dataset} "
                        f"data.source's are {height}x{width}; make them square, or use a network of your own "
                        '(arch = "package.module:factory", docs/your-model.md)')
    try:  # a registered name, or the user's factory by import path (models/user.py)
        model = build(exp.model.arch, in_channels=channels, num_classes=spec_for(exp).num_classes,
                      image_size=height)
    except ArchError as error:
        raise UserError(f"{exp.path}: model.arch: {error}") from None
    INITS.get(exp.model.init)(model)
    return model


def build_model(exp: Experiment, checkpoint: dict, path: Path) -> nn.Module:
    """The model a checkpoint holds, on the CPU: the configured architecture, or the one the
    experiment's family rebuilds from the checkpoint (e.g. a physically pruned model, from its
    saved description: no pickle, no re-pruning)."""
    pruning = family.of(exp)
    model = pruning.rebuild(exp, checkpoint) if pruning is not None and pruning.rebuild is not None else None
    model = build_for(exp) if model is None else model
    load_into(model, checkpoint, path)
    return model
