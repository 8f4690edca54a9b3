"""Model checkpoints: state_dict + masks + the config hash they were made from."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch.nn as nn

from ..atomic import load_torch, save_torch, write_text
from ..config import Experiment
from ..errors import UserError

TASK_FOR_ARTIFACT = {"dense.pt": "train", "pruned.pt": "prune"}


def save(path: Path, model: nn.Module, config_hash: str, masks: dict | None = None, **extra) -> None:
    save_torch(path, {"model": model.state_dict(), "masks": masks or {}, "config_hash": config_hash, **extra})


def is_current(path: Path, config_hash: str) -> bool:
    """True if `path` exists, loads, and was made from a config with this hash."""
    if not path.is_file():
        return False
    try:
        return load_torch(path).get("config_hash") == config_hash
    except UserError:
        return False


def load_current(exp: Experiment, path: Path, config_hash: str) -> dict:
    """Load an input artifact, refusing a missing or stale one with the command that makes it."""
    task = TASK_FOR_ARTIFACT.get(path.name, "train")
    if not path.is_file():
        raise UserError(f"{path}: not found; run `pixi r {task} {exp.path}` first")
    checkpoint = load_torch(path)
    if checkpoint.get("config_hash") != config_hash:
        raise UserError(
            f"{path}: made from a different config (hash {checkpoint.get('config_hash')}, "
            f"{exp.path} now hashes to {config_hash}); run `pixi r {task} {exp.path}`"
        )
    return checkpoint


def load_into(model: nn.Module, checkpoint: dict, path: Path) -> None:
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise UserError(f"{path}: does not fit the configured model ({first})") from None


def build_model(exp: Experiment, checkpoint: dict, path: Path) -> nn.Module:
    """The model a checkpoint holds, on the CPU: the configured architecture, or for a
    physically pruned model its saved architecture description (no pickle, no re-pruning)."""
    if "architecture" in checkpoint:
        from ..structured.rebuild import rebuild_model

        model = rebuild_model(exp, checkpoint["architecture"])
    else:
        from ..models import build_for

        model = build_for(exp)
    load_into(model, checkpoint, path)
    return model


def write_csv(path: Path, rows: list[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
