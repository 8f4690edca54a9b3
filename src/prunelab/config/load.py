"""Reading an experiment: TOML -> `--set` overrides -> validation against the composed schema.

`--set key=value` overrides are applied to the raw TOML before validation, so they
are checked the same way. A bad config is one UserError listing every problem found, one
line each, naming the file and the dotted key: fixing them one run at a time is slow. A
problem in a value that came from `--set` names that `--set` item instead of the file (the
file is not where it is fixed), and an unknown key names the closest valid one.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
import sys
import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..errors import UserError
from . import schema
from .sections import Experiment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def set_item(item: str) -> str:
    """A `--set` item as the user would type it again: `--set train.epochs=abc`, quoted where the shell needs it."""
    return f"--set {shlex.quote(item)}"


def _parse_override(item: str) -> tuple[list[str], object]:
    if "=" not in item:
        raise UserError(f"{set_item(item)}: expected KEY=VALUE, e.g. --set train.epochs=2")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"{set_item(item)}: empty key (expected KEY=VALUE)")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: --set model.arch=lenet5
    return key.split("."), value


def apply_override(raw: dict, keys: list[str], value: object, where: str) -> None:
    """Set the dotted key `keys` in `raw`; `where` starts the error line (the `--set` item, or the
    config and key a derived experiment is made with)."""
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise UserError(f"{where}: {'.'.join(keys[: depth + 1])} is not a table")
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


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The config section class a field holds (through Optional[...]), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _did_you_mean(loc: tuple) -> str:
    """"; did you mean `train.epochs`?" for an unknown key at `loc`: the closest key of its table
    (difflib's ratio >= 0.6, its default), or "" when none is close or the table is not a section."""
    section = schema.current().experiment
    for part in loc[:-1]:
        field = section.model_fields.get(part) if isinstance(part, str) else None
        section = _model_in(field.annotation) if field is not None else None
        if section is None:
            return ""
    close = difflib.get_close_matches(str(loc[-1]), list(section.model_fields), n=1)
    return f"; did you mean `{'.'.join(map(str, (*loc[:-1], close[0])))}`?" if close else ""


def _where(config_path: str, loc: str, overrides: dict[str, str], unknown: bool) -> str:
    """What an error line starts with: the `--set` item that set `loc` or a table above it (the last
    such, as overrides apply in order; for an `unknown` key also one under it, which made the table:
    --set trian.epochs=3), else the file and key; a table's error with an override inside it names both."""
    setting, inside = None, []
    for key, item in overrides.items():
        if loc == key or loc.startswith(f"{key}.") or (unknown and key.startswith(f"{loc}.")):
            setting = key, item
        elif loc and key.startswith(f"{loc}."):
            inside.append(set_item(item))
    if setting is not None:  # the value came from the command line: that is where it is fixed
        key, item = setting
        return set_item(item) if loc == key else f"{set_item(item)}: {loc}"
    where = f"{config_path}: {loc}" if loc else config_path
    return f"{where}, with {', '.join(inside)}" if inside else where


def _error_line(config_path: str, error: dict, overrides: dict[str, str]) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        blamed = BLAMED_KEY.match(message)
        if blamed:
            loc, message = ".".join(filter(None, (loc, blamed[1]))), blamed[2]
    got = error.get("input")
    if error["type"] == "extra_forbidden":  # pydantic says "Extra inputs are not permitted"
        message = f"unknown key{_did_you_mean(error['loc'])}"
    if error["type"] in STRICT_TYPE_ERRORS and isinstance(got, (str, bool)):
        message += ", not a string" if isinstance(got, str) else ", not a boolean"
    shown = "" if isinstance(got, dict) or error["type"] in ("missing", "extra_forbidden") else f" (got {_shown(got)})"
    return f"{_where(config_path, loc, overrides, error['type'] == 'extra_forbidden')}: {message}{shown}"


def format_validation_error(config_path: str, error: ValidationError, overrides: dict[str, str] | None = None) -> str:
    """Every problem, one line each: `file: dotted.key: message (got value)`, in the schema's key order;
    a problem at or under a key `overrides` ({dotted key: the `--set` item}) set names that item instead."""
    lines = [_error_line(config_path, item, overrides or {}) for item in error.errors()]
    return "\n".join(dict.fromkeys(lines))  # a problem reported twice is listed once


def validate(raw: dict, where: str, overrides: dict[str, str] | None = None) -> Experiment:
    """An Experiment from a raw dict (already overridden); `where` names it in errors, `overrides`
    ({dotted key: `--set` item}) the values that came from the command line."""
    try:
        return schema.current().experiment.model_validate(raw)
    except ValidationError as error:
        raise UserError(format_validation_error(where, error, overrides)) from None


def derive(exp: Experiment, name: str, results_root: str, overrides: dict[str, object], where: str,
           drop: tuple[str, ...] = ()) -> Experiment:
    """An experiment made from `exp` (its explicit keys, less `drop`) with another name and results
    root and `overrides` ({dotted key: value}) applied, validated; errors name `where`, and hints
    name exp's config file. Sweep cells and seed replicates are made this way."""
    raw = exp.model_dump(mode="json", exclude=set(drop), exclude_defaults=True)
    raw["name"] = name
    raw["results_root"] = results_root
    for key, value in overrides.items():
        apply_override(raw, key.split("."), value, f"{where}: {key}")
    derived = validate(raw, where)
    derived._path = exp.path
    return derived


def parse(raw: dict, config_path: str = "<config>", overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    raw = json.loads(json.dumps(raw))  # a deep copy: overrides must not touch the caller's dict
    given: dict[str, str] = {}  # dotted key -> the `--set` item that set it
    for item in overrides:
        keys, value = _parse_override(item)
        apply_override(raw, keys, value, set_item(item))
        given[".".join(keys)] = item
    experiment = validate(raw, config_path, given)
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
