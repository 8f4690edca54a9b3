"""Reading an experiment: TOML -> `--set` overrides -> validation against the composed schema.

`--set key=value` overrides are applied to the raw TOML before validation, so they
are checked the same way. A bad config is one UserError listing every problem found, one
line each, naming the file and the dotted key: fixing them one run at a time is slow.
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


# Strict type errors whose bare pydantic message ("Input should be a valid integer") does not
# say what was wrong with a value that looks right to a TOML writer: "30" and true are not numbers.
STRICT_TYPE_ERRORS = {"int_type", "float_type", "bool_type"}


def _shown(value: object) -> str:
    """A value as the error shows it: booleans as TOML writes them, the rest as Python's repr
    (which keeps the quotes that tell the string "30" from the number 30)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _error_line(config_path: str, error: dict) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        blamed = BLAMED_KEY.match(message)
        if blamed:
            loc, message = ".".join(filter(None, (loc, blamed[1]))), blamed[2]
    got = error.get("input")
    if error["type"] in STRICT_TYPE_ERRORS and isinstance(got, (str, bool)):
        message += ", not a string" if isinstance(got, str) else ", not a boolean"
    shown = "" if isinstance(got, dict) or error["type"] == "missing" else f" (got {_shown(got)})"
    where = f"{config_path}: {loc}" if loc else config_path
    return f"{where}: {message}{shown}"


def format_validation_error(config_path: str, error: ValidationError) -> str:
    """Every problem, one line each: `file: dotted.key: message (got value)`, in the schema's key order."""
    lines = [_error_line(config_path, item) for item in error.errors()]
    return "\n".join(dict.fromkeys(lines))  # a problem reported twice is listed once


def validate(raw: dict, where: str) -> Experiment:
    """An Experiment from a raw dict (already overridden); `where` names it in errors."""
    try:
        return schema.current().experiment.model_validate(raw)
    except ValidationError as error:
        raise UserError(format_validation_error(where, error)) from None


def derive(exp: Experiment, name: str, results_root: str, overrides: dict[str, object], where: str,
           drop: tuple[str, ...] = ()) -> Experiment:
    """An experiment made from `exp` (its explicit keys, less `drop`) with another name and results
    root and `overrides` ({dotted key: value}) applied, validated; errors name `where`, and hints
    name exp's config file. Sweep cells and seed replicates are made this way."""
    raw = exp.model_dump(mode="json", exclude=set(drop), exclude_defaults=True)
    raw["name"] = name
    raw["results_root"] = results_root
    for key, value in overrides.items():
        apply_override(raw, key.split("."), value, exp.path)
    derived = validate(raw, where)
    derived._path = exp.path
    return derived


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
