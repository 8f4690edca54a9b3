"""Reading an experiment: TOML -> `--set` overrides -> validation against the composed schema.

`--set key=value` overrides are applied to the raw TOML before validation, so they
are checked the same way; every error is one line naming the file and the dotted key.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pydantic import ValidationError

from ..errors import UserError
from . import schema
from .sections import Experiment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def _parse_override(item: str, config_path: str) -> tuple[list[str], object]:
    if "=" not in item:
        raise UserError(f"{config_path}: --set {item!r}: expected KEY=VALUE")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"{config_path}: --set {item!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: --set model.arch=lenet5
    return key.split("."), value


def apply_override(raw: dict, keys: list[str], value: object, config_path: str) -> None:
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise UserError(f"{config_path}: --set {'.'.join(keys)}: {'.'.join(keys[: depth + 1])} is not a table")
        node = child
    node[keys[-1]] = value


# A check across the keys of a table blames one of them by starting its message with it:
# "finetune.epochs: ..." raised in [prune] reads "prune.finetune.epochs: ...".
BLAMED_KEY = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*): (.+)$")


def format_validation_error(config_path: str, error: ValidationError) -> str:
    """The first problem as one line: `file: dotted.key: message (got value)`."""
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        blamed = BLAMED_KEY.match(message)
        if blamed:
            loc, message = ".".join(filter(None, (loc, blamed[1]))), blamed[2]
    got = first.get("input")
    shown = "" if isinstance(got, dict) or first["type"] == "missing" else f" (got {got!r})"
    where = f"{config_path}: {loc}" if loc else config_path
    more = len(error.errors()) - 1
    tail = f" [+{more} more]" if more else ""
    return f"{where}: {message}{shown}{tail}"


def validate(raw: dict, where: str) -> Experiment:
    """An Experiment from a raw dict (already overridden); `where` names it in errors."""
    try:
        return schema.current().experiment.model_validate(raw)
    except ValidationError as error:
        raise UserError(format_validation_error(where, error)) from None


def parse(raw: dict, config_path: str = "<config>", overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    raw = json.loads(json.dumps(raw))  # a deep copy: overrides must not touch the caller's dict
    for item in overrides:
        keys, value = _parse_override(item, config_path)
        apply_override(raw, keys, value, config_path)
    experiment = validate(raw, config_path)
    experiment._path = config_path
    return experiment


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None
    return parse(raw, str(path), overrides)
